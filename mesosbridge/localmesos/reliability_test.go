package localmesos

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// launchOne launches a simulated task on the first offer and returns its agent id.
func launchOne(t *testing.T, s *sched, id string) mesos.Offer {
	t.Helper()
	o := s.offers(1, 3*time.Second)[0]
	s.mustCall(launch(o, cmdTask(id, o, "sleep 1000")))
	return o
}

func TestResendUntilAcknowledged(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	launchOne(t, s, "t1")
	first := s.update("t1", 2*time.Second)
	if first.GetState() != mesos.TASK_STARTING {
		t.Fatalf("first %v", first)
	}
	// Not acknowledged: the same update (same uuid) comes again, and RUNNING does not
	// overtake it.
	start := time.Now()
	again := s.update("t1", 2*time.Second)
	if again.GetState() != mesos.TASK_STARTING || !bytes.Equal(again.UUID, first.UUID) {
		t.Fatalf("resent %v", again)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("resent after %v, before the resend interval", d)
	}
	// A wrong uuid is ignored.
	s.mustCall(calls.Acknowledge(first.AgentID.Value, "t1", newUUID()))
	s.ack(again)
	running := s.update("t1", 2*time.Second)
	if running.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("after ack %v", running)
	}
	s.ack(running)
	if ev := s.wait(600*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_UPDATE }); ev != nil {
		t.Fatalf("update after everything was acknowledged: %v", ev.Update.Status)
	}
}

func TestReconcile(t *testing.T) {
	for _, pa := range []bool{true, false} {
		pa := pa
		t.Run(map[bool]string{true: "partition-aware", false: "legacy"}[pa], func(t *testing.T) {
			t.Parallel()
			m := startMesos(t, testOptions())
			fi := frameworkInfo("fw")
			if pa {
				fi = frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE)
			}
			s := subscribe(t, m.URL(), pbCodec, fi)
			o := launchOne(t, s, "t1")
			s.ack(s.update("t1", 2*time.Second, mesos.TASK_STARTING))
			s.ack(s.update("t1", 2*time.Second, mesos.TASK_RUNNING))

			check := func(st *mesos.TaskStatus, want mesos.TaskState) {
				t.Helper()
				if st.GetState() != want || st.GetReason() != mesos.REASON_RECONCILIATION || st.GetSource() != mesos.SOURCE_MASTER || len(st.UUID) != 0 {
					t.Fatalf("reconcile answer %v, want %s", st, want)
				}
			}
			// Implicit.
			s.mustCall(calls.Reconcile())
			check(s.update("t1", 2*time.Second), mesos.TASK_RUNNING)
			// Explicit: known, unknown on a registered agent, unknown on an unknown agent, no agent.
			s.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"t1": o.AgentID.Value, "ghost": o.AgentID.Value, "ghost2": "no-such-agent", "ghost3": ""})))
			lost := func(s mesos.TaskState) mesos.TaskState {
				if pa {
					return s
				}
				return mesos.TASK_LOST
			}
			got := s.updates(4, 2*time.Second)
			check(got["t1"], mesos.TASK_RUNNING)
			check(got["ghost"], lost(mesos.TASK_GONE))
			check(got["ghost2"], lost(mesos.TASK_UNKNOWN))
			check(got["ghost3"], lost(mesos.TASK_UNKNOWN))
			// Unknown task on an unreachable agent.
			if err := m.LoseAgent(o.AgentID.Value); err != nil {
				t.Fatal(err)
			}
			st := s.update("t1", 2*time.Second)
			if st.GetState() != lost(mesos.TASK_UNREACHABLE) || st.GetSource() != mesos.SOURCE_MASTER || len(st.UUID) != 0 {
				t.Fatalf("lost agent: %v", st)
			}
			if pa && st.UnreachableTime == nil {
				t.Fatalf("no unreachable_time: %v", st)
			}
			s.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"ghost4": o.AgentID.Value})))
			check(s.update("ghost4", 2*time.Second), lost(mesos.TASK_UNREACHABLE))
			// KILL of an unknown task is answered as reconciliation.
			s.mustCall(calls.Kill("ghost5", ""))
			check(s.update("ghost5", 2*time.Second), lost(mesos.TASK_UNKNOWN))
		})
	}
}

func TestFrameworkFailover(t *testing.T) {
	m := startMesos(t, testOptions())
	fi := frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	timeout := 60.0
	fi.FailoverTimeout = &timeout
	s1 := subscribe(t, m.URL(), pbCodec, fi)
	launchOne(t, s1, "t1")
	st := s1.update("t1", 2*time.Second, mesos.TASK_STARTING) // not acknowledged

	fi2 := *fi
	fi2.ID = &mesos.FrameworkID{Value: s1.fwID}
	s2 := subscribe(t, m.URL(), jsonCodec, &fi2)
	if s2.fwID != s1.fwID {
		t.Fatalf("failover got id %s, want %s", s2.fwID, s1.fwID)
	}
	ev := s1.next(scheduler.Event_ERROR, 2*time.Second)
	if !strings.Contains(ev.Error.Message, "failed over") {
		t.Fatalf("old stream error %q", ev.Error.Message)
	}
	// The unacknowledged update is resent at once to the new subscriber.
	again := s2.update("t1", 150*time.Millisecond)
	if !bytes.Equal(again.UUID, st.UUID) {
		t.Fatalf("resent %v, want uuid of %v", again, st)
	}
	// The old stream's calls are refused (wrong stream id): mesos-go sees an error.
	if err := s1.call(calls.Revive()); err == nil {
		t.Fatal("call on the failed-over stream succeeded")
	}
	s2.ack(again)
	s2.ack(s2.update("t1", 2*time.Second, mesos.TASK_RUNNING))
}

func TestFailoverTimeoutRemovesFramework(t *testing.T) {
	m := startMesos(t, testOptions())
	fi := frameworkInfo("fw")
	timeout := 0.2
	fi.FailoverTimeout = &timeout
	s := subscribe(t, m.URL(), pbCodec, fi)
	launchOne(t, s, "t1")
	s.ack(s.update("t1", 2*time.Second, mesos.TASK_STARTING))
	s.close()
	waitFor(t, 3*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		_, gone := m.removed[s.fwID]
		return gone
	})
	st := m.State()
	if len(st.Frameworks) != 0 {
		t.Fatalf("frameworks after removal: %+v", st.Frameworks)
	}
	for _, a := range st.Slaves {
		if a.UsedResources.CPUs != 0 {
			t.Fatalf("agent %s still uses %v", a.ID, a.UsedResources)
		}
	}
	// The id cannot come back: a 200 stream with one ERROR event.
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/api/v1/scheduler", bytes.NewReader(encodeCall(t, calls.Subscribe(fi).With(calls.SubscribeTo(s.fwID)), true)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Framework has been removed") || !strings.Contains(string(body), `"type":"ERROR"`) {
		t.Fatalf("resubscribe removed framework: %d %q", resp.StatusCode, body)
	}
}

func TestTeardown(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	launchOne(t, s, "t1")
	s.update("t1", 2*time.Second, mesos.TASK_STARTING)
	s.mustCall(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
	waitFor(t, 2*time.Second, func() bool { return len(m.State().Frameworks) == 0 })
}

func TestRedirectFromNonLeader(t *testing.T) {
	o := testOptions()
	o.Masters = 2
	m := startMesos(t, o)
	urls := m.URLs()
	if len(urls) != 2 || urls[0] != m.URL() {
		t.Fatalf("urls %v leader %s", urls, m.URL())
	}
	resp, _ := rawPost(t, urls[1]+"/api/v1/scheduler", "application/json", "", []byte(`{}`))
	if resp.StatusCode != 307 || resp.Header.Get("Location") != "//"+strings.TrimPrefix(urls[0], "http://")+"/api/v1/scheduler" {
		t.Fatalf("non-leader: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// State and /master/redirect point at the leader too.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/master/state", "/master/redirect"} {
		r, err := noFollow.Get(urls[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 307 || !strings.HasPrefix(r.Header.Get("Location"), "//"+strings.TrimPrefix(urls[0], "http://")+"/master") {
			t.Fatalf("%s on a non-leader: %d %q", path, r.StatusCode, r.Header.Get("Location"))
		}
	}
	// mesos-go follows the redirect for SUBSCRIBE.
	s := subscribe(t, urls[1], pbCodec, frameworkInfo("fw"))
	if !strings.HasPrefix(s.fwID, m.masters[0].id) {
		t.Fatalf("framework id %s", s.fwID)
	}
	// Master failover: the stream drops and leadership moves.
	m.FailoverMaster()
	if m.URL() != urls[1] {
		t.Fatalf("leader after failover %s", m.URL())
	}
	select {
	case <-s.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("stream survived master failover")
	}
	resp, _ = rawPost(t, urls[0]+"/api/v1/scheduler", "application/json", "", []byte(`{}`))
	if resp.StatusCode != 307 || !strings.Contains(resp.Header.Get("Location"), strings.TrimPrefix(urls[1], "http://")) {
		t.Fatalf("old leader: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	fi := frameworkInfo("fw")
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	s2 := subscribe(t, urls[1], jsonCodec, fi)
	if s2.fwID != s.fwID {
		t.Fatalf("re-subscribed as %s, want %s", s2.fwID, s.fwID)
	}
	s2.offers(2, 2*time.Second)
}

func TestBasicAuth(t *testing.T) {
	o := testOptions()
	o.Principal, o.Secret = "fw", "s3cret"
	m := startMesos(t, o)
	resp, _ := rawPost(t, m.URL()+"/api/v1/scheduler", "application/json", "", []byte(`{}`))
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no credentials: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/api/v1/scheduler", strings.NewReader(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"a","principal":"fw"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("fw", "s3cret")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("with credentials: %d", r.StatusCode)
	}
}
