package main

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// setStalled writes Stalled=True about generation observed, as the
// controller does when a cluster makes no progress.
func (e *env) setStalled(name string, observed int64) {
	e.t.Helper()
	c := e.get(name)
	c.Status.ObservedGeneration = observed
	v1alpha1.SetCondition(&c.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue,
		Reason: "ProgressDeadlineExceeded", Message: "no progress for 10m0s: CrashLoopBackOff: member 1 failed 9 time(s) in a row", ObservedGeneration: observed})
	if _, err := e.st.UpdateStatus(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

// A Stalled cluster will not become Ready without a change: wait and
// apply --wait stop at once with exit 1 and say why, rather than wait out
// their timeout. A Stalled about an older generation does not count.
func TestWaitStopsWhenStalled(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("s.yaml", manifest("stuck", 1, ""))), 0, "created")
	e.setStalled("stuck", 1)
	// Without the Stalled rule these would wait out their 20s and say "timed out".
	expect(t, e.run("", "wait", "cluster/stuck", "--for=condition=Ready", "--timeout", "20s"), 1,
		"cluster/stuck is Stalled (ProgressDeadlineExceeded): no progress for 10m0s: CrashLoopBackOff: member 1")
	expect(t, e.run("", "wait", "cluster/stuck", "--for=condition=Stalled", "--timeout", "20s"), 0, "condition met")

	// A Stalled about an older generation does not end a wait.
	expect(t, e.run("", "apply", "-f", e.file("s.yaml", manifest("stuck", 2, ""))), 0, "configured")
	expect(t, e.run("", "wait", "cluster/stuck", "--for=condition=Ready", "--timeout", "1s"), 1, "timed out waiting for condition=Ready=True")

	// apply --wait stops when the generation it wrote becomes Stalled.
	done := make(chan result, 1)
	go func() {
		done <- e.run("", "apply", "--wait", "--timeout", "20s", "-f", e.file("s.yaml", manifest("stuck", 3, "")))
	}()
	deadline := time.Now().Add(30 * time.Second)
	for c := e.get("stuck"); c.Generation != 3; c = e.get("stuck") {
		if time.Now().After(deadline) {
			t.Fatal("apply did not write generation 3")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.setStalled("stuck", 3)
	select {
	case r := <-done:
		expect(t, r, 1, "cluster/stuck configured", "cluster/stuck is Stalled (ProgressDeadlineExceeded): no progress for 10m0s")
	case <-time.After(60 * time.Second):
		t.Fatal("apply --wait did not stop on Stalled")
	}
}

// describe shows the defaulted update and restart fields and the last progress.
func TestDescribeShowsRestartAndProgress(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("d.yaml", manifest("described", 1, ""))), 0, "created")
	c := e.get("described")
	at := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	c.Status.LastProgressTime = &at
	if _, err := e.st.UpdateStatus(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	expect(t, e.run("", "describe", "cluster", "described"), 0, "Min Ready Seconds:", "10", "Progress Deadline:", "10m0s",
		"Back-off:", "1s, x2 per failure in a row, at most 5m0s; reset after 10m0s running", "Last Progress:", "2026-01-02T03:04:05Z")
}
