package controller

import (
	"context"
	"sync"

	"github.com/converge-io/converge/store"
)

// taskWrite is one ledger change. create writes a new record; mut changes the
// latest cached record (it reports whether anything changed, and events to
// record); forget deletes a record.
type taskWrite struct {
	key    string
	id     string
	create *store.TaskRecord
	mut    func(r *store.TaskRecord) (changed bool, events []store.Event)
	forget bool
}

// writeOp is one unit of durable change: everything in it is committed before its
// after callback runs. Ops queued together are packed into as few etcd
// transactions as etcd's limits allow (group commit), so a burst of status
// updates costs a few transactions, not one each. An op larger than a
// transaction is split (see part).
type writeOp struct {
	tasks     []taskWrite
	elections map[string]store.ElectionRecord // by cluster key
	endpoints map[string]store.Endpoints      // by cluster key
	events    map[string][]store.Event        // by cluster key
	// lateEvents are appended after the group's transactions, once per
	// cluster, if the op commits. A launch round's "Launching" events in
	// events rewrote a cluster's history in every transaction that held one
	// of its launches: ten per cluster of ten members on ten agents.
	lateEvents map[string][]store.Event
	// after runs in the writer goroutine once the op is durable (err nil) or not;
	// it must not block.
	after func(err error)
}

func (op *writeOp) addEvents(key string, evs ...store.Event) {
	if len(evs) == 0 {
		return
	}
	if op.events == nil {
		op.events = map[string][]store.Event{}
	}
	op.events[key] = append(op.events[key], evs...)
}

func (op *writeOp) addLateEvents(key string, evs ...store.Event) {
	if op.lateEvents == nil {
		op.lateEvents = map[string][]store.Event{}
	}
	op.lateEvents[key] = append(op.lateEvents[key], evs...)
}

func (op *writeOp) empty() bool {
	return len(op.tasks) == 0 && len(op.elections) == 0 && len(op.endpoints) == 0 && len(op.events) == 0 && len(op.lateEvents) == 0
}

// write queues op for the writer and waits for it to be committed.
func (c *Controller) write(ctx context.Context, op *writeOp) error {
	if op.empty() {
		return nil
	}
	done := make(chan error, 1)
	inner := op.after
	op.after = func(err error) {
		if inner != nil {
			inner(err)
		}
		done <- err
	}
	select {
	case c.writes <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submit queues op without waiting; op.after reports the outcome.
func (c *Controller) submit(ctx context.Context, op *writeOp) {
	select {
	case c.writes <- op:
	case <-ctx.Done():
		if op.after != nil {
			op.after(ctx.Err())
		}
	}
}

// submitUpdate queues a status update's write without waiting; op.after
// reports the outcome. Updates go before every other write, even between the
// transactions of a launch round: their acknowledgement waits on them, and an
// agent sends a task's next update only once the previous one is acknowledged.
func (c *Controller) submitUpdate(ctx context.Context, op *writeOp) {
	select {
	case c.updateWrites <- op:
	case <-ctx.Done():
		if op.after != nil {
			op.after(ctx.Err())
		}
	}
}

const maxGroupOps = 512

// runWriter is the only goroutine that writes the ledger, election records,
// endpoints and events, and the only one that changes their caches: it applies
// each op's changes to the latest cached state (so a kill decided on a snapshot
// never overwrites a status update that arrived meanwhile), commits them in
// transactions within etcd's limits, then updates the caches and runs the
// callbacks of what was committed.
func (c *Controller) runWriter(ctx context.Context) {
	w := &writer{c: c, pending: map[string][]store.Event{}}
	for {
		w.commitUpdates(ctx)
		var group []*writeOp
		select {
		case op := <-c.updateWrites:
			w.commitGroup(ctx, drainOps(c.updateWrites, []*writeOp{op}), false)
			continue
		case op := <-c.writes:
			group = append(group, op)
		case <-ctx.Done():
			return
		}
		w.commitGroup(ctx, drainOps(c.writes, group), true)
	}
}

// drainOps adds to group what ch holds, up to maxGroupOps ops.
func drainOps(ch chan *writeOp, group []*writeOp) []*writeOp {
	for len(group) < maxGroupOps {
		select {
		case op := <-ch:
			group = append(group, op)
		default:
			return group
		}
	}
	return group
}

// commitUpdates commits the status updates waiting, if any.
func (w *writer) commitUpdates(ctx context.Context) {
	if len(w.c.updateWrites) == 0 {
		return
	}
	w.commitGroup(ctx, drainOps(w.c.updateWrites, nil), false)
}

// writer is runWriter's state.
type writer struct {
	c *Controller
	// pending holds events of clusters whose history could not be read (they
	// are written once it can be, and never over a history not read) and the
	// late events of committed ops.
	pending map[string][]store.Event
	// unknown is set once a commit's outcome is unknown; every later commit
	// fails with it (the controller is stopping).
	unknown error
}

// maxHistoryReads bounds the concurrent reads of event histories.
const maxHistoryReads = 32

// loadEventHistories reads, outside the lock and in parallel, the event
// histories of keys that are not cached yet. (Read one after another they
// held up every commit while a thousand new clusters were applied: one round
// trip per cluster.) A history that cannot be read stays uncached.
func (c *Controller) loadEventHistories(ctx context.Context, keys []string) {
	var missing []string
	c.mu.Lock()
	for _, key := range keys {
		if _, ok := c.historyLocked(key); !ok && c.clusterLocked(key) != nil {
			missing = append(missing, key)
		}
	}
	c.mu.Unlock()
	sem := make(chan struct{}, maxHistoryReads)
	var wg sync.WaitGroup
	for _, key := range missing {
		wg.Add(1)
		sem <- struct{}{}
		go func(key string) {
			defer func() { <-sem; wg.Done() }()
			ns, name := splitKey(key)
			evs, err := c.cfg.Store.ListEvents(ctx, ns, name)
			if err != nil {
				c.log.Error(err, "read event history; its new events wait", "cluster", key)
				return
			}
			c.mu.Lock()
			if rm := c.rooms[key]; rm != nil && !rm.historyLoaded {
				rm.events, rm.historyLoaded = evs, true
			}
			c.mu.Unlock()
		}(key)
	}
	wg.Wait()
}

// eventKeys lists the clusters whose histories the group appends to, as far
// as can be known before staging (status updates find theirs while staged).
func (w *writer) eventKeys(group []*writeOp) []string {
	seen := map[string]bool{}
	var keys []string
	add := func(key string) {
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	for key := range w.pending {
		add(key)
	}
	for _, op := range group {
		for key := range op.events {
			add(key)
		}
		for key := range op.lateEvents {
			add(key)
		}
	}
	return keys
}

// commitGroup splits the group's ops into parts, packs parts into
// transactions as they fit, and commits those one after another, so each
// transaction is staged on caches that hold everything committed before it.
// An op completes (after) when its last part is committed, or fails at its
// first part that is not; its later parts are then dropped.
// yield: between two of the group's transactions, the status updates that
// arrived meanwhile are committed first (false for a group of updates).
func (w *writer) commitGroup(ctx context.Context, group []*writeOp, yield bool) {
	w.c.loadEventHistories(ctx, w.eventKeys(group))
	w.commitParts(ctx, append(splitOps(group), w.pendingParts()...), yield)
	// Late events, and the events of status changes of clusters whose
	// history was not cached, wait in pending: read those histories and write
	// them now, not at the next write.
	if len(w.pending) > 0 {
		w.c.loadEventHistories(ctx, w.eventKeys(nil))
		w.commitParts(ctx, w.pendingParts(), yield)
	}
	w.prunePending()
}

func (w *writer) commitParts(ctx context.Context, parts []part, yield bool) {
	failed := map[*writeOp]bool{}
	for len(parts) > 0 {
		if yield {
			// Each transaction is staged on the caches as they are now,
			// updates committed in between included.
			w.commitUpdates(ctx)
		}
		t, n := w.stageTxn(parts, failed)
		err := w.commitTxn(ctx, t)
		for _, p := range parts[:n] {
			if p.op == nil || failed[p.op] {
				continue
			}
			if err != nil {
				failed[p.op] = true
			}
			if err == nil && p.last {
				w.holdLateEvents(p.op)
			}
			if (err != nil || p.last) && p.op.after != nil {
				p.op.after(err)
			}
		}
		parts = parts[n:]
	}
}

// holdLateEvents queues a committed op's late events with the pending ones,
// which commitGroup writes after the group.
func (w *writer) holdLateEvents(op *writeOp) {
	for key, evs := range op.lateEvents {
		w.pending[key] = append(w.pending[key], evs...)
	}
}

// prunePending drops the pending events of deleted clusters.
func (w *writer) prunePending() {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	for key := range w.pending {
		if w.c.clusterLocked(key) == nil {
			delete(w.pending, key)
		}
	}
}
