package localmesos

import (
	"bytes"
	"net/http"
	"sync"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
)

// stream is one subscription's event stream (scheduler or executor): events are
// encoded when sent and written as RecordIO frames by the HTTP handler goroutine.
// Sending never blocks the master; a stream that is gone just drops its events.
type stream struct {
	id        string
	codec     encoding.Codec
	heartbeat func() encoding.Marshaler // nil: no heartbeats
	interval  time.Duration

	mu      sync.Mutex
	queue   [][]byte
	closing bool // close after the queue drains
	notify  chan struct{}
	done    chan struct{} // closed when the writer has stopped
	once    sync.Once
}

func newStream(id string, codec encoding.Codec) *stream {
	return &stream{id: id, codec: codec, notify: make(chan struct{}, 1), done: make(chan struct{})}
}

func encode(codec encoding.Codec, m encoding.Marshaler) ([]byte, error) {
	var buf bytes.Buffer
	if err := codec.NewEncoder(encoding.SinkWriter(&buf)).Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// send queues an event; false if the stream is closing or gone.
func (s *stream) send(m encoding.Marshaler) bool {
	b, err := encode(s.codec, m)
	if err != nil {
		return false
	}
	return s.sendRaw(b)
}

func (s *stream) sendRaw(b []byte) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return true
}

// close ends the stream after the queued events are written.
func (s *stream) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// serve writes the stream to w until it is closed, the client goes away or stop
// is closed. Headers must already be set; serve writes 200 and flushes at once so
// clients see a chunked response without Content-Length.
func (s *stream) serve(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
	defer s.once.Do(func() { close(s.done) })
	fl, _ := w.(http.Flusher)
	w.WriteHeader(http.StatusOK)
	if fl != nil {
		fl.Flush()
	}
	rw := recordio.NewWriter(w)
	var tick <-chan time.Time
	if s.heartbeat != nil && s.interval > 0 {
		t := time.NewTicker(s.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		closing := s.closing
		s.mu.Unlock()
		for _, b := range q {
			if err := rw.WriteFrame(b); err != nil {
				s.close()
				return
			}
		}
		if len(q) > 0 && fl != nil {
			fl.Flush()
		}
		if closing {
			s.mu.Lock()
			empty := len(s.queue) == 0
			s.mu.Unlock()
			if empty {
				return
			}
			continue
		}
		select {
		case <-s.notify:
		case <-tick:
			s.send(s.heartbeat())
		case <-r.Context().Done():
			s.close()
			return
		case <-stop:
			s.close()
			return
		}
	}
}
