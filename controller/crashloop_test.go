package controller

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// readyWatch records every Ready condition a cluster's status was written
// with, from the cluster's creation on (an etcd watch sees every write).
type readyWatch struct {
	mu    sync.Mutex
	ready []metav1.Condition
}

func (w *readyWatch) follow(ctx context.Context, st *store.Store, name string, fromRev int64) {
	for ev := range st.Watch(ctx, "default", fromRev) {
		if ev.Object == nil || ev.Object.Name != name {
			continue
		}
		if r := v1alpha1.FindCondition(ev.Object.Status.Conditions, v1alpha1.ConditionReady); r != nil {
			w.mu.Lock()
			w.ready = append(w.ready, *r)
			w.mu.Unlock()
		}
	}
}

func (w *readyWatch) everTrue() (metav1.Condition, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.ready {
		if r.Status == metav1.ConditionTrue {
			return r, true
		}
	}
	return metav1.Condition{}, false
}

// launchesOf are the cluster's tasks Mesos was ever asked to run, by id.
func (e *env) launchesOf(name string) map[string]bool {
	out := map[string]bool{}
	for _, fw := range e.masterState().Frameworks {
		for _, list := range [][]localmesos.TaskState{fw.Tasks, fw.UnreachableTasks, fw.CompletedTasks} {
			for _, t := range list {
				if _, cl, _, ok := ParseTaskID(t.ID); ok && cl == name {
					out[t.ID] = true
				}
			}
		}
	}
	return out
}

// maxLaunches is the most launches one member can have within window when
// every relaunch waits out the back-off (running and failing take time too,
// so real launches are fewer: the bound does not depend on machine speed).
func maxLaunches(window, backoff time.Duration, factor float64, maxBackoff time.Duration) int {
	n, at, d := 1, time.Duration(0), float64(backoff)
	for {
		at += min(time.Duration(d), maxBackoff)
		if at > window {
			return n
		}
		n++
		d *= factor
	}
}

// TestCrashLoopBackOff: a member whose command exits at once is relaunched
// with a growing back-off, never counted ready, and the cluster is Stalled
// (ProgressDeadlineExceeded) once progressDeadline passes without progress,
// which ends a wait for Ready. The back-off is kept across a controller
// restart (it is in the ledger).
func TestCrashLoopBackOff(t *testing.T) {
	e := newEnv(t, localmesos.Options{})
	e.start()
	const replicas = 2
	backoff, maxBackoff := time.Second, 4*time.Second
	c := newCluster("crashy", replicas, func(c *v1alpha1.Cluster) {
		c.Spec.Task.Command = "exit 3"
		minReady := int32(2)
		c.Spec.Update.MinReadySeconds = &minReady
		c.Spec.Update.ProgressDeadline = &metav1.Duration{Duration: 8 * time.Second}
		c.Spec.Restart.MaxBackoff = &metav1.Duration{Duration: maxBackoff}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	created := e.create(c)
	rev, _ := strconv.ParseInt(created.ResourceVersion, 10, 64)
	var w readyWatch
	go w.follow(ctx, e.st, "crashy", rev)

	// Until Stalled, or long after progressDeadline; every check below reports.
	isStalled := func(c *v1alpha1.Cluster) bool {
		s := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
		return s != nil && s.Status == metav1.ConditionTrue && s.ObservedGeneration == c.Generation
	}
	var cur *v1alpha1.Cluster
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cur = e.get("crashy"); isStalled(cur) || time.Now().After(deadline) {
			break
		}
	}
	launches := len(e.launchesOf("crashy"))
	window := time.Since(start) // after the count: every launch counted is inside it
	bound := replicas * maxLaunches(window, backoff, v1alpha1.DefaultRestartFactor, maxBackoff)
	t.Logf("%d launches of %d members in %s (back-off allows at most %d)", launches, replicas, window.Round(time.Millisecond), bound)
	if launches > bound || launches < replicas+1 {
		t.Errorf("%d launches in %s; with the back-off at least %d (a relaunch) and at most %d", launches, window, replicas+1, bound)
	}
	if got, ok := w.everTrue(); ok {
		t.Fatalf("Ready was written True while every member crash-loops: %+v", got)
	}
	cond := func(typ string) metav1.Condition {
		if k := v1alpha1.FindCondition(cur.Status.Conditions, typ); k != nil {
			return *k
		}
		return metav1.Condition{}
	}
	s, r, rc := cond(v1alpha1.ConditionStalled), cond(v1alpha1.ConditionReady), cond(v1alpha1.ConditionReconciling)
	if !isStalled(cur) || s.Reason != ReasonProgressDeadlineExceeded || r.Status != metav1.ConditionFalse || r.Reason != ReasonCrashLoopBackOff ||
		!strings.Contains(r.Message, "member ") || !strings.Contains(r.Message, "TASK_FAILED (Command exited with status 3)") ||
		rc.Status != metav1.ConditionFalse {
		t.Fatalf("Stalled %s %s %q; Ready %s %s %q; Reconciling %s\nwant Stalled ProgressDeadlineExceeded, Ready False CrashLoopBackOff naming the member and its exit, Reconciling False",
			s.Status, s.Reason, s.Message, r.Status, r.Reason, r.Message, rc.Status)
	}

	// wait --for=condition=Ready (and apply --wait) stop at once.
	_, err := cli.Wait(context.Background(), e.st, "default", "crashy", cli.WaitFor{Condition: v1alpha1.ConditionReady, Status: metav1.ConditionTrue})
	if !errors.Is(err, cli.ErrStalled) || !strings.Contains(err.Error(), ReasonProgressDeadlineExceeded) {
		t.Errorf("wait for Ready on a Stalled cluster: %v, want %v naming %s", err, cli.ErrStalled, ReasonProgressDeadlineExceeded)
	}

	// A controller restart keeps counting: the next relaunch of each ordinal
	// has one more failure behind it than the ledger's newest task.
	before, err := e.st.ListTasks(context.Background(), "default", "crashy")
	if err != nil {
		t.Fatal(err)
	}
	newest := map[int32]store.TaskRecord{}
	for _, tr := range before {
		if n, ok := newest[tr.Ordinal]; !ok || tr.LaunchedAt.After(n.LaunchedAt) {
			newest[tr.Ordinal] = tr
		}
	}
	e.stop()
	e.start()
	deadline := time.Now().Add(30 * time.Second)
	for ord, last := range newest {
		for {
			if next, ok := e.launchedAfter("crashy", ord, last); ok {
				if next.Restarts != last.Restarts+1 {
					t.Errorf("ordinal %d relaunched after the controller restart with %d failures behind it; the last task before had %d, so want %d",
						ord, next.Restarts, last.Restarts, last.Restarts+1)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ordinal %d not relaunched after the controller restart", ord)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got, ok := w.everTrue(); ok {
		t.Errorf("Ready was written True after the controller restart: %+v", got)
	}
}

// launchedAfter returns the task of ordinal ord launched after last, if any.
func (e *env) launchedAfter(name string, ord int32, last store.TaskRecord) (store.TaskRecord, bool) {
	recs, err := e.st.ListTasks(context.Background(), "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Ordinal == ord && r.LaunchedAt.After(last.LaunchedAt) {
			return r, true
		}
	}
	return store.TaskRecord{}, false
}
