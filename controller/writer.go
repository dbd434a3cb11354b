package controller

import (
	"context"
	"errors"
	"fmt"
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
// after callback runs. Several ops are committed together (group commit) so a
// burst of status updates, or a round of launches across clusters, is one etcd
// transaction.
type writeOp struct {
	tasks     []taskWrite
	elections map[string]store.ElectionRecord // by cluster key
	endpoints map[string]store.Endpoints      // by cluster key
	events    map[string][]store.Event        // by cluster key
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

func (op *writeOp) empty() bool {
	return len(op.tasks) == 0 && len(op.elections) == 0 && len(op.endpoints) == 0 && len(op.events) == 0
}

// submit queues op for the writer and waits for it to be committed.
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

const maxGroupOps = 512

// runWriter is the only goroutine that writes the ledger, election records,
// endpoints and events, and the only one that changes their caches: it applies
// each op's changes to the latest cached state (so a kill decided on a snapshot
// never overwrites a status update that arrived meanwhile), commits the group in
// one batch, then updates the caches and runs the callbacks.
func (c *Controller) runWriter(ctx context.Context) {
	for {
		var group []*writeOp
		select {
		case op := <-c.writes:
			group = append(group, op)
		case <-ctx.Done():
			return
		}
	drain:
		for len(group) < maxGroupOps {
			select {
			case op := <-c.writes:
				group = append(group, op)
			default:
				break drain
			}
		}
		c.commitGroup(ctx, group)
	}
}

// maxHistoryReads bounds the concurrent reads of event histories.
const maxHistoryReads = 32

// loadEventHistories reads, outside the lock and in parallel, the event
// histories of the group's clusters that are not cached yet. (Read one after
// another they held up every commit while a thousand new clusters were
// applied: one round trip per cluster.)
func (c *Controller) loadEventHistories(ctx context.Context, group []*writeOp) {
	var missing []string
	seen := map[string]bool{}
	c.mu.Lock()
	for _, op := range group {
		for key := range op.events {
			if _, ok := c.events[key]; !ok && !seen[key] {
				seen[key] = true
				missing = append(missing, key)
			}
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return
	}
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
				c.log.Error(err, "read event history; appending to an empty one", "cluster", key)
			}
			c.mu.Lock()
			if _, ok := c.events[key]; !ok {
				c.events[key] = evs
			}
			c.mu.Unlock()
		}(key)
	}
	wg.Wait()
}

type stagedTask struct {
	key string
	rec *store.TaskRecord // nil: deleted
}

func (c *Controller) commitGroup(ctx context.Context, group []*writeOp) {
	c.loadEventHistories(ctx, group)

	b := c.cfg.Store.NewBatch()
	staged := map[string]stagedTask{} // by task id
	elections := map[string]store.ElectionRecord{}
	endpoints := map[string]store.Endpoints{}
	events := map[string][]store.Event{}
	c.mu.Lock()
	current := func(key, id string) *store.TaskRecord {
		if s, ok := staged[id]; ok {
			return s.rec
		}
		return c.ledger[key][id]
	}
	for _, op := range group {
		for _, tw := range op.tasks {
			if c.clusters[tw.key] == nil {
				continue // the cluster is gone, and its ledger with it
			}
			switch {
			case tw.create != nil:
				r := *tw.create
				staged[tw.id] = stagedTask{key: tw.key, rec: &r}
				b.PutTask(r)
			case tw.forget:
				if current(tw.key, tw.id) == nil {
					continue
				}
				ns, name := splitKey(tw.key)
				staged[tw.id] = stagedTask{key: tw.key}
				b.DeleteTask(ns, name, tw.id)
			case tw.mut != nil:
				cur := current(tw.key, tw.id)
				if cur == nil {
					continue
				}
				r := *cur
				changed, evs := tw.mut(&r)
				if len(evs) > 0 {
					events[tw.key] = append(events[tw.key], evs...)
				}
				if !changed {
					continue
				}
				staged[tw.id] = stagedTask{key: tw.key, rec: &r}
				b.PutTask(r)
			}
		}
		for key, e := range op.elections {
			if c.clusters[key] == nil {
				continue
			}
			ns, name := splitKey(key)
			elections[key] = e
			b.PutElection(ns, name, e)
		}
		for key, e := range op.endpoints {
			if c.clusters[key] == nil {
				continue
			}
			endpoints[key] = e
			b.PutEndpoints(e)
		}
		for key, evs := range op.events {
			events[key] = append(events[key], evs...)
		}
	}
	newHist := map[string][]store.Event{}
	for key, evs := range events {
		if c.clusters[key] == nil {
			continue
		}
		ns, name := splitKey(key)
		existing := c.events[key]
		b.AppendEvents(ns, name, existing, evs...)
		h := append(append([]store.Event(nil), existing...), evs...)
		if len(h) > store.MaxEvents {
			h = h[len(h)-store.MaxEvents:]
		}
		newHist[key] = h
	}
	c.mu.Unlock()

	var err error
	if b.Len() > 0 {
		_, err = c.cfg.Store.Commit(ctx, b)
		c.m.commits.Inc()
		c.m.commitOps.Observe(float64(b.Len()))
	}
	if err != nil {
		err = fmt.Errorf("commit %d ledger/election/endpoint writes: %w", b.Len(), err)
		if errors.Is(err, store.ErrNotLeader) {
			c.fail(err)
		}
	} else {
		c.mu.Lock()
		for id, s := range staged {
			m := c.ledger[s.key]
			if s.rec == nil {
				if m != nil {
					delete(m, id)
				}
				continue
			}
			if m == nil {
				m = map[string]*store.TaskRecord{}
				c.ledger[s.key] = m
			}
			m[id] = s.rec
		}
		for key, e := range elections {
			e := e
			c.elections[key] = &e
		}
		for key, e := range endpoints {
			e := e
			c.endpoints[key] = &e
		}
		for key, h := range newHist {
			c.events[key] = h
		}
		c.mu.Unlock()
	}
	for _, op := range group {
		if op.after != nil {
			op.after(err)
		}
	}
}
