package controller

import (
	"bytes"
	"fmt"
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

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/converge-io/converge/election"
)

// mesosProxy is an HTTP reverse proxy in front of one localmesos master: the
// network between the controller's bridge and Mesos, which the test watches
// and controls. Every scheduler call is recorded, so a test can count what
// reached Mesos; calls of a type can be dropped (answered 202 and never
// forwarded, as a lossy network loses them) or refused (503, as a master
// that is not ready).
type mesosProxy struct {
	srv *httptest.Server

	mu      sync.Mutex
	calls   []seenCall
	drop    map[scheduler.Call_Type]bool
	dropIf  func(seenCall) bool // also dropped: calls it matches (called under mu)
	refuse  map[scheduler.Call_Type]bool
	delay   map[scheduler.Call_Type]time.Duration
	held    map[scheduler.Call_Type]int // calls being delayed now
	rewrite map[string]string           // master host:port -> its proxy's, for 307 Locations
}

// seenCall is one scheduler call as it crossed the proxy.
type seenCall struct {
	Type        scheduler.Call_Type
	FrameworkID string   // for SUBSCRIBE, the id it subscribes to ("" for a new framework)
	TaskIDs     []string // ACKNOWLEDGE, KILL, RECONCILE, and the tasks an ACCEPT launches
	UUID        []byte   // ACKNOWLEDGE
	Message     string   // MESSAGE: the election message's type
	OfferIDs    []string // DECLINE
	// RefuseSeconds is a DECLINE's or ACCEPT's filters.refuse_seconds (nil:
	// not set, the master's default of 5 s).
	RefuseSeconds *float64
	Dropped       bool
	Refused       bool
}

// newMesosProxies puts a proxy in front of each master URL; a master's 307 to
// another master is rewritten to that master's proxy, so the bridge never
// leaves the proxies.
func newMesosProxies(t *testing.T, masterURLs []string) []*mesosProxy {
	t.Helper()
	rewrite := map[string]string{}
	ps := make([]*mesosProxy, len(masterURLs))
	for i, mu := range masterURLs {
		target, err := url.Parse(mu)
		if err != nil {
			t.Fatal(err)
		}
		p := &mesosProxy{rewrite: rewrite, drop: map[scheduler.Call_Type]bool{}, refuse: map[scheduler.Call_Type]bool{},
			delay: map[scheduler.Call_Type]time.Duration{}, held: map[scheduler.Call_Type]int{}}
		rp := &httputil.ReverseProxy{
			Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
			FlushInterval: -1, // the SUBSCRIBE response is an event stream
			ModifyResponse: func(res *http.Response) error {
				if loc := res.Header.Get("Location"); loc != "" {
					for from, to := range p.rewrite {
						loc = strings.Replace(loc, "//"+from+"/", "//"+to+"/", 1)
					}
					res.Header.Set("Location", loc)
				}
				return nil
			},
			ErrorLog: log.New(io.Discard, "", 0),
		}
		p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch p.intercept(r) {
			case "drop":
				w.WriteHeader(http.StatusAccepted)
			case "refuse":
				http.Error(w, "injected: master not available", http.StatusServiceUnavailable)
			default:
				rp.ServeHTTP(w, r)
			}
		}))
		t.Cleanup(p.srv.Close)
		rewrite[target.Host] = strings.TrimPrefix(p.srv.URL, "http://")
		ps[i] = p
	}
	return ps
}

func (p *mesosProxy) URL() string { return p.srv.URL }

// intercept records a scheduler call and says what to do with it: "drop",
// "refuse" or "" (forward).
func (p *mesosProxy) intercept(r *http.Request) string {
	if r.URL.Path != "/api/v1/scheduler" || r.Method != http.MethodPost || r.Body == nil {
		return ""
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	codec, ok := codecs.ByMediaType[encoding.MediaType(r.Header.Get("Content-Type"))]
	if err != nil || !ok {
		return ""
	}
	var call scheduler.Call
	if codec.NewDecoder(encoding.SourceReader(bytes.NewReader(body))).Decode(&call) != nil {
		return ""
	}
	seen := describeCall(&call)
	p.mu.Lock()
	d := p.delay[call.Type]
	p.held[call.Type]++
	p.mu.Unlock()
	time.Sleep(d) // a slow network for this type (fault injection)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held[call.Type]--
	seen.Dropped, seen.Refused = p.drop[call.Type] || (p.dropIf != nil && p.dropIf(seen)), p.refuse[call.Type]
	p.calls = append(p.calls, seen)
	switch {
	case seen.Dropped:
		return "drop"
	case seen.Refused:
		return "refuse"
	}
	return ""
}

func describeCall(call *scheduler.Call) seenCall {
	s := seenCall{Type: call.Type, FrameworkID: call.GetFrameworkID().GetValue()}
	switch call.Type {
	case scheduler.Call_SUBSCRIBE:
		s.FrameworkID = call.GetSubscribe().GetFrameworkInfo().GetID().GetValue()
	case scheduler.Call_ACKNOWLEDGE:
		s.TaskIDs = []string{call.GetAcknowledge().TaskID.Value}
		s.UUID = call.GetAcknowledge().UUID
	case scheduler.Call_KILL:
		s.TaskIDs = []string{call.GetKill().TaskID.Value}
	case scheduler.Call_MESSAGE:
		if m, err := election.Decode(call.GetMessage().Data); err == nil {
			s.Message, s.TaskIDs = m.Type, []string{m.TaskID}
		}
	case scheduler.Call_RECONCILE:
		for _, t := range call.GetReconcile().Tasks {
			s.TaskIDs = append(s.TaskIDs, t.TaskID.Value)
		}
	case scheduler.Call_DECLINE:
		for _, id := range call.GetDecline().GetOfferIDs() {
			s.OfferIDs = append(s.OfferIDs, id.Value)
		}
		s.RefuseSeconds = refuseSeconds(call.GetDecline().GetFilters())
	case scheduler.Call_ACCEPT:
		s.RefuseSeconds = refuseSeconds(call.GetAccept().GetFilters())
		for _, op := range call.GetAccept().Operations {
			for _, ti := range op.GetLaunch().GetTaskInfos() {
				s.TaskIDs = append(s.TaskIDs, ti.TaskID.Value)
			}
			for _, ti := range op.GetLaunchGroup().GetTaskGroup().Tasks {
				s.TaskIDs = append(s.TaskIDs, ti.TaskID.Value)
			}
		}
	}
	return s
}

// refuseSeconds is f's refuse_seconds, nil when f or it is not set.
func refuseSeconds(f *mesos.Filters) *float64 {
	if f == nil {
		return nil
	}
	return f.RefuseSeconds
}

// setDrop drops (on) or forwards (off) calls of type typ from now on.
func (p *mesosProxy) setDrop(typ scheduler.Call_Type, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop[typ] = on
}

// setDropIf drops, from now on, the calls f matches (nil: none).
func (p *mesosProxy) setDropIf(f func(seenCall) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropIf = f
}

// setDelay holds calls of type typ for d before forwarding (and recording)
// them: calls sent after them may reach the master first.
func (p *mesosProxy) setDelay(typ scheduler.Call_Type, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay[typ] = d
}

// holding is the number of calls of type typ being delayed now.
func (p *mesosProxy) holding(typ scheduler.Call_Type) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[typ]
}

// setRefuse refuses (on) or forwards (off) calls of type typ from now on.
func (p *mesosProxy) setRefuse(typ scheduler.Call_Type, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse[typ] = on
}

// seen returns the calls recorded so far that match f (all when f is nil).
func (p *mesosProxy) seen(f func(seenCall) bool) []seenCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []seenCall
	for _, c := range p.calls {
		if f == nil || f(c) {
			out = append(out, c)
		}
	}
	return out
}

func ofType(typ scheduler.Call_Type) func(seenCall) bool {
	return func(c seenCall) bool { return c.Type == typ }
}

// electionMessages: MESSAGE calls carrying election messages of type typ.
func electionMessages(typ string) func(seenCall) bool {
	return func(c seenCall) bool { return c.Type == scheduler.Call_MESSAGE && c.Message == typ }
}

// launching: ACCEPT calls that launch at least one task.
func launching(c seenCall) bool { return c.Type == scheduler.Call_ACCEPT && len(c.TaskIDs) > 0 }

// about: calls of type typ naming task id.
func about(typ scheduler.Call_Type, id string) func(seenCall) bool {
	return func(c seenCall) bool {
		if c.Type != typ {
			return false
		}
		for _, t := range c.TaskIDs {
			if t == id {
				return true
			}
		}
		return false
	}
}

// calls returns the calls every proxy of the env recorded that match f.
func (e *env) calls(f func(seenCall) bool) []seenCall {
	var out []seenCall
	for _, p := range e.proxies {
		out = append(out, p.seen(f)...)
	}
	return out
}

// eventually polls cond until it holds, failing the test at the deadline.
func (e *env) eventually(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reconciles waits until the controller has run n more cluster reconciles.
func (e *env) reconciles(n int) {
	e.t.Helper()
	r0 := e.metric("converge_controller_reconciles_total", nil)
	e.eventually(20*time.Second, fmt.Sprintf("%d reconciles", n), func() bool {
		return e.metric("converge_controller_reconciles_total", nil) >= r0+float64(n)
	})
}
