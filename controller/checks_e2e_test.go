package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// fastCheck is a command check at test speed: first run at once, then
// every 100ms.
func fastCheck(cmd string) *v1alpha1.Check {
	return &v1alpha1.Check{Command: cmd, Delay: &metav1.Duration{}, Interval: &metav1.Duration{Duration: 100 * time.Millisecond}}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func liveTasks(c *v1alpha1.Cluster) []v1alpha1.TaskStatus {
	var out []v1alpha1.TaskStatus
	for _, ts := range c.Status.Tasks {
		if !strings.HasPrefix(ts.Message, "killing") {
			out = append(out, ts)
		}
	}
	return out
}

// TestReadinessCheckHoldsReadyAndRollout: with real processes under
// localmesos's command executor, members whose readiness check fails run
// but are not ready (readyReplicas 0, Ready False saying why); once it
// passes they are. A rolling update replaces one member (maxUnavailable 1)
// and then waits: the new member's check fails, so the other old member is
// not stopped, until the check passes.
func TestReadinessCheckHoldsReadyAndRollout(t *testing.T) {
	marks := t.TempDir()
	e := newEnv(t, localmesos.Options{})
	e.start()
	e.create(newCluster("gated", 2, func(c *v1alpha1.Cluster) {
		c.Spec.Task.Env["MARKS"] = marks
		c.Spec.Task.Env["VERSION"] = "1"
		c.Spec.Task.ReadinessCheck = fastCheck(`test -f "$MARKS/ready-$VERSION"`)
	}))
	c := e.waitFor("gated", 20*time.Second, "2 running members held by their readiness check", func(c *v1alpha1.Cluster) bool {
		return c != nil && len(c.Status.Tasks) == 2 && taskOf(c, 0).Message == "not ready: readiness check failing" &&
			taskOf(c, 1).Message == "not ready: readiness check failing"
	})
	if c.Status.ReadyReplicas != 0 || clusterReady(c) || taskOf(c, 0).Ready {
		t.Fatalf("members failing their readiness check count as ready: %+v", c.Status)
	}
	if cond := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionReady); cond == nil || !strings.Contains(cond.Message, "ordinal 0 (readiness check failing)") {
		t.Fatalf("Ready condition does not say why: %+v", cond)
	}
	touch(t, filepath.Join(marks, "ready-1"))
	c = e.waitReady("gated")
	if c.Status.ReadyReplicas != 2 || !taskOf(c, 0).Ready || !taskOf(c, 1).Ready {
		t.Fatalf("ready: %+v", c.Status)
	}
	old := map[string]bool{taskOf(c, 0).ID: true, taskOf(c, 1).ID: true}

	e.update("gated", func(c *v1alpha1.Cluster) { c.Spec.Task.Env["VERSION"] = "2" })
	// The planner that wrote this status saw the new member's check fail
	// and, in the same plan, kept the other old member.
	c = e.waitFor("gated", 20*time.Second, "one member updated and held by its readiness check", func(c *v1alpha1.Cluster) bool {
		if c == nil || c.Status.UpdatedReplicas != 1 {
			return false
		}
		for _, ts := range liveTasks(c) {
			if !old[ts.ID] && ts.Message == "not ready: readiness check failing" {
				return true
			}
		}
		return false
	})
	live := liveTasks(c)
	oldLive := 0
	for _, ts := range live {
		if old[ts.ID] {
			oldLive++
			if !ts.Ready {
				t.Errorf("the old member left is not ready: %+v", ts)
			}
		}
	}
	if len(live) != 2 || oldLive != 1 || c.Status.ReadyReplicas != 1 {
		t.Fatalf("rolling update did not wait for the new member's readiness: %+v", c.Status)
	}
	if cond := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionReady); cond == nil || cond.Reason != ReasonRollingUpdate {
		t.Fatalf("Ready condition during the held rollout: %+v", cond)
	}
	touch(t, filepath.Join(marks, "ready-2"))
	c = e.waitFor("gated", 30*time.Second, "rolled out and Ready", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.UpdatedReplicas == 2 && c.Status.ReadyReplicas == 2
	})
	for _, ts := range c.Status.Tasks {
		if old[ts.ID] {
			t.Fatalf("an old member survived the rollout: %+v", c.Status.Tasks)
		}
	}
}

// TestHealthCheckKillsAndReplaces: a member whose health check fails
// consecutiveFailures times in a row is killed by its executor (TASK_KILLED,
// healthy false) and the controller relaunches its ordinal; the
// replacement, healthy, makes the cluster Ready again.
func TestHealthCheckKillsAndReplaces(t *testing.T) {
	marks := t.TempDir()
	e := newEnv(t, localmesos.Options{Agents: 1})
	e.start()
	e.create(newCluster("sick", 1, func(c *v1alpha1.Cluster) {
		c.Spec.Task.Env["MARKS"] = marks
		hc := fastCheck(`test ! -f "$MARKS/sick-$CONVERGE_TASK_ID"`)
		hc.GracePeriod, hc.ConsecutiveFailures = &metav1.Duration{}, new(int32)
		*hc.ConsecutiveFailures = 2
		c.Spec.Task.HealthCheck = hc
		c.Spec.Restart.Backoff = &metav1.Duration{}
	}))
	c := e.waitFor("sick", 20*time.Second, "Ready and healthy", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, 0).Healthy != nil && *taskOf(c, 0).Healthy
	})
	first := taskOf(c, 0).ID
	touch(t, filepath.Join(marks, "sick-"+first))
	c = e.waitFor("sick", 20*time.Second, "a healthy replacement", func(c *v1alpha1.Cluster) bool {
		ts := taskOf(c, 0)
		return clusterReady(c) && ts.ID != "" && ts.ID != first && ts.Healthy != nil && *ts.Healthy
	})
	evs := e.events("sick")
	if !hasEventReason(evs, "Unhealthy") {
		t.Errorf("no Unhealthy event: %+v", evs)
	}
	found := false
	for _, ev := range evs {
		if ev.Reason == "TaskFailed" && strings.Contains(ev.Message, first) && strings.Contains(ev.Message, "TASK_KILLED") &&
			strings.Contains(ev.Message, "failing its health check") {
			found = true
		}
	}
	if !found {
		t.Errorf("no TaskFailed event saying %s was killed for its health check: %+v", first, evs)
	}
	if st := e.masterState(); !killedUnhealthy(st, first) {
		t.Errorf("Mesos does not show %s TASK_KILLED with healthy false", first)
	}
}

// killedUnhealthy reads /master/state: the task ended TASK_KILLED, its last
// status healthy false.
func killedUnhealthy(st localmesos.State, id string) bool {
	for _, fw := range st.Frameworks {
		for _, t := range fw.CompletedTasks {
			if t.ID == id && t.State == "TASK_KILLED" {
				for _, s := range t.Statuses {
					if s.Healthy != nil && !*s.Healthy {
						return true
					}
				}
			}
		}
	}
	return false
}
