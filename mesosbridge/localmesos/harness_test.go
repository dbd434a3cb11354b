package localmesos

import (
	"context"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

var (
	pbCodec   = codecs.ByMediaType[codecs.MediaTypeProtobuf]
	jsonCodec = codecs.ByMediaType[codecs.MediaTypeJSON]
)

func testOptions() Options {
	return Options{
		Listen:             "127.0.0.1:0",
		Agents:             3,
		Simulate:           true,
		HeartbeatInterval:  200 * time.Millisecond,
		AllocationInterval: 50 * time.Millisecond,
		ResendInterval:     200 * time.Millisecond,
		Sim:                SimOptions{LaunchDelay: 20 * time.Millisecond},
	}
}

func startMesos(t testing.TB, o Options) *Mesos {
	t.Helper()
	if o.WorkDir == "" {
		o.WorkDir = t.TempDir()
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// sched is a framework driven through mesos-go's httpsched client.
type sched struct {
	t      testing.TB
	caller calls.Caller
	fwID   string
	events chan *scheduler.Event
	ended  chan struct{}
	resp   mesos.Response
	cancel context.CancelFunc
}

func frameworkInfo(name string, caps ...mesos.FrameworkInfo_Capability_Type) *mesos.FrameworkInfo {
	fi := &mesos.FrameworkInfo{User: "test", Name: name}
	for _, c := range caps {
		fi.Capabilities = append(fi.Capabilities, mesos.FrameworkInfo_Capability{Type: c})
	}
	return fi
}

func newCaller(url string, codec encoding.Codec) calls.Caller {
	cli := httpcli.New(
		httpcli.Endpoint(url+"/api/v1/scheduler"),
		httpcli.Codec(codec),
		httpcli.Do(httpcli.With(httpcli.Timeout(5*time.Second))),
	)
	return httpsched.NewCaller(cli, httpsched.AllowReconnection(true))
}

// subscribe subscribes fi and waits for SUBSCRIBED.
func subscribe(t testing.TB, url string, codec encoding.Codec, fi *mesos.FrameworkInfo) *sched {
	t.Helper()
	return subscribeCall(t, url, codec, fi, nil)
}

// subscribeCall subscribes fi with suppressed roles and waits for SUBSCRIBED.
func subscribeCall(t testing.TB, url string, codec encoding.Codec, fi *mesos.FrameworkInfo, suppressed []string) *sched {
	t.Helper()
	s := &sched{t: t, caller: newCaller(url, codec), events: make(chan *scheduler.Event, 10000), ended: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	call := calls.Subscribe(fi)
	if fi.ID != nil {
		call = call.With(calls.SubscribeTo(fi.ID.Value))
	}
	call.Subscribe.SuppressedRoles = suppressed
	resp, err := s.caller.Call(ctx, call)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	s.resp = resp
	go func() {
		defer close(s.ended)
		for {
			var e scheduler.Event
			if err := resp.Decode(&e); err != nil {
				return
			}
			s.events <- &e
		}
	}()
	t.Cleanup(s.close)
	ev := s.next(scheduler.Event_SUBSCRIBED, 5*time.Second)
	s.fwID = ev.Subscribed.FrameworkID.Value
	return s
}

func (s *sched) close() {
	s.cancel()
	if s.resp != nil {
		s.resp.Close()
	}
}

// call sends a call with the framework id set.
func (s *sched) call(c *scheduler.Call) error {
	c = c.With(calls.Framework(s.fwID))
	resp, err := s.caller.Call(context.Background(), c)
	if resp != nil {
		resp.Close()
	}
	return err
}

func (s *sched) mustCall(c *scheduler.Call) {
	s.t.Helper()
	if err := s.call(c); err != nil {
		s.t.Fatalf("%s: %v", c.Type, err)
	}
}

// next returns the next event of type typ, skipping others (heartbeats, offers...).
func (s *sched) next(typ scheduler.Event_Type, d time.Duration) *scheduler.Event {
	s.t.Helper()
	ev := s.wait(d, func(e *scheduler.Event) bool { return e.Type == typ })
	if ev == nil {
		s.t.Fatalf("no %s event within %v", typ, d)
	}
	return ev
}

// wait returns the first event matching f within d (nil if none).
func (s *sched) wait(d time.Duration, f func(*scheduler.Event) bool) *scheduler.Event {
	deadline := time.After(d)
	for {
		select {
		case e := <-s.events:
			if f(e) {
				return e
			}
		case <-s.ended:
			// drain what is left
			for {
				select {
				case e := <-s.events:
					if f(e) {
						return e
					}
				default:
					return nil
				}
			}
		case <-deadline:
			return nil
		}
	}
}

// update waits for an UPDATE of task id (any state if states is empty).
func (s *sched) update(id string, d time.Duration, states ...mesos.TaskState) *mesos.TaskStatus {
	s.t.Helper()
	ev := s.wait(d, func(e *scheduler.Event) bool {
		if e.Type != scheduler.Event_UPDATE || e.Update.Status.TaskID.Value != id {
			return false
		}
		if len(states) == 0 {
			return true
		}
		for _, st := range states {
			if e.Update.Status.GetState() == st {
				return true
			}
		}
		return false
	})
	if ev == nil {
		s.t.Fatalf("no update %v for task %s within %v", states, id, d)
	}
	return &ev.Update.Status
}

func (s *sched) ack(st *mesos.TaskStatus) {
	s.t.Helper()
	if len(st.UUID) == 0 {
		return
	}
	s.mustCall(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
}

// offers waits for an OFFERS event with at least n offers in total.
func (s *sched) offers(n int, d time.Duration) []mesos.Offer {
	s.t.Helper()
	var out []mesos.Offer
	deadline := time.Now().Add(d)
	for len(out) < n {
		ev := s.wait(time.Until(deadline), func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS })
		if ev == nil {
			s.t.Fatalf("got %d offers, want %d within %v", len(out), n, d)
		}
		out = append(out, ev.Offers.Offers...)
	}
	return out
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func portsRes(begin, end uint64) mesos.Resource {
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: begin, End: end}}}}
}

func offerPorts(o mesos.Offer) []mesos.Value_Range {
	for _, r := range o.Resources {
		if r.Name == "ports" && r.Ranges != nil {
			return r.Ranges.Range
		}
	}
	return nil
}

func cmdTask(id string, o mesos.Offer, cmd string, res ...mesos.Resource) mesos.TaskInfo {
	if len(res) == 0 {
		res = []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}
	}
	shell := true
	return mesos.TaskInfo{
		Name:      id,
		TaskID:    mesos.TaskID{Value: id},
		AgentID:   o.AgentID,
		Resources: res,
		Command:   &mesos.CommandInfo{Value: &cmd, Shell: &shell},
	}
}

func launch(o mesos.Offer, tasks ...mesos.TaskInfo) *scheduler.Call {
	return calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(o.ID)).With(calls.RefuseSeconds(0))
}

func codecName(c encoding.Codec) string { return fmt.Sprint(c.Name) }

// updates collects the next n UPDATE events by task id.
func (s *sched) updates(n int, d time.Duration) map[string]*mesos.TaskStatus {
	s.t.Helper()
	out := map[string]*mesos.TaskStatus{}
	deadline := time.Now().Add(d)
	for len(out) < n {
		ev := s.wait(time.Until(deadline), func(e *scheduler.Event) bool { return e.Type == scheduler.Event_UPDATE })
		if ev == nil {
			s.t.Fatalf("got %d updates, want %d within %v", len(out), n, d)
		}
		out[ev.Update.Status.TaskID.Value] = &ev.Update.Status
	}
	return out
}

// reach acknowledges every update of task id until one in states arrives.
func (s *sched) reach(id string, d time.Duration, states ...mesos.TaskState) *mesos.TaskStatus {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := s.update(id, time.Until(deadline))
		for _, want := range states {
			if st.GetState() == want {
				return st
			}
		}
		s.ack(st)
	}
}
