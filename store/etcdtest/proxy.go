package etcdtest

import (
	"errors"
	"io"
	"net"
	"sync"
)

// proxy is a TCP forwarder in front of etcd's client port. Clients talk to
// it, so the test can cut every client connection at once: a crash as the
// clients see it (Stop, Restart), or a network partition (Partition/Heal).
// It also spares Stop etcd's graceful shutdown, which waits up to its
// request timeout (7 s) for open watch streams to end.
type proxy struct {
	ln      net.Listener
	backend string

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	blocked bool
	closed  bool
	wg      sync.WaitGroup
}

func newProxy(listen, backend string) (*proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		if p.blocked || p.closed {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *proxy) serve(c net.Conn) {
	defer p.wg.Done()
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, b) {
		c.Close()
		b.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
	c.Close()
	b.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, b)
	p.mu.Unlock()
}

func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked || p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// drop closes every open connection; block also refuses new ones until unblock.
func (p *proxy) drop(block bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = block
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.drop(true)
	p.wg.Wait()
}
