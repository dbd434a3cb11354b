package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// waitExit waits for the running controller's Run to return by itself and
// returns its error.
func (e *env) waitExit(within time.Duration) error {
	e.t.Helper()
	e.mu.Lock()
	done := e.done
	e.mu.Unlock()
	select {
	case err := <-done:
		e.mu.Lock()
		e.cancel, e.done = nil, nil
		e.mu.Unlock()
		return err
	case <-time.After(within):
		e.t.Fatalf("controller.Run still running after %s", within)
	}
	return nil
}

func scaleTo(n int32) func(*v1alpha1.Cluster) {
	return func(c *v1alpha1.Cluster) { c.Spec.Replicas = &n }
}

// TestFencedWriteStepsDown: a controller whose leadership key another
// replica took over learns it at its next write, refused by the fence of
// its store (real etcd, store.Fenced), and Run returns store.ErrNotLeader:
// it steps down rather than act on.
func TestFencedWriteStepsDown(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	ctx := context.Background()
	cli := e.etcd.Client()
	mine := e.st.LeaderPrefix() + "a"
	resp, err := cli.Put(ctx, mine, "a")
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Store = e.st.Fenced(mine, resp.Header.Revision)
	e.start()
	e.create(newCluster("db", 2))
	e.waitReady("db")

	// Another replica wins: a's key is gone, b's is there.
	if _, err := cli.Delete(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, e.st.LeaderPrefix()+"b", "b"); err != nil {
		t.Fatal(err)
	}
	launches := len(e.calls(launching))
	e.update("db", scaleTo(3)) // work for a's next write
	err = e.waitExit(20 * time.Second)
	if !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("Run returned %v, want store.ErrNotLeader", err)
	}
	t.Logf("Run returned: %v", err)
	if n := len(e.calls(launching)) - launches; n != 0 {
		t.Fatalf("%d launches after the leadership was lost", n)
	}
	ledger, err := e.st.ListTasks(ctx, "default", "db")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ledger {
		if r.Ordinal == 2 {
			t.Fatalf("the deposed controller's launch record %s landed", r.ID)
		}
	}
}

// TestNoAckWhenLedgerWriteFails: etcd refuses the controller's writes (auth is
// turned on; its client has no credentials) when a member fails. Its update
// is not acknowledged, so the agent resends it; once etcd takes writes
// again, the update is written, then acknowledged.
func TestNoAckWhenLedgerWriteFails(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 2))
	c := e.waitReady("db")
	victim := taskOf(c, 1).ID
	root := e.authOn()

	updates := e.metric("converge_mesos_events_total", map[string]string{"type": "UPDATE"})
	if err := e.mesos.FailTask(victim); err != nil {
		t.Fatal(err)
	}
	acked := func() int { return len(e.calls(about(scheduler.Call_ACKNOWLEDGE, victim))) }
	acks := acked()
	e.eventually(20*time.Second, "the update delivered twice (resent) or acknowledged", func() bool {
		return acked() > acks || e.metric("converge_mesos_events_total", map[string]string{"type": "UPDATE"}) >= updates+2
	})
	if n := acked() - acks; n != 0 {
		t.Fatalf("%d ACKNOWLEDGE calls for %s's TASK_FAILED while etcd refused the write", n, victim)
	}

	if _, err := root.AuthDisable(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.eventually(20*time.Second, "the update acknowledged once written", func() bool { return acked() > acks })
	ledger, err := e.st.ListTasks(context.Background(), "default", "db")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ledger {
		if r.ID == victim && r.State != "TASK_FAILED" {
			t.Fatalf("acknowledged, but the ledger says %s", r.State)
		}
	}
	e.waitFor("db", 20*time.Second, "replacement", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, 1).ID != victim
	})
}

// authOn turns etcd auth on: the store's client, which has no credentials,
// is refused from then on. It returns a root client (closed at cleanup).
func (e *env) authOn() *clientv3.Client {
	e.t.Helper()
	ctx := context.Background()
	cli := e.etcd.Client()
	const pass = "root-pass"
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", pass); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			e.t.Fatalf("enable etcd auth: %v", err)
		}
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: e.etcd.Endpoints(), Username: "root", Password: pass,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_, _ = root.AuthDisable(context.Background())
		root.Close()
	})
	return root
}

// TestNoLaunchBeforeReconciliation: a restarted controller launches nothing
// until its explicit reconciliation is answered. The network drops RECONCILE
// (retried, unanswered) and SUPPRESS (so offers keep coming) meanwhile; the
// controller must hold back by itself: offers come and are declined, no
// ACCEPT launches, and the missing member is launched once answers come.
func TestNoLaunchBeforeReconciliation(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 2))
	e.waitReady("db")
	e.stop()
	e.update("db", scaleTo(3))
	for _, p := range e.proxies {
		p.setDrop(scheduler.Call_RECONCILE, true)
		p.setDrop(scheduler.Call_SUPPRESS, true)
	}
	from := len(e.calls(nil))
	since := func(f func(seenCall) bool) int {
		n := 0
		for _, c := range e.calls(nil)[from:] {
			if f(c) {
				n++
			}
		}
		return n
	}
	e.start()
	e.eventually(20*time.Second, "RECONCILE retried and offers declined meanwhile", func() bool {
		return since(ofType(scheduler.Call_RECONCILE)) >= 3 && since(ofType(scheduler.Call_DECLINE)) >= 1
	})
	if n := since(launching); n != 0 {
		t.Fatalf("%d ACCEPT calls launched tasks before reconciliation ended", n)
	}
	for _, p := range e.proxies {
		p.setDrop(scheduler.Call_RECONCILE, false)
		p.setDrop(scheduler.Call_SUPPRESS, false)
	}
	e.waitFor("db", 20*time.Second, "3 ready after reconciliation", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.ReadyReplicas == 3
	})
	// The first launch came after the first RECONCILE that reached Mesos.
	for _, c := range e.calls(nil)[from:] {
		if launching(c) {
			t.Fatalf("a launch (%v) came before any RECONCILE reached Mesos", c.TaskIDs)
		}
		if c.Type == scheduler.Call_RECONCILE && !c.Dropped {
			break
		}
	}
	e.checkConverged("db", 3)
}

// TestSuppressAndReviveKeepTheirOrder: the network holds SUPPRESS for 2s.
// Cluster a fills the only agent; once it is launched the controller
// suppresses offers. Cluster b, created while that SUPPRESS is held, makes it
// revive; b fits only once a is deleted. A REVIVE that overtook the SUPPRESS
// would leave offers suppressed while the controller believes them revived:
// the resources a frees would never be offered, and b would wait forever.
func TestSuppressAndReviveKeepTheirOrder(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true, Agents: 1})
	p := e.proxies[0]
	p.setDelay(scheduler.Call_SUPPRESS, 2*time.Second)
	e.start()
	mem := func(q string) func(*v1alpha1.Cluster) {
		return func(c *v1alpha1.Cluster) { m := resource.MustParse(q); c.Spec.Task.Resources.Mem = &m }
	}
	e.create(newCluster("a", 1, mem("7Gi")))
	e.eventually(20*time.Second, "a SUPPRESS held after a's launch", func() bool {
		return len(e.calls(launching)) > 0 && p.holding(scheduler.Call_SUPPRESS) > 0
	})
	revives := len(e.calls(ofType(scheduler.Call_REVIVE)))
	e.create(newCluster("b", 1, mem("2Gi")))
	e.eventually(20*time.Second, "b's REVIVE and the held SUPPRESS both at Mesos", func() bool {
		return len(e.calls(ofType(scheduler.Call_REVIVE))) > revives && p.holding(scheduler.Call_SUPPRESS) == 0
	})
	var order []string
	for _, c := range e.calls(func(c seenCall) bool {
		return c.Type == scheduler.Call_SUPPRESS || c.Type == scheduler.Call_REVIVE
	}) {
		order = append(order, c.Type.String())
	}
	t.Logf("SUPPRESS/REVIVE in the order they reached Mesos: %v", order)
	if _, _, err := e.st.Delete(context.Background(), "default", "a"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("b", 30*time.Second, "Ready on the resources a freed", clusterReady)
}
