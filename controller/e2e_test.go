package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

func TestApplyToReadyAndIdle(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("web", 3))
	c := e.waitReady("web")
	if c.Status.Replicas != 3 || c.Status.ReadyReplicas != 3 || c.Status.UpdatedReplicas != 3 || len(c.Status.Tasks) != 3 {
		t.Fatalf("status = %+v", c.Status)
	}
	if len(c.Finalizers) != 1 || c.Finalizers[0] != v1alpha1.Finalizer {
		t.Fatalf("finalizers = %v", c.Finalizers)
	}
	e.checkConverged("web", 3)
	ep, err := e.st.GetEndpoints(context.Background(), "default", "web")
	if err != nil || ep == nil || len(ep.Members) != 3 || ep.Members[0].Port == 0 || ep.Master != nil {
		t.Fatalf("endpoints = %+v, %v", ep, err)
	}
	// Idle: once settled (progress writes coalesce for up to a second), the
	// reconciles of an unchanged cluster (resync runs every 300ms) write
	// nothing to etcd.
	for deadline := time.Now().Add(20 * time.Second); ; {
		before := e.st.Stats()
		e.reconciles(5)
		after := e.st.Stats()
		if after.Puts == before.Puts && after.Txns == before.Txns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still writing after 20s of an unchanged cluster: over 5 reconciles %+v -> %+v", before, after)
		}
	}
	// No secret in status or events.
	for _, ev := range e.events("web") {
		if strings.Contains(ev.Message, "s3cr3t") {
			t.Fatalf("secret in event %+v", ev)
		}
	}
}

func TestFailedTaskReplaced(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 3))
	c := e.waitReady("db")
	victim := taskOf(c, 1).ID
	if err := e.mesos.FailTask(victim); err != nil {
		t.Fatal(err)
	}
	e.waitFor("db", 20*time.Second, "replacement of ordinal 1", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, 1).ID != "" && taskOf(c, 1).ID != victim
	})
	e.checkConverged("db", 3)
	if !hasEventReason(e.events("db"), "TaskFailed") {
		t.Fatalf("no TaskFailed event: %+v", e.events("db"))
	}
}

// TestAgentLossKeepsTheOrdinal: past the unreachable timeout a lost member is
// written off (no longer counted, killed) but its ordinal is relaunched only
// once the member is dead, after its agent comes back (issue 11 §4;
// TestPartitionNeverTwoPerOrdinal samples the whole way).
func TestAgentLossKeepsTheOrdinal(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true, Agents: 4})
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) { c.Spec.Placement.Spread = v1alpha1.SpreadHostname }))
	c := e.waitReady("db")
	lost := taskOf(c, 0)
	if err := e.mesos.LoseAgent(lost.AgentID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("db", 5*time.Second, "unreachable", func(c *v1alpha1.Cluster) bool {
		return c != nil && taskOf(c, 0).State == stateUnreachable
	})
	e.waitFor("db", 20*time.Second, "written off", func(c *v1alpha1.Cluster) bool {
		return c != nil && c.Status.Replicas == 2 && taskOf(c, 0).ID == ""
	})
	for id := range e.activeTasks() {
		if _, _, ord, _ := ParseTaskID(id); ord == 0 && id != lost.ID {
			t.Fatalf("ordinal 0 relaunched as %s while %s may be alive", id, lost.ID)
		}
	}
	// The agent comes back: the written-off task is killed, then replaced.
	if err := e.mesos.RestoreAgent(lost.AgentID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("db", 20*time.Second, "old task gone, ordinal 0 relaunched", func(c *v1alpha1.Cluster) bool {
		_, running := e.activeTasks()[lost.ID]
		return !running && clusterReady(c) && taskOf(c, 0).ID != lost.ID
	})
	e.checkConverged("db", 3)
}

func TestScaleUpAndDown(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 2))
	e.waitReady("db")
	e.update("db", func(c *v1alpha1.Cluster) { n := int32(5); c.Spec.Replicas = &n })
	e.waitFor("db", 20*time.Second, "5 ready", func(c *v1alpha1.Cluster) bool { return clusterReady(c) && c.Status.ReadyReplicas == 5 })
	e.checkConverged("db", 5)
	e.update("db", func(c *v1alpha1.Cluster) { n := int32(2); c.Spec.Replicas = &n })
	c := e.waitFor("db", 20*time.Second, "2 ready", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Replicas == 2 && len(c.Status.Tasks) == 2
	})
	if taskOf(c, 0).ID == "" || taskOf(c, 1).ID == "" {
		t.Fatalf("scale down kept the wrong ordinals: %+v", c.Status.Tasks)
	}
	e.checkConverged("db", 2)
}

func TestRollingUpdateMasterLast(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) { c.Spec.Election.Strategy = v1alpha1.ElectionOrdinal }))
	c := e.waitReady("db")
	if c.Status.Master == nil {
		t.Fatalf("no master: %+v", c.Status)
	}
	master := c.Status.Master.TaskID
	e.update("db", func(c *v1alpha1.Cluster) { c.Spec.Task.Command = "sleep 2000" })
	c = e.waitFor("db", 30*time.Second, "rolled", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.UpdatedReplicas == 3 && c.Status.ObservedGeneration == c.Generation
	})
	e.checkConverged("db", 3)
	// Kill order from the event history: the old master last.
	var killed []string
	for _, ev := range e.events("db") {
		if ev.Reason == "Killing" && strings.Contains(ev.Message, "rolling update") {
			killed = append(killed, strings.Fields(ev.Message)[2])
		}
	}
	if len(killed) != 3 || killed[2] != master {
		t.Fatalf("kill order %v, master %s", killed, master)
	}
	if c.Status.Master == nil || c.Status.Master.TaskID == master {
		t.Fatalf("master after the roll = %+v", c.Status.Master)
	}
}

func TestDeleteWithFinalizer(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 3))
	e.waitReady("db")
	if _, gone, err := e.st.Delete(context.Background(), "default", "db"); err != nil || gone {
		t.Fatalf("delete: gone=%v err=%v", gone, err)
	}
	e.waitFor("db", 20*time.Second, "deletion", func(c *v1alpha1.Cluster) bool { return c == nil })
	for id, state := range e.activeTasks() {
		t.Errorf("task %s still %s after delete", id, state)
	}
	if l, _ := e.st.ListTasks(context.Background(), "default", "db"); len(l) != 0 {
		t.Fatalf("ledger left: %d records", len(l))
	}
}

// TestMasterFailover: leadership moves to the other master while a member
// fails, and no master stream is up for a while (the bridge's SUBSCRIBEs are
// refused). The bridge resubscribes at the new leader as the same framework;
// the failure, which the agent redelivers, is noticed and that member alone
// replaced.
func TestMasterFailover(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true, Masters: 2})
	e.start()
	e.create(newCluster("db", 3))
	c := e.waitReady("db")
	before := e.masterState()
	if len(before.Frameworks) != 1 {
		t.Fatalf("%d frameworks before the failover", len(before.Frameworks))
	}
	fwID, oldLeader := before.Frameworks[0].ID, e.mesos.URL()
	victim, kept := taskOf(c, 1).ID, []string{taskOf(c, 0).ID, taskOf(c, 2).ID}
	subscribes := len(e.calls(ofType(scheduler.Call_SUBSCRIBE)))

	for _, p := range e.proxies {
		p.setRefuse(scheduler.Call_SUBSCRIBE, true)
	}
	e.mesos.FailoverMaster()
	if err := e.mesos.FailTask(victim); err != nil {
		t.Fatal(err)
	}
	e.eventually(10*time.Second, "a SUBSCRIBE refused after the failover", func() bool {
		return len(e.calls(func(c seenCall) bool { return c.Type == scheduler.Call_SUBSCRIBE && c.Refused })) > 0
	})
	for _, p := range e.proxies {
		p.setRefuse(scheduler.Call_SUBSCRIBE, false)
	}

	c = e.waitFor("db", 20*time.Second, "the member that failed during the failover replaced", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, 1).ID != "" && taskOf(c, 1).ID != victim
	})
	if e.mesos.URL() == oldLeader {
		t.Fatalf("the leader is still %s", oldLeader)
	}
	for _, sub := range e.calls(ofType(scheduler.Call_SUBSCRIBE))[subscribes:] {
		if sub.FrameworkID != fwID {
			t.Fatalf("resubscribed as framework %q, want %s", sub.FrameworkID, fwID)
		}
	}
	after := e.masterState()
	if len(after.Frameworks) != 1 || after.Frameworks[0].ID != fwID || !after.Frameworks[0].Active {
		t.Fatalf("frameworks at the new leader: %+v", after.Frameworks)
	}
	for i, ord := range []int32{0, 2} {
		if got := taskOf(c, ord).ID; got != kept[i] {
			t.Fatalf("ordinal %d replaced by the failover: %s -> %s", ord, kept[i], got)
		}
	}
	if !hasEventReason(e.events("db"), "TaskFailed") {
		t.Fatalf("no TaskFailed event for %s", victim)
	}
	e.checkConverged("db", 3)
}

func TestUnsatisfiableSpecStalls(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("big", 1, func(c *v1alpha1.Cluster) {
		q := resource.MustParse("64Gi")
		c.Spec.Task.Resources.Mem = &q
	}))
	c := e.waitFor("big", 20*time.Second, "Stalled", func(c *v1alpha1.Cluster) bool {
		s := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
		return s != nil && s.Status == "True"
	})
	s := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
	if s.Reason != ReasonNoOfferFits || !strings.Contains(s.Message, "needs mem 64Gi, the largest offer has 8Gi") {
		t.Fatalf("stalled = %+v", s)
	}
	if !hasEventReason(e.events("big"), ReasonNoOfferFits) {
		t.Fatalf("no event")
	}
	// Fixing the spec un-stalls it.
	e.update("big", func(c *v1alpha1.Cluster) { q := resource.MustParse("64Mi"); c.Spec.Task.Resources.Mem = &q })
	e.waitReady("big")
}

func TestInvalidObjectIsStalledAndUntouched(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 2))
	e.waitReady("db")
	// Someone with etcd access writes a bad spec by hand.
	e.update("db", func(c *v1alpha1.Cluster) { c.Spec.Task.Command = "" })
	c := e.waitFor("db", 10*time.Second, "InvalidSpec", func(c *v1alpha1.Cluster) bool {
		s := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
		return s != nil && s.Reason == ReasonInvalidSpec && s.Status == "True"
	})
	if s := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled); !strings.Contains(s.Message, "spec.task.command") {
		t.Fatalf("stalled = %+v", s)
	}
	e.checkConverged("db", 2) // tasks untouched
}

func TestUnknownRoleStalls(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("web", 1, func(c *v1alpha1.Cluster) { c.Spec.Role = "analytics" }))
	c := e.waitFor("web", 20*time.Second, "Stalled", func(c *v1alpha1.Cluster) bool {
		s := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
		return s != nil && s.Status == "True"
	})
	if s := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled); s.Reason != ReasonNoOfferFits || !strings.Contains(s.Message, `role "analytics" is not a role of this framework`) {
		t.Fatalf("stalled = %+v", s)
	}
}

// TestDroppedAndDuplicatedUpdates: agents' updates dropped (resent until
// acknowledged) and duplicated change nothing but timing.
func TestDroppedAndDuplicatedUpdates(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	if err := e.mesos.SetUpdateFaults(0.3, 0.5); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) { c.Spec.Election.Strategy = v1alpha1.ElectionOrdinal }))
	c := e.waitFor("db", 30*time.Second, "Ready", clusterReady)
	victim := taskOf(c, 2).ID
	if err := e.mesos.FailTask(victim); err != nil {
		t.Fatal(err)
	}
	e.waitFor("db", 30*time.Second, "replacement", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, 2).ID != victim
	})
	e.checkConverged("db", 3)
	failed := 0
	for _, ev := range e.events("db") {
		if ev.Reason == "TaskFailed" {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d TaskFailed events for one failure (duplicates counted?)", failed)
	}
}
