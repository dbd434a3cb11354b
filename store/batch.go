package store

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxBatchOps is the most operations Commit puts in one transaction; larger
// batches are split, in order, into several transactions. It stays below
// the etcd servers' --max-txn-ops (etcdtest and StartEmbedded use 1024;
// a fenced transaction nests the batch one level down, costing one op).
const MaxBatchOps = 1000

// Batch collects ledger, election, endpoints and event writes to commit as
// one etcd transaction, so one reconcile step is one durable write. Writing
// the same key twice keeps the last write, in the position of the first
// (etcd refuses a transaction that writes a key twice). An invalid name or
// task id makes Commit fail, writing nothing. A Batch is not safe for
// concurrent use.
type Batch struct {
	s     *Store
	ops   []clientv3.Op
	index map[string]int // key -> position in ops
	err   error
}

// NewBatch returns an empty batch of keys under s's prefix.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, index: map[string]int{}} }

func (b *Batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *Batch) add(key string, op clientv3.Op) {
	if i, ok := b.index[key]; ok {
		b.ops[i] = op
		return
	}
	b.index[key] = len(b.ops)
	b.ops = append(b.ops, op)
}

func (b *Batch) put(key string, v any) {
	val, err := json.Marshal(v)
	if err != nil {
		b.fail(fmt.Errorf("encode %s: %w", key, err))
		return
	}
	b.add(key, clientv3.OpPut(key, string(val)))
}

func (b *Batch) del(key string) { b.add(key, clientv3.OpDelete(key)) }

func (b *Batch) checkTask(ns, name, id string) bool {
	if err := validateNsName(ns, name); err != nil {
		b.fail(fmt.Errorf("task %q: %w", truncate(id), err))
		return false
	}
	if err := ValidateTaskID(id); err != nil {
		b.fail(fmt.Errorf("cluster %s/%s: %w", ns, name, err))
		return false
	}
	return true
}

func (b *Batch) check(what, ns, name string) bool {
	if err := validateNsName(ns, name); err != nil {
		b.fail(fmt.Errorf("%s: %w", what, err))
		return false
	}
	return true
}

// PutTask writes a ledger record (key from its Namespace, Cluster and ID).
func (b *Batch) PutTask(r TaskRecord) {
	if b.checkTask(r.Namespace, r.Cluster, r.ID) {
		b.put(b.s.taskKey(r.Namespace, r.Cluster, r.ID), r)
	}
}

// DeleteTask removes a ledger record.
func (b *Batch) DeleteTask(ns, name, id string) {
	if b.checkTask(ns, name, id) {
		b.del(b.s.taskKey(ns, name, id))
	}
}

// PutElection writes a cluster's election record.
func (b *Batch) PutElection(ns, name string, e ElectionRecord) {
	if b.check("election", ns, name) {
		b.put(b.s.electionKey(ns, name), e)
	}
}

// DeleteElection removes a cluster's election record.
func (b *Batch) DeleteElection(ns, name string) {
	if b.check("election", ns, name) {
		b.del(b.s.electionKey(ns, name))
	}
}

// PutEndpoints publishes a cluster's endpoints (key from e.Namespace, e.Cluster).
func (b *Batch) PutEndpoints(e Endpoints) {
	if b.check("endpoints", e.Namespace, e.Cluster) {
		b.put(b.s.endpointsKey(e.Namespace, e.Cluster), e)
	}
}

// DeleteEndpoints unpublishes a cluster's endpoints.
func (b *Batch) DeleteEndpoints(ns, name string) {
	if b.check("endpoints", ns, name) {
		b.del(b.s.endpointsKey(ns, name))
	}
}

// AppendEvents writes existing+add, keeping the newest MaxEvents.
func (b *Batch) AppendEvents(ns, name string, existing []Event, add ...Event) {
	if !b.check("events", ns, name) {
		return
	}
	all := make([]Event, 0, len(existing)+len(add))
	all = append(all, existing...)
	all = append(all, add...)
	if len(all) > MaxEvents {
		all = all[len(all)-MaxEvents:]
	}
	b.put(b.s.eventsKey(ns, name), all)
}

// Len is the number of writes in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Commit writes the batch as one etcd transaction (fenced when s is) and
// returns its revision. Batches over MaxBatchOps are split, in order, into
// several transactions: each is atomic, the whole is not, and a failure
// leaves the earlier parts written. An empty batch writes nothing and
// returns 0. The batch must be committed through a view of the store that
// created it (the same prefix); Fenced views qualify.
func (s *Store) Commit(ctx context.Context, b *Batch) (rev int64, err error) {
	if b.err != nil {
		return 0, fmt.Errorf("commit: %w", b.err)
	}
	if b.s.prefix != s.prefix {
		return 0, fmt.Errorf("commit: batch built for prefix %s, store has %s", b.s.prefix, s.prefix)
	}
	for start := 0; start < len(b.ops); start += MaxBatchOps {
		end := min(start+MaxBatchOps, len(b.ops))
		r, _, _, err := s.write(ctx, nil, b.ops[start:end], nil)
		if err != nil {
			if len(b.ops) > MaxBatchOps {
				return rev, fmt.Errorf("commit writes %d-%d of %d: %w", start+1, end, len(b.ops), err)
			}
			return rev, fmt.Errorf("commit %d writes: %w", len(b.ops), err)
		}
		rev = r
	}
	return rev, nil
}
