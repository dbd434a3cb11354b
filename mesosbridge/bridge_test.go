package mesosbridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

// Subscribe, persist the id before EventSubscribed, launch a task; restart the
// client with the stored id: same framework, the task is still there and answers
// the explicit reconciliation.
func TestSubscribeAndRestartWithPersistedFrameworkID(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	st := &memStore{}
	cfg := testConfig([]string{m.URL()}, st)
	var ledger []ReconcileTask
	cfg.ReconcileTasks = func() []ReconcileTask { return ledger }

	r1 := startClient(t, cfg)
	sub, i := r1.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	if sub.FrameworkID == "" {
		t.Fatal("EventSubscribed without a framework id")
	}
	if id, _ := st.get(); id != sub.FrameworkID {
		t.Fatalf("framework id not persisted before EventSubscribed: store %q, event %q", id, sub.FrameworkID)
	}
	if !r1.c.Subscribed() || r1.c.FrameworkID() != sub.FrameworkID {
		t.Fatal("Subscribed/FrameworkID do not reflect the subscription")
	}
	// Nothing to reconcile: EventReconciled at once.
	r1.waitEvent(i, 5*time.Second, "EventReconciled", isType(EventReconciled))
	if r1.metric("converge_mesos_subscribed", nil) != 1 {
		t.Fatal("subscribed gauge not 1")
	}
	agent, _ := r1.launchOne(i, "task-1", false)
	if r1.metric("converge_mesos_offers_accepted_total", nil) != 1 {
		t.Fatalf("offers_accepted_total = %v", r1.metric("converge_mesos_offers_accepted_total", nil))
	}
	if err := r1.stop(); err != nil {
		t.Fatalf("Run returned %v after cancel", err)
	}

	ledger = []ReconcileTask{{TaskID: "task-1", AgentID: agent}}
	r2 := startClient(t, cfg)
	sub2, j := r2.waitEvent(0, 10*time.Second, "SUBSCRIBED after restart", isType(EventSubscribed))
	if sub2.FrameworkID != sub.FrameworkID {
		t.Fatalf("restart subscribed as %q, want the stored %q", sub2.FrameworkID, sub.FrameworkID)
	}
	up, k := r2.waitEvent(j, 10*time.Second, "reconciliation answer for task-1", isUpdate("task-1"))
	if up.Status.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("task-1 is %s after the restart, want RUNNING", up.Status.GetState())
	}
	r2.waitEvent(k, 10*time.Second, "EventReconciled", isType(EventReconciled))
	if st.saves[len(st.saves)-1] != sub.FrameworkID || len(st.saves) != 1 {
		t.Fatalf("saves %v: the known id must not be saved again", st.saves)
	}
	s := getState(t, m.URL())
	if len(s.Frameworks) != 1 || s.Frameworks[0].ID != sub.FrameworkID || !s.Frameworks[0].Active {
		t.Fatalf("master state: %+v", s.Frameworks)
	}
}

// A failed SaveFrameworkID must not let EventSubscribed through; the bridge
// retries and reports the id only once it is durable, keeping the same framework.
func TestFrameworkIDPersistedBeforeSubscribedEvent(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	st := &memStore{failAt: 2}
	r := startClient(t, testConfig([]string{m.URL()}, st))
	sub, _ := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	st.mu.Lock()
	saves := append([]string(nil), st.saves...)
	st.mu.Unlock()
	if len(saves) != 3 || saves[0] != sub.FrameworkID || saves[2] != sub.FrameworkID {
		t.Fatalf("saves %v, want three tries of %s", saves, sub.FrameworkID)
	}
	for _, ev := range r.snapshot() {
		if ev.Type == EventSubscribed && ev.FrameworkID != sub.FrameworkID {
			t.Fatalf("a second framework was created: %v", ev.FrameworkID)
		}
	}
}

// An update is acknowledged only when the consumer says so: until then the agent
// resends it; after Acknowledge it stops. Updates without a uuid are never acknowledged.
func TestAcknowledgeOnlyWhenConsumerAcknowledges(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	r := startClient(t, testConfig([]string{m.URL()}, &memStore{}))
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	// TASK_STARTING is never acknowledged, so TASK_RUNNING (queued behind it) never comes.
	ev, i := r.waitEvent(i, 10*time.Second, "offers", isType(EventOffers))
	ti := mesos.TaskInfo{Name: "a", TaskID: mesos.TaskID{Value: "ack-1"}, AgentID: ev.Offers[0].AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}, Command: &mesos.CommandInfo{Value: proto("true")}}
	// ack-ctl, launched with it and never acknowledged, keeps the agent's
	// resend schedule in view: the same as ack-1's, had it not been acknowledged.
	ctl := ti
	ctl.Name, ctl.TaskID = "ctl", mesos.TaskID{Value: "ack-ctl"}
	if err := r.c.Launch(context.Background(), []mesos.OfferID{ev.Offers[0].ID}, []mesos.TaskInfo{ti, ctl}, 1); err != nil {
		t.Fatal(err)
	}
	first, j := r.waitEvent(i, 10*time.Second, "STARTING", isUpdate("ack-1", mesos.TASK_STARTING))
	if len(first.Status.UUID) == 0 {
		t.Fatal("agent update without uuid")
	}
	again, j := r.waitEvent(j+1, 5*time.Second, "STARTING resent", isUpdate("ack-1", mesos.TASK_STARTING))
	if !bytes.Equal(again.Status.UUID, first.Status.UUID) {
		t.Fatal("the resent update has another uuid")
	}
	for _, e := range r.snapshot()[i:] {
		if isUpdate("ack-1", mesos.TASK_RUNNING)(e) {
			t.Fatal("RUNNING delivered before STARTING was acknowledged")
		}
	}
	if err := r.c.Acknowledge(context.Background(), *again.Status); err != nil {
		t.Fatalf("acknowledge: %v", err)
	}
	run, k := r.waitEvent(j+1, 5*time.Second, "RUNNING after the ack", isUpdate("ack-1", mesos.TASK_RUNNING))
	if err := r.c.Acknowledge(context.Background(), *run.Status); err != nil {
		t.Fatal(err)
	}
	// Reconciliation answers carry no uuid; Acknowledge is a no-op for them.
	if err := r.c.Reconcile(context.Background(), []ReconcileTask{{TaskID: "ack-1"}}); err != nil {
		t.Fatal(err)
	}
	rec, _ := r.waitEvent(k+1, 5*time.Second, "reconciliation answer", func(e Event) bool {
		return isUpdate("ack-1")(e) && len(e.Status.UUID) == 0
	})
	acks := r.metric("converge_mesos_calls_total", map[string]string{"type": "ACKNOWLEDGE"})
	if err := r.c.Acknowledge(context.Background(), *rec.Status); err != nil {
		t.Fatal(err)
	}
	if got := r.metric("converge_mesos_calls_total", map[string]string{"type": "ACKNOWLEDGE"}); got != acks {
		t.Fatal("an update without uuid was acknowledged")
	}
	// Once acknowledged, STARTING is not resent any more: ack-ctl's STARTING,
	// resent on the schedule ack-1's would follow, comes twice more meanwhile.
	n := r.count()
	_, c1 := r.waitEvent(n, 10*time.Second, "ack-ctl's STARTING resent", isUpdate("ack-ctl", mesos.TASK_STARTING))
	_, c2 := r.waitEvent(c1+1, 10*time.Second, "ack-ctl's STARTING resent again", isUpdate("ack-ctl", mesos.TASK_STARTING))
	for _, e := range r.snapshot()[n:c2] {
		if isUpdate("ack-1", mesos.TASK_STARTING)(e) {
			t.Fatal("STARTING resent after it was acknowledged")
		}
	}
}

// Explicit reconciliation after SUBSCRIBED lists the ledger's tasks and ends with
// EventReconciled once each has answered; implicit reconciliation runs on its period.
func TestExplicitAndImplicitReconciliation(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	st := &memStore{}
	cfg := testConfig([]string{m.URL()}, st)
	r := startClient(t, cfg)
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	agent, _ := r.launchOne(i, "rec-1", false)
	r.stop()

	cfg.ReconcileTasks = func() []ReconcileTask {
		return []ReconcileTask{{TaskID: "rec-1", AgentID: agent}, {TaskID: "ghost"}}
	}
	cfg.ImplicitReconcileInterval = 300 * time.Millisecond
	r2 := startClient(t, cfg)
	_, j := r2.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	_, k := r2.waitEvent(j, 10*time.Second, "EventReconciled", isType(EventReconciled))
	var sawRec, sawGhost bool
	for _, e := range r2.snapshot()[j:k] {
		if isUpdate("rec-1", mesos.TASK_RUNNING)(e) {
			sawRec = true
		}
		if isUpdate("ghost")(e) {
			sawGhost = true
			if s := e.Status.GetState(); s != mesos.TASK_UNKNOWN && s != mesos.TASK_GONE {
				t.Fatalf("ghost answered %s", s)
			}
		}
	}
	if !sawRec || !sawGhost {
		t.Fatalf("EventReconciled before every task answered (rec-1 %v, ghost %v)", sawRec, sawGhost)
	}
	if r2.metric("converge_mesos_reconciliation_rounds_total", nil) != 1 ||
		r2.metric("converge_mesos_reconciliation_duration_seconds", nil) != 1 {
		t.Fatal("reconciliation metrics not recorded")
	}
	// Implicit: rec-1 keeps answering every ~300ms with REASON_RECONCILIATION.
	_, a := r2.waitEvent(k, 5*time.Second, "implicit answer", isReconcileAnswer("rec-1"))
	r2.waitEvent(a+1, 5*time.Second, "second implicit answer", isReconcileAnswer("rec-1"))
}

func isReconcileAnswer(taskID string) func(Event) bool {
	return func(e Event) bool {
		return isUpdate(taskID)(e) && e.Status.GetReason() == mesos.REASON_RECONCILIATION && len(e.Status.UUID) == 0
	}
}

// MESSAGE both ways: a position query reaches the (simulated) converge executor,
// whose answer comes back as EventMessage.
func TestFrameworkMessagesBothWays(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	r := startClient(t, testConfig([]string{m.URL()}, &memStore{}))
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	agent, i := r.launchOne(i, "msg-1", true)
	q := election.Message{Type: election.TypePositionQuery, Epoch: 3, TaskID: "msg-1"}
	if err := r.c.SendMessage(context.Background(), agent, "msg-1", q.Encode()); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	ev, _ := r.waitEvent(i, 5*time.Second, "the executor's answer", isType(EventMessage))
	reply, err := election.Decode(ev.Message.Data)
	if err != nil || reply.Type != election.TypePosition || reply.Epoch != 3 || reply.TaskID != "msg-1" {
		t.Fatalf("reply %+v (%v)", reply, err)
	}
	if ev.Message.AgentID != agent || ev.Message.ExecutorID != "msg-1" {
		t.Fatalf("message from %s/%s", ev.Message.AgentID, ev.Message.ExecutorID)
	}
}

// Decline with refuse_seconds, Suppress, rate-limited Revive.
func TestDeclineSuppressRevive(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{Agents: 1})
	cfg := testConfig([]string{m.URL()}, &memStore{})
	cfg.ReviveInterval = time.Second
	r := startClient(t, cfg)
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	ev, i := r.waitEvent(i, 10*time.Second, "offers", isType(EventOffers))
	if err := r.c.Suppress(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.c.Decline(context.Background(), []mesos.OfferID{ev.Offers[0].ID}, 3600); err != nil {
		t.Fatal(err)
	}
	if r.metric("converge_mesos_offers_declined_total", nil) != 1 {
		t.Fatal("offers_declined_total")
	}
	// Suppressed (and filtered for an hour): no offer while the master's
	// stream moves on (heartbeats every 200ms; offer rounds every 50ms).
	n := r.count()
	h := r.heartbeats(3)
	for _, e := range r.snapshot()[n:h] {
		if e.Type == EventOffers {
			t.Fatal("offer while suppressed")
		}
	}
	// Three revives in a burst: one REVIVE now, one coalesced after the interval.
	for k := 0; k < 3; k++ {
		if err := r.c.Revive(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.metric("converge_mesos_calls_total", map[string]string{"type": "REVIVE"}); got != 1 {
		t.Fatalf("REVIVE calls right after the burst: %v, want 1", got)
	}
	r.waitEvent(n, 5*time.Second, "offers after revive", isType(EventOffers))
	eventually(t, 3*time.Second, "the coalesced REVIVE", func() bool {
		return r.metric("converge_mesos_calls_total", map[string]string{"type": "REVIVE"}) == 2
	})
	// Nothing more is pending: no third REVIVE over more than an interval
	// (1s) of the master's heartbeats.
	r.heartbeats(6)
	if got := r.metric("converge_mesos_calls_total", map[string]string{"type": "REVIVE"}); got != 2 {
		t.Fatalf("REVIVE calls: %v, want 2 (rate limit)", got)
	}
	_ = i
}

// Authentication: required (no credentials), refused (wrong secret), given. The
// secret never appears in a log line.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value-never-logged"
	m := startMesos(t, localmesos.Options{Principal: "converge", Secret: secret})

	run := func(principal, sec string, logs *logSink) (*runner, error) {
		cfg := testConfig([]string{m.URL()}, &memStore{})
		cfg.Principal, cfg.Secret = principal, sec
		cfg.Log = logs.logger()
		r := startClient(t, cfg)
		select {
		case err := <-r.done:
			r.done <- err
			return r, err
		case <-time.After(10 * time.Second):
			return r, nil
		}
	}

	logs := &logSink{}
	_, err := run("", "", logs)
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "requires authentication") {
		t.Fatalf("no credentials: %v", err)
	}
	_, err = run("converge", "wrong-secret", logs)
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "refused the credentials") ||
		strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("wrong secret: %v", err)
	}

	cfg := testConfig([]string{m.URL()}, &memStore{})
	cfg.Principal, cfg.Secret = "converge", secret
	cfg.Log = logs.logger()
	r := startClient(t, cfg)
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED with credentials", isType(EventSubscribed))
	_, _ = r.launchOne(i, "auth-1", false)
	if err := r.c.Kill(context.Background(), "auth-1", ""); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(i, 10*time.Second, "KILLED", isUpdate("auth-1", mesos.TASK_KILLED))
	r.stop()
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "wrong-secret") {
		t.Fatal("a secret appears in the logs")
	}
	if !strings.Contains(logs.String(), "subscribed") {
		t.Fatalf("log capture did not work: %q", logs.String())
	}
}

// TLS to the master with a CA file.
func TestTLSWithCACert(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	srv := httptest.NewUnstartedServer(m.Handler())
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig([]string{srv.URL}, &memStore{})
	cfg.CACertFile = caFile
	r := startClient(t, cfg)
	r.waitEvent(0, 10*time.Second, "SUBSCRIBED over TLS", isType(EventSubscribed))

	// Without the CA the certificate is refused and the bridge keeps retrying.
	cfg2 := testConfig([]string{srv.URL}, &memStore{})
	logs := &logSink{}
	cfg2.Log = logs.logger()
	r2 := startClient(t, cfg2)
	eventually(t, 5*time.Second, "a certificate error", func() bool {
		return strings.Contains(logs.String(), "certificate")
	})
	if r2.c.Subscribed() {
		t.Fatal("subscribed without trusting the certificate")
	}
	_ = tls.VersionTLS12
}

// Kill retried until the task is terminal: the first KILLs go unanswered while
// the agent is unreachable; KILL keeps being re-issued, and stops after TASK_KILLED
// (or a terminal state) passes through.
func TestKillRetriedUntilTerminal(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{Agents: 1})
	r := startClient(t, testConfig([]string{m.URL()}, &memStore{}))
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	agent, _ := r.launchOne(i, "kill-1", false)
	ack := func(from int) int {
		// acknowledge everything seen so far so updates flow
		evs := r.snapshot()
		for _, e := range evs[from:] {
			if e.Type == EventUpdate {
				_ = r.c.Acknowledge(context.Background(), *e.Status)
			}
		}
		return len(evs)
	}
	i = ack(0)
	fault(t, m.URL(), "/fault/agent/lose?agent="+agent)
	if err := r.c.Kill(context.Background(), "kill-1", agent); err != nil {
		t.Fatalf("kill: %v", err)
	}
	eventually(t, 5*time.Second, "KILL re-issued", func() bool {
		return r.metric("converge_mesos_calls_total", map[string]string{"type": "KILL"}) >= 3
	})
	if r.metric("converge_mesos_kills_outstanding", nil) != 1 {
		t.Fatal("kill not tracked")
	}
	fault(t, m.URL(), "/fault/agent/restore?agent="+agent)
	r.waitEvent(i, 10*time.Second, "kill-1 terminal", func(e Event) bool {
		return isUpdate("kill-1")(e) && IsTerminal(e.Status.GetState())
	})
	eventually(t, 2*time.Second, "kill tracking cleared", func() bool {
		return r.metric("converge_mesos_kills_outstanding", nil) == 0
	})
	r.heartbeats(1) // a re-issue already in flight may land
	kills := r.metric("converge_mesos_calls_total", map[string]string{"type": "KILL"})
	// The retry interval is at most KillMaxRetry (1s): longer than 6 heartbeats.
	r.heartbeats(6)
	if got := r.metric("converge_mesos_calls_total", map[string]string{"type": "KILL"}); got != kills {
		t.Fatalf("KILL still re-issued after the terminal update (%v -> %v)", kills, got)
	}
}

// The master removes the framework (failover timeout passed while the scheduler was
// away): Run says so loudly and returns; a new framework starts only when asked.
func TestFrameworkRemoved(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	st := &memStore{}
	cfg := testConfig([]string{m.URL()}, st)
	cfg.FailoverTimeout = 300 * time.Millisecond
	r := startClient(t, cfg)
	sub, _ := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	r.stop()
	eventually(t, 10*time.Second, "the master removing the framework (failover timeout)", func() bool {
		for _, fw := range m.State().Frameworks {
			if fw.ID == sub.FrameworkID {
				return false
			}
		}
		return true
	})

	logs := &logSink{}
	cfg.Log = logs.logger()
	r2 := startClient(t, cfg)
	var err error
	select {
	case err = <-r2.done:
		r2.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the framework was removed")
	}
	if !errors.Is(err, ErrFrameworkRemoved) {
		t.Fatalf("Run: %v, want ErrFrameworkRemoved", err)
	}
	r2.waitEvent(0, time.Second, "EventFrameworkRemoved", isType(EventFrameworkRemoved))
	if _, removed := st.get(); removed == "" {
		t.Fatal("MarkFrameworkRemoved not called")
	}
	if r2.metric("converge_mesos_framework_removed", nil) != 1 {
		t.Fatal("framework_removed gauge")
	}
	if !strings.Contains(logs.String(), "REMOVED") {
		t.Fatal("no loud log line")
	}
	// The operator asks for a new framework.
	cfg.NewFramework = true
	cfg.Log = testLogger(t)
	r3 := startClient(t, cfg)
	sub3, _ := r3.waitEvent(0, 10*time.Second, "SUBSCRIBED as a new framework", isType(EventSubscribed))
	if sub3.FrameworkID == sub.FrameworkID {
		t.Fatal("same framework id after NewFramework")
	}
	if id, _ := st.get(); id != sub3.FrameworkID {
		t.Fatal("new framework id not persisted")
	}
}

// Heartbeats stop while the connection stays open (a partition): after
// HeartbeatMisses intervals the bridge drops the stream and resubscribes.
func TestHeartbeatLoss(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	p := newMasterProxies(t, m.URLs())[0]
	r := startClient(t, testConfig([]string{p.URL()}, &memStore{}))
	sub, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	p.freeze()
	frozeAt := time.Now()
	_, j := r.waitEvent(i, 5*time.Second, "EventDisconnected", isType(EventDisconnected))
	if d := time.Since(frozeAt); d < 500*time.Millisecond {
		t.Fatalf("dropped after %v: before 3 missed heartbeats of 200ms", d)
	}
	sub2, _ := r.waitEvent(j, 5*time.Second, "SUBSCRIBED again", isType(EventSubscribed))
	if sub2.FrameworkID != sub.FrameworkID {
		t.Fatalf("resubscribed as %s, want %s", sub2.FrameworkID, sub.FrameworkID)
	}
	if r.metric("converge_mesos_heartbeat_timeouts_total", nil) < 1 {
		t.Fatal("heartbeat_timeouts_total")
	}
}

// Two masters: the bridge is pointed at the follower first and finds the leader
// through its 307; after a master failover it moves to the new leader with the same
// framework and the task survives.
func TestMasterFailover(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{Masters: 2})
	ps := newMasterProxies(t, m.URLs())
	leaderIdx := 0
	for k, u := range m.URLs() {
		if u == m.URL() {
			leaderIdx = k
		}
	}
	leader, follower := ps[leaderIdx], ps[1-leaderIdx]
	st := &memStore{}
	r := startClient(t, testConfig([]string{follower.URL(), leader.URL()}, st))
	sub, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	if got := r.c.Leader(); !strings.HasPrefix(got, leader.URL()) {
		t.Fatalf("leader %s, want %s", got, leader.URL())
	}
	if r.metric("converge_mesos_calls_total", map[string]string{"type": "SUBSCRIBE", "result": "redirect"}) != 1 {
		t.Fatal("SUBSCRIBE was not redirected once")
	}
	agent, i := r.launchOne(i, "fo-1", false)

	fault(t, m.URL(), "/fault/master/failover")
	_, i = r.waitEvent(i, 5*time.Second, "EventDisconnected", isType(EventDisconnected))
	sub2, i := r.waitEvent(i, 10*time.Second, "SUBSCRIBED at the new leader", isType(EventSubscribed))
	if sub2.FrameworkID != sub.FrameworkID {
		t.Fatalf("new framework %s after failover, want %s", sub2.FrameworkID, sub.FrameworkID)
	}
	if got := r.c.Leader(); !strings.HasPrefix(got, follower.URL()) {
		t.Fatalf("leader %s after failover, want %s", got, follower.URL())
	}
	if err := r.c.Reconcile(context.Background(), []ReconcileTask{{TaskID: "fo-1", AgentID: agent}}); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(i, 5*time.Second, "fo-1 RUNNING at the new leader", isUpdate("fo-1", mesos.TASK_RUNNING))
}

// Every call type follows a 307 to the new leader and is retried there once: the
// stream to the old leader is frozen (the bridge still believes it is subscribed),
// leadership moves, and the next call meets the old leader's 307.
func TestEveryCallFollowsRedirectToLeader(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{Masters: 2})
	ps := newMasterProxies(t, m.URLs())
	r := startClient(t, testConfig([]string{ps[0].URL(), ps[1].URL()}, &memStore{}))
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	agent, i := r.launchOne(i, "redir-1", true)
	offer, _ := r.waitEvent(i, 10*time.Second, "offers", isType(EventOffers))
	ctx := context.Background()
	staleTask := mesos.TaskInfo{Name: "x", TaskID: mesos.TaskID{Value: "redir-x"}, AgentID: offer.Offers[0].AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1)}, Command: &mesos.CommandInfo{Value: proto("true")}}
	uuid := bytes.Repeat([]byte{7}, 16)
	cases := []struct {
		typ  string
		call func() error
	}{
		{"DECLINE", func() error { return r.c.Decline(ctx, []mesos.OfferID{offer.Offers[0].ID}, 1) }},
		{"ACCEPT", func() error {
			return r.c.Launch(ctx, []mesos.OfferID{offer.Offers[0].ID}, []mesos.TaskInfo{staleTask}, 1)
		}},
		{"RECONCILE", func() error { return r.c.Reconcile(ctx, nil) }},
		{"MESSAGE", func() error { return r.c.SendMessage(ctx, agent, "redir-1", []byte("{}")) }},
		{"SUPPRESS", func() error { return r.c.Suppress(ctx) }},
		{"REVIVE", func() error { return r.c.Revive(ctx) }},
		{"ACKNOWLEDGE", func() error {
			return r.c.Acknowledge(ctx, mesos.TaskStatus{TaskID: mesos.TaskID{Value: "redir-1"},
				AgentID: &mesos.AgentID{Value: agent}, UUID: uuid, State: mesos.TASK_RUNNING.Enum()})
		}},
		{"KILL", func() error { return r.c.Kill(ctx, "redir-1", agent) }},
	}
	for _, tc := range cases {
		before := r.c.Leader()
		for _, p := range ps {
			p.freeze()
		}
		fault(t, m.URL(), "/fault/master/failover")
		r.c.closeIdle() // pooled connections went through the freeze
		if err := tc.call(); err != nil {
			t.Fatalf("%s after failover: %v", tc.typ, err)
		}
		if r.metric("converge_mesos_calls_total", map[string]string{"type": tc.typ, "result": "redirect"}) < 1 {
			t.Fatalf("%s was not redirected", tc.typ)
		}
		if r.metric("converge_mesos_calls_total", map[string]string{"type": tc.typ, "result": "ok"}) < 1 {
			t.Fatalf("%s did not succeed at the new leader", tc.typ)
		}
		if after := r.c.Leader(); after == before {
			t.Fatalf("%s: leader still %s", tc.typ, after)
		}
	}
	// The kill, retried at the new leader, ends the task.
	r.waitEvent(i, 10*time.Second, "redir-1 KILLED", isUpdate("redir-1", mesos.TASK_KILLED))
}

// The framework id lives in etcd (store.Store): a restart resubscribes as the same
// framework; a framework marked removed stops Run at once until the operator asks
// for a new one, whose id replaces the mark.
func TestFrameworkIDInEtcdStore(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	etcd := etcdtest.Start(t)
	st := store.NewFromClient(etcd.Client(), "/converge-bridge-test")
	var _ FrameworkStore = st
	cfg := testConfig([]string{m.URL()}, st)

	r := startClient(t, cfg)
	sub, _ := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	r.stop()
	if id, err := st.LoadFrameworkID(context.Background()); err != nil || id != sub.FrameworkID {
		t.Fatalf("stored id %q (%v), want %q", id, err, sub.FrameworkID)
	}
	r2 := startClient(t, cfg)
	sub2, _ := r2.waitEvent(0, 10*time.Second, "SUBSCRIBED after restart", isType(EventSubscribed))
	if sub2.FrameworkID != sub.FrameworkID {
		t.Fatalf("restart subscribed as %s, want %s", sub2.FrameworkID, sub.FrameworkID)
	}
	r2.stop()

	if err := st.MarkFrameworkRemoved(context.Background(), "Framework has been removed"); err != nil {
		t.Fatal(err)
	}
	r3 := startClient(t, cfg)
	select {
	case err := <-r3.done:
		r3.done <- err
		if !errors.Is(err, ErrFrameworkRemoved) {
			t.Fatalf("Run with a removed framework: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept going with a framework marked removed")
	}
	cfg.NewFramework = true
	r4 := startClient(t, cfg)
	sub4, _ := r4.waitEvent(0, 10*time.Second, "SUBSCRIBED as a new framework", isType(EventSubscribed))
	if sub4.FrameworkID == sub.FrameworkID {
		t.Fatal("NewFramework reused the removed id")
	}
	if id, err := st.LoadFrameworkID(context.Background()); err != nil || id != sub4.FrameworkID {
		t.Fatalf("after NewFramework: stored %q (%v)", id, err)
	}
}

// Explicit reconciliation retries, with backoff, the tasks that have not answered:
// the first RECONCILE meets a master that is not ready (503); the retry succeeds and
// EventReconciled follows the answers.
func TestExplicitReconciliationRetries(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	p := newMasterProxies(t, m.URLs())[0]
	cfg := testConfig([]string{p.URL()}, &memStore{})
	cfg.ReconcileTasks = func() []ReconcileTask { return []ReconcileTask{{TaskID: "never-launched"}} }
	p.failNext(scheduler.Call_RECONCILE, 1)
	r := startClient(t, cfg)
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	_, k := r.waitEvent(i, 10*time.Second, "EventReconciled", isType(EventReconciled))
	if _, j := r.waitEvent(i, time.Millisecond, "answer", isUpdate("never-launched", mesos.TASK_UNKNOWN)); j > k {
		t.Fatal("EventReconciled before the answer")
	}
	if got := r.metric("converge_mesos_calls_total", map[string]string{"type": "RECONCILE", "result": "error"}); got != 1 {
		t.Fatalf("failed RECONCILE calls: %v", got)
	}
	// (the answer may overtake the call's own 202)
	eventually(t, 2*time.Second, "the successful RECONCILE retry", func() bool {
		return r.metric("converge_mesos_calls_total", map[string]string{"type": "RECONCILE", "result": "ok"}) == 1
	})
}

// The JSON codec works end to end as well (launch, update, kill).
func TestJSONCodec(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	cfg := testConfig([]string{m.URL()}, &memStore{})
	cfg.Codec = "json"
	r := startClient(t, cfg)
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	agent, i := r.launchOne(i, "json-1", false)
	if err := r.c.Kill(context.Background(), "json-1", agent); err != nil {
		t.Fatal(err)
	}
	r.waitEvent(i, 10*time.Second, "KILLED", isUpdate("json-1", mesos.TASK_KILLED))
}

// LAUNCH_GROUP: two tasks under one executor start together.
func TestLaunchGroup(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	r := startClient(t, testConfig([]string{m.URL()}, &memStore{}))
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	ev, i := r.waitEvent(i, 10*time.Second, "offers", isType(EventOffers))
	o := ev.Offers[0]
	exec := mesos.ExecutorInfo{
		ExecutorID: mesos.ExecutorID{Value: "group-exec"},
		Type:       mesos.ExecutorInfo_DEFAULT,
		Resources:  []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32), scalar("disk", 16)},
	}
	var tasks []mesos.TaskInfo
	for _, id := range []string{"g-1", "g-2"} {
		// No CommandInfo: simulated tasks run nothing anyway.
		tasks = append(tasks, mesos.TaskInfo{Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
			Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}})
	}
	if err := r.c.LaunchGroup(context.Background(), []mesos.OfferID{o.ID}, exec, tasks, 1); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g-1", "g-2"} {
		up, _ := r.waitEvent(i, 10*time.Second, id+" update", isUpdate(id))
		if IsTerminal(up.Status.GetState()) {
			t.Fatalf("%s: %s %s", id, up.Status.GetState(), up.Status.GetMessage())
		}
	}
}

// A master that refuses connections is skipped: the next one is tried at once.
func TestDeadMasterSkipped(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	// A reconnect back-off of an hour: waiting for the dead master, or backing
	// off before the next one, would never subscribe in time.
	cfg := testConfig([]string{dead, m.URL()}, &memStore{})
	cfg.ReconnectBackoff, cfg.ReconnectMaxBackoff = time.Hour, time.Hour
	r := startClient(t, cfg)
	r.waitEvent(0, 10*time.Second, "SUBSCRIBED past the dead master", isType(EventSubscribed))
	if got := r.c.Leader(); !strings.HasPrefix(got, m.URL()) {
		t.Fatalf("leader %s, want %s", got, m.URL())
	}
}

// An update the controller never acknowledged (it crashed before the write was
// durable) reaches the restarted controller: no status update is lost.
func TestUnacknowledgedUpdateSurvivesRestart(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{ResendInterval: time.Hour})
	st := &memStore{}
	cfg := testConfig([]string{m.URL()}, st)
	r := startClient(t, cfg)
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	ev, i := r.waitEvent(i, 10*time.Second, "offers", isType(EventOffers))
	ti := mesos.TaskInfo{Name: "u", TaskID: mesos.TaskID{Value: "unacked-1"}, AgentID: ev.Offers[0].AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}, Command: &mesos.CommandInfo{Value: proto("sleep 100")}}
	if err := r.c.Launch(context.Background(), []mesos.OfferID{ev.Offers[0].ID}, []mesos.TaskInfo{ti}, 1); err != nil {
		t.Fatal(err)
	}
	first, _ := r.waitEvent(i, 10*time.Second, "STARTING", isUpdate("unacked-1", mesos.TASK_STARTING))
	r.stop() // "crash" before acknowledging

	r2 := startClient(t, cfg)
	again, _ := r2.waitEvent(0, 10*time.Second, "STARTING redelivered", isUpdate("unacked-1", mesos.TASK_STARTING))
	if !bytes.Equal(again.Status.UUID, first.Status.UUID) {
		t.Fatal("a different update was delivered")
	}
	if err := r2.c.Acknowledge(context.Background(), *again.Status); err != nil {
		t.Fatal(err)
	}
	r2.waitEvent(0, 10*time.Second, "RUNNING", isUpdate("unacked-1", mesos.TASK_RUNNING))
}

// Calls of every kind the controller makes, from many goroutines at once
// (it launches, declines, kills, acknowledges, messages and reconciles
// concurrently), each take effect at the master: launched tasks run (their
// updates acknowledged as they come), killed tasks end KILLED, declined
// offers are gone, messages and reconciliations are answered.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	// Heartbeats every second: a loaded machine must not make the bridge drop
	// the stream (a call in flight then fails, as it should) mid-test.
	m := startMesos(t, localmesos.Options{Agents: 6, HeartbeatInterval: time.Second})
	r := startClient(t, testConfig([]string{m.URL()}, &memStore{}))
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	ctx := context.Background()
	ackErrs := r.ackAll(i)
	offers := r.offersOfAgents(i, 6)

	// Four tasks under their own (simulated converge) executors, to kill,
	// message and reconcile.
	var setup []mesos.TaskInfo
	for k := 0; k < 4; k++ {
		setup = append(setup, executorTask(fmt.Sprintf("t-%d", k), offers[0].AgentID))
	}
	if err := r.c.Launch(ctx, []mesos.OfferID{offers[0].ID}, setup, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "t-0..t-3 RUNNING", func() bool {
		return tasksIn(m, "TASK_RUNNING", "t-0", "t-1", "t-2", "t-3")
	})

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	do := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- f()
		}()
	}
	agent := offers[0].AgentID.Value
	for _, id := range []string{"t-0", "t-1"} {
		do(func() error { return r.c.Kill(ctx, id, agent) })
	}
	for _, id := range []string{"t-2", "t-3"} {
		q := election.Message{Type: election.TypePositionQuery, Epoch: 1, TaskID: id}
		do(func() error { return r.c.SendMessage(ctx, agent, id, q.Encode()) })
		do(func() error { return r.c.Reconcile(ctx, []ReconcileTask{{TaskID: id, AgentID: agent}}) })
	}
	for k, o := range offers[1:3] {
		ti := executorTask(fmt.Sprintf("n-%d", k), o.AgentID)
		do(func() error { return r.c.Launch(ctx, []mesos.OfferID{o.ID}, []mesos.TaskInfo{ti}, 1) })
	}
	for _, o := range offers[3:] {
		do(func() error { return r.c.Decline(ctx, []mesos.OfferID{o.ID}, 3600) })
	}
	for k := 0; k < 64; k++ { // and a crowd of calls beside them
		do(func() error { return r.c.Reconcile(ctx, []ReconcileTask{{TaskID: "c"}}) })
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The crowd queued for the calls lane's connections instead of dialling
	// one each (converge_mesos_dials_total counts every dial).
	if d := r.metric("converge_mesos_dials_total", map[string]string{"lane": "calls"}); d > float64(laneConns[laneCalls]) {
		t.Fatalf("%v connections dialled for calls, more than the lane's %d", d, laneConns[laneCalls])
	}

	eventually(t, 10*time.Second, "t-0, t-1 KILLED; n-0, n-1 RUNNING", func() bool {
		return tasksIn(m, "TASK_KILLED", "t-0", "t-1") && tasksIn(m, "TASK_RUNNING", "n-0", "n-1", "t-2", "t-3")
	})
	for _, fw := range m.State().Frameworks {
		for _, o := range fw.Offers {
			for _, d := range offers[3:] {
				if o.ID == d.ID.Value {
					t.Fatalf("declined offer %s still outstanding", o.ID)
				}
			}
		}
	}
	// An agent forwards a task's next update only once the previous one is
	// acknowledged: these prove the acknowledgements took effect.
	for _, id := range []string{"n-0", "n-1"} {
		r.waitEvent(i, 5*time.Second, id+"'s RUNNING update, after STARTING's ack", isUpdate(id, mesos.TASK_RUNNING))
	}
	for _, id := range []string{"t-0", "t-1"} {
		r.waitEvent(i, 5*time.Second, id+"'s KILLED update", isUpdate(id, mesos.TASK_KILLED))
	}
	for _, id := range []string{"t-2", "t-3"} {
		r.waitEvent(i, 5*time.Second, id+"'s position answer", func(e Event) bool {
			if e.Type != EventMessage {
				return false
			}
			msg, err := election.Decode(e.Message.Data)
			return err == nil && msg.Type == election.TypePosition && msg.TaskID == id
		})
		r.waitEvent(i, 5*time.Second, id+"'s reconciliation answer", isReconcileAnswer(id))
	}
	select {
	case err := <-ackErrs:
		t.Fatalf("acknowledge: %v", err)
	default:
	}
}

// ackAll acknowledges, each from its own goroutine, every update with a uuid
// from event index from on, until the test ends; failures go to the channel.
func (r *runner) ackAll(from int) <-chan error {
	errs := make(chan error, 1)
	done := make(chan struct{})
	r.t.Cleanup(func() { close(done) })
	go func() {
		for next := from; ; {
			r.mu.Lock()
			evs := append([]Event(nil), r.events[next:]...)
			next = len(r.events)
			ch, closed := r.cond, r.closed
			r.mu.Unlock()
			for _, e := range evs {
				if e.Type == EventUpdate && len(e.Status.UUID) > 0 {
					go func(st mesos.TaskStatus) {
						if err := r.c.Acknowledge(context.Background(), st); err != nil {
							select {
							case errs <- err:
							default:
							}
						}
					}(*e.Status)
				}
			}
			if closed {
				return
			}
			select {
			case <-ch:
			case <-done:
				return
			}
		}
	}()
	return errs
}

// offersOfAgents waits until offers from n distinct agents arrived (after
// event index from) and returns one offer per agent.
func (r *runner) offersOfAgents(from, n int) []mesos.Offer {
	r.t.Helper()
	var out []mesos.Offer
	seen := map[string]bool{}
	for len(out) < n {
		ev, k := r.waitEvent(from, 10*time.Second, fmt.Sprintf("offers of %d agents", n), isType(EventOffers))
		for _, o := range ev.Offers {
			if !seen[o.AgentID.Value] {
				seen[o.AgentID.Value] = true
				out = append(out, o)
			}
		}
		from = k + 1
	}
	return out[:n]
}

func executorTask(id string, agent mesos.AgentID) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: agent,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
		Executor: &mesos.ExecutorInfo{
			ExecutorID: mesos.ExecutorID{Value: id},
			Command:    &mesos.CommandInfo{Value: proto("sleep 1000")},
			Resources:  []mesos.Resource{scalar("cpus", 0.01), scalar("mem", 16)},
		},
	}
}

// tasksIn reports whether the master has every task in ids in state.
func tasksIn(m *localmesos.Mesos, state string, ids ...string) bool {
	have := map[string]string{}
	for _, fw := range m.State().Frameworks {
		for _, ts := range append(fw.Tasks, fw.CompletedTasks...) {
			have[ts.ID] = ts.State
		}
	}
	for _, id := range ids {
		if have[id] != state {
			return false
		}
	}
	return true
}

// heartbeats waits until the bridge has read n more HEARTBEAT events from the
// master (the master's own clock, in its stream's order) and returns the
// number of events received by then.
func (r *runner) heartbeats(n int) int {
	r.t.Helper()
	hb := map[string]string{"type": "HEARTBEAT"}
	h0 := r.metric("converge_mesos_events_total", hb)
	eventually(r.t, 10*time.Second, fmt.Sprintf("%d heartbeats", n), func() bool {
		return r.metric("converge_mesos_events_total", hb) >= h0+float64(n)
	})
	return r.count()
}
