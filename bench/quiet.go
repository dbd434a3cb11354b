package bench

import (
	"context"
	"fmt"
	"time"
)

const (
	reconcilesTotal = "converge_controller_reconciles_total"
	resyncsTotal    = "converge_controller_resyncs_total"
	// failureAttempts bounds the one-failure measurements tried while a
	// resync sweep keeps falling inside them.
	failureAttempts = 3
)

// quiet is one wait until the controllers ran no reconcile for a while.
type quiet struct {
	took       time.Duration // from the start of the wait until the last reconcile seen
	reconciles int64         // reconciles during the wait
	capHit     bool          // the cap passed without a quiet stretch
	// resyncs: the resync sweeps counted when the quiet stretch began. A
	// sweep after it is inside the measurement that follows: the sweep's
	// reconciles may not have finished (and been counted) by the time the
	// stretch looked quiet.
	resyncs float64
}

// waitQuiet polls count's reconcile counter until it has not moved for
// quietFor, or until limit has passed since the start.
func waitQuiet(ctx context.Context, count func(string) float64, quietFor, limit time.Duration) (quiet, error) {
	poll := min(max(quietFor/20, 10*time.Millisecond), 100*time.Millisecond)
	tk := time.NewTicker(poll)
	defer tk.Stop()
	start := time.Now()
	// Resyncs are read before reconciles: a sweep that fires between the
	// two reads is then counted after the base, never hidden in it.
	base := count(resyncsTotal)
	rec0 := count(reconcilesTotal)
	last, lastAt := rec0, start
	for {
		select {
		case <-ctx.Done():
			return quiet{}, ctx.Err()
		case <-tk.C:
		}
		now := time.Now()
		resyncs := count(resyncsTotal)
		if n := count(reconcilesTotal); n != last {
			last, lastAt, base = n, now, resyncs
		}
		q := quiet{took: lastAt.Sub(start), reconciles: int64(last - rec0), resyncs: base}
		switch {
		case now.Sub(lastAt) >= quietFor:
			return q, nil
		case now.Sub(start) >= limit:
			q.took, q.capHit = now.Sub(start), true
			return q, nil
		}
	}
}

// measureFailure waits until the controllers are quiet, then fails one
// master and measures what it costs (oneFailure). While a resync sweep fell
// inside the measurement (it reconciles every cluster, so the figure would
// be the sweep's), it waits and measures again on the next cluster, up to
// failureAttempts times; the result keeps the last attempt's figures.
func (r *run) measureFailure(ctx context.Context) error {
	o, res := r.o, r.res
	res.QuietForSeconds = o.QuietFor.Seconds()
	for i := 0; i < failureAttempts; i++ {
		q, err := waitQuiet(ctx, r.fl.counter, o.QuietFor, o.QuietCap)
		if err != nil {
			return fmt.Errorf("wait for a quiet controller: %w", err)
		}
		r.noteQuiet(i, q)
		name := ClusterName((o.Clusters/2 + i) % o.Clusters)
		if err := oneFailure(ctx, o, res, name, r.m, r.fl, r.user, r.tracker, r.fl.counter); err != nil {
			return err
		}
		res.OneFailureAttempts = i + 1
		res.OneFailureResyncs = int64(r.fl.counter(resyncsTotal) - q.resyncs)
		o.Progress("one failed master (%s, attempt %d): %d reconciles, %d writes, %d clusters touched, %d resync sweeps inside, recovered in %.2fs",
			name, i+1, res.OneFailureReconciles, res.OneFailureWrites, res.OneFailureClustersTouched, res.OneFailureResyncs, res.OneFailureRecoverSeconds)
		if res.OneFailureResyncs == 0 {
			return nil
		}
	}
	r.notes = append(r.notes, fmt.Sprintf("one failure: a resync sweep fell inside each of %d attempts; its figures include the sweep's reconciles", failureAttempts))
	return nil
}

// noteQuiet records the i-th quiet wait: the first one's figures (the
// tail of convergence) go in the result, any wait that hit the cap in the
// notes.
func (r *run) noteQuiet(i int, q quiet) {
	o, res := r.o, r.res
	if i == 0 {
		res.QuietSeconds, res.QuietReconciles = q.took.Seconds(), q.reconciles
	}
	if q.capHit {
		res.QuietCapHit = true
		r.notes = append(r.notes, fmt.Sprintf("quiet wait %d: reconciles still ran after %s (the cap), %d of them; the one failure was measured anyway",
			i+1, o.QuietCap, q.reconciles))
		o.Progress("not quiet after %s: %d reconciles; measuring anyway", o.QuietCap, q.reconciles)
		return
	}
	o.Progress("quiet: last reconcile %.2fs into the wait, %d reconciles, then none for %s", q.took.Seconds(), q.reconciles, o.QuietFor)
}
