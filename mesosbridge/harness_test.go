package mesosbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// memStore is a FrameworkStore over a map, as the controller's etcd store would be.
type memStore struct {
	mu      sync.Mutex
	id      string
	saves   []string
	removed string
	failAt  int // SaveFrameworkID fails while len(saves) < failAt
}

func (s *memStore) LoadFrameworkID(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, nil
}

func (s *memStore) SaveFrameworkID(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves = append(s.saves, id)
	if len(s.saves) <= s.failAt {
		return errors.New("etcd unavailable (test)")
	}
	s.id = id
	return nil
}

func (s *memStore) MarkFrameworkRemoved(_ context.Context, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = msg
	return nil
}

func (s *memStore) get() (id, removed string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.removed
}

// logSink collects every log line (all verbosity levels).
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		l.lines = append(l.lines, prefix+" "+args)
		l.mu.Unlock()
	}, funcr.Options{Verbosity: 10})
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func startMesos(t *testing.T, o localmesos.Options) *localmesos.Mesos {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Agents == 0 {
		o.Agents = 2
	}
	o.Simulate = true
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 200 * time.Millisecond
	}
	if o.AllocationInterval == 0 {
		o.AllocationInterval = 50 * time.Millisecond
	}
	if o.ResendInterval == 0 {
		o.ResendInterval = 200 * time.Millisecond
	}
	if o.WorkDir == "" {
		o.WorkDir = t.TempDir()
	}
	m, err := localmesos.New(o)
	if err != nil {
		t.Fatalf("localmesos.New: %v", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("localmesos.Start: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// testConfig is a Config with the short intervals the tests use.
func testConfig(masters []string, st FrameworkStore) Config {
	return Config{
		Masters:             masters,
		FrameworkName:       "converge-test",
		Hostname:            "localhost",
		State:               st,
		ReconcileBackoff:    200 * time.Millisecond,
		ReconcileMaxBackoff: time.Second,
		ReconnectBackoff:    50 * time.Millisecond,
		ReconnectMaxBackoff: time.Second,
		KillRetry:           200 * time.Millisecond,
		KillMaxRetry:        time.Second,
		ReviveInterval:      200 * time.Millisecond,
		CallTimeout:         5 * time.Second,
	}
}

// runner runs a Client and records its events.
type runner struct {
	t      *testing.T
	c      *Client
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry

	mu     sync.Mutex
	events []Event
	cond   chan struct{} // closed and replaced on every event
	closed bool
}

func startClient(t *testing.T, cfg Config) *runner {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.Log.GetSink() == nil {
		cfg.Log = testLogger(t)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{t: t, c: c, cancel: cancel, done: make(chan error, 1), reg: reg, cond: make(chan struct{})}
	go func() { r.done <- c.Run(ctx) }()
	go func() {
		for ev := range c.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			close(r.cond)
			r.cond = make(chan struct{})
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.closed = true
		close(r.cond)
		r.cond = make(chan struct{})
		r.mu.Unlock()
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

func testLogger(t *testing.T) logr.Logger {
	return funcr.New(func(prefix, args string) {
		t.Logf("%s %s", prefix, args)
	}, funcr.Options{Verbosity: 1})
}

// stop cancels Run and waits for it (and the event channel) to end.
func (r *runner) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		deadline := time.Now().Add(5 * time.Second)
		for {
			r.mu.Lock()
			closed := r.closed
			r.mu.Unlock()
			if closed || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return err
	case <-time.After(10 * time.Second):
		r.t.Errorf("Run did not return within 10s of cancel")
		return nil
	}
}

// waitEvent waits for an event after index from that matches pred; it returns the
// event and its index.
func (r *runner) waitEvent(from int, timeout time.Duration, what string, pred func(Event) bool) (Event, int) {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.events); i++ {
			if pred(r.events[i]) {
				ev := r.events[i]
				r.mu.Unlock()
				return ev, i
			}
		}
		from = len(r.events)
		ch, closed := r.cond, r.closed
		r.mu.Unlock()
		if closed {
			r.t.Fatalf("waiting for %s: event channel closed", what)
		}
		select {
		case <-ch:
		case <-deadline.C:
			r.t.Fatalf("no %s within %s", what, timeout)
		}
	}
}

func (r *runner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *runner) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func isType(tp EventType) func(Event) bool { return func(e Event) bool { return e.Type == tp } }

func isUpdate(taskID string, states ...mesos.TaskState) func(Event) bool {
	return func(e Event) bool {
		if e.Type != EventUpdate || e.Status.TaskID.Value != taskID {
			return false
		}
		if len(states) == 0 {
			return true
		}
		for _, s := range states {
			if e.Status.GetState() == s {
				return true
			}
		}
		return false
	}
}

// metric reads a counter or gauge value from the runner's registry.
func (r *runner) metric(name string, labels map[string]string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// launchOne waits for an offer, launches one small task on it and waits for RUNNING.
// With executor set, the task runs under a custom executor whose id is the task id.
func (r *runner) launchOne(from int, taskID string, executor bool) (agentID string, next int) {
	r.t.Helper()
	ev, i := r.waitEvent(from, 10*time.Second, "offers", isType(EventOffers))
	o := ev.Offers[0]
	ti := mesos.TaskInfo{
		Name:    taskID,
		TaskID:  mesos.TaskID{Value: taskID},
		AgentID: o.AgentID,
		Resources: []mesos.Resource{
			scalar("cpus", 0.1), scalar("mem", 32),
		},
	}
	cmd := &mesos.CommandInfo{Value: proto("sleep 1000")}
	if executor {
		ti.Executor = &mesos.ExecutorInfo{
			ExecutorID: mesos.ExecutorID{Value: taskID},
			Command:    cmd,
			Resources:  []mesos.Resource{scalar("cpus", 0.01), scalar("mem", 16)},
		}
	} else {
		ti.Command = cmd
	}
	if err := r.c.Launch(context.Background(), []mesos.OfferID{o.ID}, []mesos.TaskInfo{ti}, 1); err != nil {
		r.t.Fatalf("launch %s: %v", taskID, err)
	}
	// Acknowledge as the controller would (the next update follows the ack).
	for j := i + 1; ; {
		ev, k := r.waitEvent(j, 10*time.Second, taskID+" RUNNING", isUpdate(taskID))
		if err := r.c.Acknowledge(context.Background(), *ev.Status); err != nil {
			r.t.Fatalf("acknowledge %s: %v", taskID, err)
		}
		if ev.Status.GetState() == mesos.TASK_RUNNING {
			return o.AgentID.Value, k + 1
		}
		j = k + 1
	}
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func proto(s string) *string { return &s }

// masterState reads GET /master/state.
type masterState struct {
	Frameworks []struct {
		ID     string `json:"id"`
		Active bool   `json:"active"`
		Tasks  []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"tasks"`
	} `json:"frameworks"`
}

func getState(t *testing.T, base string) masterState {
	t.Helper()
	res, err := http.Get(strings.TrimSuffix(base, "/") + "/master/state")
	if err != nil {
		t.Fatalf("GET /master/state: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET /master/state: %d %s", res.StatusCode, b)
	}
	var s masterState
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decode /master/state: %v: %s", err, b)
	}
	return s
}

// fault posts to localmesos's fault injection endpoint.
func fault(t *testing.T, base, path string) {
	t.Helper()
	res, err := http.Post(strings.TrimSuffix(base, "/")+path, "application/json", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
	}
}

// masterProxy is an HTTP reverse proxy in front of one localmesos master: a
// network between the bridge and the master that the test controls. It rewrites
// 307 Locations to the proxies of the other masters (so the bridge stays behind
// proxies) and can freeze the event streams it carries: bytes stop, the
// connection stays open, as in a partition.
type masterProxy struct {
	srv *httptest.Server

	mu      sync.Mutex
	streams []chan struct{} // per live response body: closed = frozen
	rewrite map[string]string
	fail    map[scheduler.Call_Type]int // calls of a type to answer 503, as a recovering master
}

// failNext makes the next n calls of type typ fail with 503.
func (p *masterProxy) failNext(typ scheduler.Call_Type, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail == nil {
		p.fail = map[scheduler.Call_Type]int{}
	}
	p.fail[typ] = n
}

func (p *masterProxy) failCall(r *http.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.fail) == 0 || r.Body == nil {
		return false
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	codec, ok := codecs.ByMediaType[encoding.MediaType(r.Header.Get("Content-Type"))]
	if err != nil || !ok {
		return false
	}
	var call scheduler.Call
	if codec.NewDecoder(encoding.SourceReader(bytes.NewReader(body))).Decode(&call) != nil {
		return false
	}
	if p.fail[call.Type] > 0 {
		p.fail[call.Type]--
		return true
	}
	return false
}

func newMasterProxies(t *testing.T, masterURLs []string) []*masterProxy {
	t.Helper()
	ps := make([]*masterProxy, len(masterURLs))
	rewrite := map[string]string{}
	for i, mu := range masterURLs {
		target, err := url.Parse(mu)
		if err != nil {
			t.Fatal(err)
		}
		p := &masterProxy{rewrite: rewrite}
		rp := &httputil.ReverseProxy{
			Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
			FlushInterval: -1,
			ModifyResponse: func(res *http.Response) error {
				if loc := res.Header.Get("Location"); loc != "" {
					for from, to := range p.rewrite {
						loc = strings.Replace(loc, "//"+from+"/", "//"+to+"/", 1)
					}
					res.Header.Set("Location", loc)
				}
				if res.StatusCode == http.StatusOK && res.ContentLength < 0 {
					fr := make(chan struct{})
					p.mu.Lock()
					p.streams = append(p.streams, fr)
					p.mu.Unlock()
					res.Body = &freezableBody{ReadCloser: res.Body, frozen: fr, done: res.Request.Context().Done()}
				}
				return nil
			},
			ErrorLog: log.New(io.Discard, "", 0),
		}
		p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p.failCall(r) {
				http.Error(w, "injected: master unavailable", http.StatusServiceUnavailable)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(p.srv.Close)
		rewrite[target.Host] = strings.TrimPrefix(p.srv.URL, "http://")
		ps[i] = p
	}
	return ps
}

func (p *masterProxy) URL() string { return p.srv.URL }

// freeze silences every event stream open now; later requests flow.
func (p *masterProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.streams {
		close(f)
	}
	p.streams = nil
}

type freezableBody struct {
	io.ReadCloser
	frozen, done <-chan struct{}
}

func (b *freezableBody) Read(p []byte) (int, error) {
	select {
	case <-b.frozen:
		<-b.done
		return 0, errors.New("connection closed while frozen")
	default:
	}
	n, err := b.ReadCloser.Read(p)
	select {
	case <-b.frozen: // swallow what arrived after the freeze, and any close
		<-b.done
		return 0, errors.New("connection closed while frozen")
	default:
	}
	return n, err
}
