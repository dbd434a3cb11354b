package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/converge-io/converge/store"
)

// Part sizes. A part is staged and committed whole, so its writes must fit
// one transaction within etcd's default limits (128 operations, 1.5 MiB)
// with room to share it: at most maxPartTasks ledger writes (plus the events
// their status changes raise, one history per cluster), maxPartEvents other
// event histories, and an op's election and endpoints.
const (
	maxPartTasks  = 32
	maxPartEvents = 16
)

// part is a piece of a writeOp that is committed atomically. Most ops are one
// part. A large op (a round of launches, the kills of a deleted cluster) is
// split: its task writes are independent of each other and its events are
// informational, so neither needs one transaction; its election and endpoints
// do, and travel together in its last part.
type part struct {
	op     *writeOp // nil: the writer's own part, for pending events
	tasks  []taskWrite
	events map[string][]store.Event
	last   bool // carries op's elections and endpoints; committing it completes op
}

// splitOps turns ops into parts, in order.
func splitOps(ops []*writeOp) []part {
	var parts []part
	for _, op := range ops {
		tasks := op.tasks
		for len(tasks) > maxPartTasks {
			parts = append(parts, part{op: op, tasks: tasks[:maxPartTasks]})
			tasks = tasks[maxPartTasks:]
		}
		chunks := chunkEvents(op.events)
		final := part{op: op, tasks: tasks, last: true}
		if len(chunks) > 0 {
			for _, ch := range chunks[:len(chunks)-1] {
				parts = append(parts, part{op: op, events: ch})
			}
			final.events = chunks[len(chunks)-1]
		}
		parts = append(parts, final)
	}
	return parts
}

// chunkEvents splits events by cluster into maps of at most maxPartEvents
// clusters, in key order.
func chunkEvents(events map[string][]store.Event) []map[string][]store.Event {
	keys := make([]string, 0, len(events))
	for key := range events {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	var chunks []map[string][]store.Event
	for i, key := range keys {
		if i%maxPartEvents == 0 {
			chunks = append(chunks, map[string][]store.Event{})
		}
		chunks[len(chunks)-1][key] = events[key]
	}
	return chunks
}

// pendingParts returns parts that write the pending events of clusters whose
// history is now cached.
func (w *writer) pendingParts() []part {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	ready := map[string][]store.Event{}
	for key := range w.pending {
		if _, ok := w.c.historyLocked(key); ok {
			ready[key] = nil // stageEvents adds the pending events themselves
		}
	}
	var parts []part
	for _, ch := range chunkEvents(ready) {
		parts = append(parts, part{events: ch})
	}
	return parts
}

type stagedTask struct {
	key string
	rec *store.TaskRecord // nil: deleted
}

// staged is a transaction being built, or one part's share of it: the batch
// and what the caches become once it is committed.
type staged struct {
	b         *store.Batch
	tasks     map[string]stagedTask // by task id
	elections map[string]store.ElectionRecord
	endpoints map[string]store.Endpoints
	hist      map[string][]store.Event // new event histories
	pend      map[string][]store.Event // events whose history is unread: held back
	unpend    []string                 // clusters whose pending events this writes
}

func newStaged(b *store.Batch) *staged {
	return &staged{b: b, tasks: map[string]stagedTask{}, elections: map[string]store.ElectionRecord{},
		endpoints: map[string]store.Endpoints{}, hist: map[string][]store.Event{}, pend: map[string][]store.Event{}}
}

// stageTxn stages parts, from the first, into one transaction while they
// fit, and returns it with the number of parts it consumed. Parts of failed
// ops are consumed and dropped. A part too large for any transaction is
// staged alone; Commit refuses it and its op fails.
func (w *writer) stageTxn(parts []part, failed map[*writeOp]bool) (*staged, int) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	t := newStaged(w.c.cfg.Store.NewBatch())
	n := 0
	for ; n < len(parts); n++ {
		p := parts[n]
		if p.op != nil && failed[p.op] {
			continue
		}
		s := w.stagePart(t, p)
		if t.b.Len() > 0 && !t.b.Fits(s.b) {
			break
		}
		w.merge(t, s)
	}
	return t, n
}

// stagePart applies p's writes to what t and the caches hold. c.mu is held.
func (w *writer) stagePart(t *staged, p part) *staged {
	c := w.c
	s := newStaged(c.cfg.Store.NewBatch())
	current := func(key, id string) *store.TaskRecord {
		if st, ok := s.tasks[id]; ok {
			return st.rec
		}
		if st, ok := t.tasks[id]; ok {
			return st.rec
		}
		return c.taskLocked(key, id)
	}
	events := map[string][]store.Event{}
	for _, tw := range p.tasks {
		if c.clusterLocked(tw.key) == nil {
			continue // the cluster is gone, and its ledger with it
		}
		switch {
		case tw.create != nil:
			r := *tw.create
			s.tasks[tw.id] = stagedTask{key: tw.key, rec: &r}
			s.b.PutTask(r)
		case tw.forget:
			if current(tw.key, tw.id) == nil {
				continue
			}
			ns, name := splitKey(tw.key)
			s.tasks[tw.id] = stagedTask{key: tw.key}
			s.b.DeleteTask(ns, name, tw.id)
		case tw.mut != nil:
			cur := current(tw.key, tw.id)
			if cur == nil {
				continue
			}
			r := *cur
			changed, evs := tw.mut(&r)
			events[tw.key] = append(events[tw.key], evs...)
			if changed {
				s.tasks[tw.id] = stagedTask{key: tw.key, rec: &r}
				s.b.PutTask(r)
			}
		}
	}
	if p.last {
		w.stageRecords(s, p.op)
	}
	for key, evs := range p.events {
		events[key] = append(events[key], evs...)
	}
	for key, evs := range events {
		if len(evs) > 0 || p.op == nil {
			w.stageEvents(t, s, key, evs)
		}
	}
	return s
}

// stageRecords stages op's election records and endpoints.
func (w *writer) stageRecords(s *staged, op *writeOp) {
	for key, e := range op.elections {
		if w.c.clusterLocked(key) != nil {
			ns, name := splitKey(key)
			s.elections[key] = e
			s.b.PutElection(ns, name, e)
		}
	}
	for key, e := range op.endpoints {
		if w.c.clusterLocked(key) != nil {
			s.endpoints[key] = e
			s.b.PutEndpoints(e)
		}
	}
}

// stageEvents appends evs, after the cluster's pending events, to its
// history. A history that was never read is not written over: the events
// wait in pending until it is.
func (w *writer) stageEvents(t, s *staged, key string, evs []store.Event) {
	if w.c.clusterLocked(key) == nil {
		return
	}
	existing, ok := t.hist[key]
	if !ok {
		existing, ok = w.c.historyLocked(key)
	}
	if !ok {
		s.pend[key] = append(s.pend[key], evs...)
		return
	}
	if held := w.pending[key]; len(held) > 0 {
		evs = append(append([]store.Event(nil), held...), evs...)
		s.unpend = append(s.unpend, key)
	}
	if len(evs) == 0 {
		return
	}
	ns, name := splitKey(key)
	s.b.AppendEvents(ns, name, existing, evs...)
	h := append(append([]store.Event(nil), existing...), evs...)
	if len(h) > store.MaxEvents {
		h = h[len(h)-store.MaxEvents:]
	}
	s.hist[key] = h
}

// merge adds a staged part to the transaction t.
func (w *writer) merge(t, s *staged) {
	t.b.Merge(s.b)
	for id, st := range s.tasks {
		t.tasks[id] = st
	}
	for key, e := range s.elections {
		t.elections[key] = e
	}
	for key, e := range s.endpoints {
		t.endpoints[key] = e
	}
	for key, h := range s.hist {
		t.hist[key] = h
	}
	for key, evs := range s.pend {
		w.pending[key] = append(w.pending[key], evs...)
	}
	for _, key := range s.unpend {
		delete(w.pending, key)
	}
}

// commitTxn commits t and, only once it is durable, updates the caches, so
// they never hold what etcd does not.
func (w *writer) commitTxn(ctx context.Context, t *staged) error {
	c := w.c
	if t.b.Len() == 0 && t.b.Err() == nil {
		return nil
	}
	if w.unknown != nil {
		return w.unknown
	}
	_, err := c.cfg.Store.Commit(ctx, t.b)
	c.m.commits.Inc()
	c.m.commitOps.Observe(float64(t.b.Len()))
	if err != nil {
		err = fmt.Errorf("commit %d ledger/election/endpoint/event writes: %w", t.b.Len(), err)
		if errors.Is(err, store.ErrOutcomeUnknown) && ctx.Err() == nil {
			// The caches may now lack what etcd holds (a launch record:
			// the ordinal would be launched again beside it). Nothing more
			// is written from them: the term ends, and the next one reads
			// the ledger back under a new fence, which also stops this
			// transaction from applying late.
			c.m.commitsUnknown.Inc()
			w.unknown = err
			c.fail(err)
		}
		if errors.Is(err, store.ErrNotLeader) {
			c.fail(err)
		}
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A cluster forgotten since it was staged has no room: what was
	// committed for it went with its object, and its tasks are orphans.
	for id, st := range t.tasks {
		if c.rooms[st.key] != nil {
			c.putTaskLocked(st.key, id, st.rec)
		}
	}
	for key, e := range t.elections {
		if rm := c.rooms[key]; rm != nil {
			rm.election = &e
		}
	}
	for key, e := range t.endpoints {
		if rm := c.rooms[key]; rm != nil {
			rm.endpoints = &e
		}
	}
	for key, h := range t.hist {
		if rm := c.rooms[key]; rm != nil {
			rm.events, rm.historyLoaded = h, true
		}
	}
	return nil
}
