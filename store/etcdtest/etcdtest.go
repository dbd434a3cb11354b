// Package etcdtest starts a real etcd server, embedded in the test process
// (go.etcd.io/etcd/server/v3/embed), the way net/http/httptest starts a real
// HTTP server: no mocks, the same gRPC API production talks to.
//
// Start gives a test its own single-member etcd in t.TempDir() on free
// loopback ports, stopped automatically at the end of the test. StartEmbedded
// is the long-running variant used by `converge dev` and `converge bench`.
package etcdtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// readyTimeout bounds how long a server may take to become ready.
const readyTimeout = 30 * time.Second

// Server is a running embedded etcd owned by one test.
type Server struct {
	dir       string
	name      string
	clientURL url.URL // what clients use: the proxy
	etcdURL   url.URL // where etcd itself listens
	peerURL   url.URL
	tls       *tlsFiles // nil for plain http
	proxy     *proxy

	mu   sync.Mutex
	etcd *embed.Etcd
	cli  *clientv3.Client
}

// Start runs a single-member etcd in t.TempDir() on free loopback ports for
// client and peer traffic and registers its shutdown with t.Cleanup. Its
// limits are etcd's defaults, never raised: code that passes here passes
// against a stock etcd.
// Clients reach it through a TCP proxy on its own port (Endpoints), so
// Stop, Restart and Partition cut client connections the way a crash or a
// network failure does.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

func start(t testing.TB, tf *tlsFiles) *Server {
	t.Helper()
	var s *Server
	var err error
	// A free port found is free only until someone binds it: other test
	// binaries run beside this one. Taken meanwhile, pick others.
	for attempt := 0; ; attempt++ {
		if s, err = tryStart(t, tf); err == nil {
			break
		}
		inUse := errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
		if !inUse || attempt == 4 {
			t.Fatalf("etcdtest: %v", err)
		}
	}
	cli, err := s.NewClient()
	if err != nil {
		s.Stop()
		t.Fatalf("etcdtest: %v", err)
	}
	s.cli = cli
	t.Cleanup(func() {
		_ = cli.Close()
		s.Stop()
		s.proxy.close()
	})
	return s
}

// tryStart starts etcd and its client proxy on ports free a moment ago.
func tryStart(t testing.TB, tf *tlsFiles) (*Server, error) {
	scheme := "http"
	if tf != nil {
		scheme = "https"
	}
	var ports [2]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	etcdHost := fmt.Sprintf("127.0.0.1:%d", ports[0])
	px, err := newProxy("127.0.0.1:0", etcdHost)
	if err != nil {
		return nil, fmt.Errorf("client proxy: %w", err)
	}
	s := &Server{
		dir:       t.TempDir(),
		name:      "etcdtest",
		clientURL: url.URL{Scheme: scheme, Host: px.ln.Addr().String()},
		etcdURL:   url.URL{Scheme: scheme, Host: etcdHost},
		peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])},
		tls:       tf,
		proxy:     px,
	}
	if err := s.startEtcd(); err != nil {
		px.close()
		return nil, err
	}
	return s, nil
}

func (s *Server) config() *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = s.name
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.etcdURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	quietLogger(cfg)
	cfg.ListenMetricsUrls = nil
	// Tests do not need durability across power loss, only across Restart,
	// which closes the server cleanly.
	cfg.UnsafeNoFsync = true
	// Password hashing at bcrypt's minimum cost: auth tests stay fast, even
	// under the race detector.
	cfg.BcryptCost = 4
	if s.tls != nil {
		cfg.ClientTLSInfo.CertFile = s.tls.serverCert
		cfg.ClientTLSInfo.KeyFile = s.tls.serverKey
		cfg.ClientTLSInfo.TrustedCAFile = s.tls.caCert
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	return cfg
}

func (s *Server) startEtcd() error {
	e, err := embed.StartEtcd(s.config())
	if err != nil {
		return fmt.Errorf("start embedded etcd in %s: %w", s.dir, err)
	}
	if err := waitReady(e); err != nil {
		return err
	}
	s.mu.Lock()
	s.etcd = e
	s.mu.Unlock()
	return nil
}

func waitReady(e *embed.Etcd) error {
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-time.After(readyTimeout):
		e.Server.Stop()
		e.Close()
		return fmt.Errorf("embedded etcd not ready within %s", readyTimeout)
	}
}

// Endpoints returns the client URLs, e.g. ["http://127.0.0.1:41234"].
func (s *Server) Endpoints() []string { return []string{s.clientURL.String()} }

// Client returns a client connected to the server, shared by the test and
// closed at cleanup. It reconnects by itself across Restart.
func (s *Server) Client() *clientv3.Client { return s.cli }

// NewClient returns a new client of the server (TLS configured when the
// server uses TLS); the caller closes it. Tests use several clients to stand
// for several processes.
func (s *Server) NewClient() (*clientv3.Client, error) {
	var tc *tls.Config
	if s.tls != nil {
		var err error
		if tc, err = s.tls.ClientConfig(); err != nil {
			return nil, err
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 5 * time.Second,
		TLS:         tc,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to embedded etcd at %s: %w", s.clientURL.String(), err)
	}
	return cli, nil
}

// Stop shuts the server down; it is safe to call more than once. Clients
// see their connections cut at once, as in a crash; the data stays for
// Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	e := s.etcd
	s.etcd = nil
	s.mu.Unlock()
	if e != nil {
		s.proxy.drop(false)
		e.Close()
	}
}

// Partition cuts every client connection and refuses new ones until Heal,
// while etcd keeps running: to clients, etcd is unreachable (leases they
// hold still expire on the server).
func (s *Server) Partition() { s.proxy.drop(true) }

// Heal ends a Partition.
func (s *Server) Heal() { s.proxy.unblock() }

// Restart stops the server (if running) and starts it again with the same
// data directory and ports, as a crashed-and-restarted member would be.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.startEtcd()
		if err == nil {
			return
		}
		// The old listeners may take a moment to release their ports.
		if time.Now().After(deadline) {
			t.Fatalf("etcdtest: restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartEmbedded runs a single-member etcd with its data in dir, serving
// clients at clientURL (e.g. "http://127.0.0.1:2379"), on a free loopback
// peer port it chooses itself, with quiet logs and etcd's default limits
// (128 operations per transaction, 1.5 MiB per request), as a stock etcd. It
// returns once the server is ready (or fails within 30 s). Unlike Start,
// it keeps fsync on: `converge dev` data and benchmark figures are real.
// Each configure function may adjust the configuration before the start.
func StartEmbedded(dir, clientURL string, configure ...func(*embed.Config)) (*embed.Etcd, error) {
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd client url %q: %w", clientURL, err)
	}
	if cu.Scheme != "http" && cu.Scheme != "https" || cu.Host == "" {
		return nil, fmt.Errorf("etcd client url %q: want http://host:port", clientURL)
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pport)}
	cfg := embed.NewConfig()
	cfg.Name = "converge"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	quietLogger(cfg)
	cfg.ListenMetricsUrls = nil
	for _, f := range configure {
		f(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd at %s (data %s): %w", clientURL, dir, err)
	}
	if err := waitReady(e); err != nil {
		return nil, fmt.Errorf("embedded etcd at %s: %w", clientURL, err)
	}
	return e, nil
}

// freePort asks the kernel for a free loopback TCP port.
// freePort finds a loopback port nobody listens on now (a variable so a
// test can hand out a taken one).
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
