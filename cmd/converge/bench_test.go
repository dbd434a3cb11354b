package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/converge-io/converge/bench"
)

// TestBenchSummaryQuietWait: the human summary has a line for the quiet wait
// before the one failure, which says when the cap was hit, and the failure
// line says how many resync sweeps fell inside and which attempt it was.
func TestBenchSummaryQuietWait(t *testing.T) {
	r := bench.Result{
		QuietForSeconds: 2, QuietSeconds: 4.25, QuietReconciles: 812,
		OneFailureTask: "t", OneFailureReconciles: 9, OneFailureResyncs: 0, OneFailureAttempts: 2,
	}
	var b bytes.Buffer
	printBench(&b, r)
	for _, want := range []string{
		"quiet wait       last reconcile 4.25s after the idle window (812 reconciles), then none for 2.0s",
		"9 reconciles", "0 resync sweep(s) inside, attempt 2 of at most 3",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}

	r.QuietCapHit, r.QuietSeconds = true, 180
	b.Reset()
	printBench(&b, r)
	if want := "NOT quiet: reconciles still ran 180.0s after the idle window (812 of them)"; !strings.Contains(b.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, b.String())
	}
}
