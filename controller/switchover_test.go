package controller

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestSwitchoverRealExecutors: real executors and processes, the request
// recorded by the CLI's own code (cli.RequestSwitchover, as `converge
// switchover --to` does). A switchover to ordinal 0 demotes the master
// (demoteCommand told "switchover") before ordinal 0 is promoted; the old
// master keeps running and follows. A rolling update then hands the master
// over before the old master's task is stopped, and Mesos never runs fewer
// than replicas - maxUnavailable members meanwhile.
func TestSwitchoverRealExecutors(t *testing.T) {
	e, work := newExecutorEnv(t, localmesos.Options{Agents: 3})
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) {
		// Stopped (SIGTERM): say when, then end.
		c.Spec.Task.Command = `trap 'touch stopped; exit 0' TERM; sleep 1000 & wait`
		c.Spec.Placement.Spread = v1alpha1.SpreadHostname
		c.Spec.Election.Strategy = v1alpha1.ElectionPosition
		c.Spec.Election.LeaseDuration = &metav1.Duration{Duration: 3 * time.Second}
		c.Spec.Election.PositionCommand = `echo 7`
		c.Spec.Election.PromoteCommand = `touch "promoted-$CONVERGE_EPOCH"`
		c.Spec.Election.FollowCommand = `echo "$CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT $CONVERGE_EPOCH" > following`
		c.Spec.Election.DemoteCommand = `echo "$CONVERGE_DEMOTE_REASON" > "demoted-$CONVERGE_EPOCH"`
	}))
	c := e.waitFor("db", 60*time.Second, "Ready", clusterReady)
	old := *c.Status.Master
	if old.Ordinal != 0 {
		t.Fatalf("master = %+v, want ordinal 0 (equal positions: the lowest ordinal)", old)
	}
	ctx := context.Background()
	if _, err := cli.RequestSwitchover(ctx, e.st, "default", "db", ptr32(0), time.Now()); err == nil || !strings.Contains(err.Error(), "ordinal 0 is already the master") {
		t.Fatalf("switchover to the master: %v", err)
	}

	// converge switchover cluster/db --to 2 --wait
	req, err := cli.RequestSwitchover(ctx, e.st, "default", "db", ptr32(2), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sw, err := cli.WaitSwitchover(wctx, e.st, "default", "db", req)
	if err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("db", 10*time.Second, "Ready with the new master", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.Epoch == sw.Epoch
	})
	nm := *c.Status.Master
	if nm.Ordinal != 2 || *sw.From != 0 || *sw.To != 2 {
		t.Fatalf("switchover %+v: master %+v, want ordinal 2", sw, nm)
	}
	demotedAt := waitFile(t, work, old.TaskID, "demoted-"+itoa(int(old.Epoch)), "switchover", 10*time.Second)
	promotedAt := waitFile(t, work, nm.TaskID, "promoted-"+itoa(int(nm.Epoch)), "*", 10*time.Second)
	if promotedAt.Before(demotedAt) {
		t.Fatalf("new master promoted at %s, before the old one demoted at %s", promotedAt, demotedAt)
	}
	// The old master still runs, and follows the new one.
	if taskOf(c, 0).ID != old.TaskID {
		t.Fatalf("the old master was replaced: %+v", taskOf(c, 0))
	}
	waitFile(t, work, old.TaskID, "following", nm.Hostname+":"+itoa(int(nm.Port))+" "+itoa(int(nm.Epoch)), 10*time.Second)

	// A rolling update: the master (ordinal 2) goes last, handed over first.
	minRunning, stopWatch := watchRunning(e, "db")
	e.update("db", func(c *v1alpha1.Cluster) { c.Spec.Task.Env["VERSION"] = "2" })
	c = e.waitFor("db", 60*time.Second, "the rolling update", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.UpdatedReplicas == 3 && c.Status.Master != nil && c.Status.Master.Epoch > nm.Epoch
	})
	stopWatch()
	third := *c.Status.Master
	if third.Ordinal == 2 {
		t.Fatalf("the master after the rolling update is ordinal 2 again: %+v", third)
	}
	demotedAt = waitFile(t, work, nm.TaskID, "demoted-"+itoa(int(nm.Epoch)), "switchover", 10*time.Second)
	promotedAt = waitFile(t, work, third.TaskID, "promoted-"+itoa(int(third.Epoch)), "*", 10*time.Second)
	stoppedAt := waitFile(t, work, nm.TaskID, "stopped", "*", 10*time.Second)
	if promotedAt.Before(demotedAt) || stoppedAt.Before(promotedAt) {
		t.Fatalf("old master demoted at %s, new one promoted at %s, old one stopped at %s: want that order",
			demotedAt.Format("15:04:05.000"), promotedAt.Format("15:04:05.000"), stoppedAt.Format("15:04:05.000"))
	}
	if n := minRunning(); n < 2 {
		t.Fatalf("Mesos ran %d members at one point of the rolling update, want at least 3 - maxUnavailable = 2", n)
	}
	if !hasEventReason(e.events("db"), "SwitchedOver") {
		t.Fatalf("no SwitchedOver event")
	}
	e.checkConverged("db", 3)
}

func ptr32(n int32) *int32 { return &n }

// watchRunning samples how many of the cluster's tasks Mesos reports
// RUNNING (its ground truth) until stopped, and returns the least seen.
func watchRunning(e *env, name string) (least func() int, stop func()) {
	var mu sync.Mutex
	low := -1
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var st localmesos.State
			resp, err := http.Get(e.mesos.URL() + "/master/state")
			if err != nil {
				continue
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				continue
			}
			n := 0
			for _, fw := range st.Frameworks {
				for _, t := range fw.Tasks {
					if t.State == "TASK_RUNNING" && strings.Contains(t.ID, "."+name+".") {
						n++
					}
				}
			}
			mu.Lock()
			if low < 0 || n < low {
				low = n
			}
			mu.Unlock()
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return low }, func() { close(quit); <-done }
}
