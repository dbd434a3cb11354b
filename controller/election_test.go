package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// positions gives each ordinal's first task a fixed position and later tasks
// (replacements) position 1, so elections are predictable.
type positions struct {
	mu    sync.Mutex
	first map[int32]string
	byOrd map[int32]string
}

func (p *positions) position(taskID string) string {
	_, _, ord, ok := ParseTaskID(taskID)
	if !ok {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first[ord] == "" {
		p.first[ord] = taskID
	}
	if p.first[ord] == taskID {
		return p.byOrd[ord]
	}
	return "1"
}

func TestPositionElection(t *testing.T) {
	pos := &positions{first: map[int32]string{}, byOrd: map[int32]string{0: "10", 1: "30", 2: "20"}}
	e := newEnv(t, localmesos.Options{Simulate: true, Sim: localmesos.SimOptions{Position: pos.position}})
	e.start()
	e.create(newCluster("db", 3, positional))
	c := e.waitReady("db")
	m := c.Status.Master
	if m == nil || m.Ordinal != 1 || m.Port == 0 || m.Hostname == "" {
		t.Fatalf("master = %+v, want ordinal 1 (highest position)", m)
	}
	el, err := e.st.GetElection(context.Background(), "default", "db")
	if err != nil || el == nil || el.Phase != store.PhasePromoted || el.Epoch != m.Epoch || el.MasterTaskID != m.TaskID {
		t.Fatalf("election record = %+v, %v", el, err)
	}
	ep, _ := e.st.GetEndpoints(context.Background(), "default", "db")
	if ep == nil || ep.Master == nil || ep.Master.TaskID != m.TaskID || ep.Epoch != m.Epoch {
		t.Fatalf("endpoints = %+v", ep)
	}

	// The master dies: a new election under epoch+1 among the survivors.
	if err := e.mesos.FailTask(m.TaskID); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("db", 20*time.Second, "re-election", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.TaskID != m.TaskID
	})
	if got := c.Status.Master; got.Epoch != m.Epoch+1 || got.Ordinal != 2 {
		t.Fatalf("new master = %+v, want ordinal 2 in epoch %d", got, m.Epoch+1)
	}
	ep, _ = e.st.GetEndpoints(context.Background(), "default", "db")
	if ep == nil || ep.Master == nil || ep.Master.TaskID != c.Status.Master.TaskID {
		t.Fatalf("endpoints after re-election = %+v", ep)
	}
	for _, ev := range []string{"Elected", "MasterLost"} {
		if !hasEventReason(e.events("db"), ev) {
			t.Errorf("no %s event", ev)
		}
	}
	e.checkConverged("db", 3)
}

// TestOrdinalElectionNoMessages: ordinal elections, the first and the one
// after the master fails, send no framework message at all (the lowest
// running ordinal wins; nothing runs in the members to ask or tell).
func TestOrdinalElectionNoMessages(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) { c.Spec.Election.Strategy = v1alpha1.ElectionOrdinal }))
	c := e.waitReady("db")
	if c.Status.Master == nil || c.Status.Master.Epoch != 1 {
		t.Fatalf("master = %+v", c.Status.Master)
	}
	if err := e.mesos.FailTask(c.Status.Master.TaskID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("db", 20*time.Second, "re-election in epoch 2", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.Epoch == 2
	})
	if msgs := e.calls(ofType(scheduler.Call_MESSAGE)); len(msgs) != 0 {
		t.Fatalf("%d MESSAGE calls reached Mesos for an ordinal cluster", len(msgs))
	}
	if n := e.metric("converge_mesos_calls_total", map[string]string{"type": "MESSAGE"}); n != 0 {
		t.Fatalf("the bridge counted %v MESSAGE calls", n)
	}
}

// TestSwitchToPositionStrategy: a running cluster switched to position
// elections rolls its members onto converge executor, then elects a master.
func TestSwitchToPositionStrategy(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 3))
	e.waitReady("db")
	e.update("db", positional)
	c := e.waitFor("db", 30*time.Second, "rolled and elected", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.UpdatedReplicas == 3 && c.Status.Master != nil
	})
	ledger, err := e.st.ListTasks(context.Background(), "default", "db")
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range c.Status.Tasks {
		for _, r := range ledger {
			if r.ID == ts.ID && r.ExecutorID == "" {
				t.Errorf("member %s runs without an executor", r.ID)
			}
		}
	}
	e.checkConverged("db", 3)
}
