package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrTxnTooLarge is returned by Commit for a batch over the etcd servers'
// transaction limits; nothing is sent.
var ErrTxnTooLarge = errors.New("transaction over etcd's limits")

// ErrOutcomeUnknown is returned by Commit when the transaction was sent but
// no answer came back (a lost connection, a deadline): etcd may have applied
// it or not, and may still apply it later unless the fence moves.
var ErrOutcomeUnknown = errors.New("outcome unknown: etcd may have applied the transaction")

// opOverhead is what one operation adds to an etcd request besides its key
// and value (protobuf tags and lengths); txnOverhead is the request's own,
// the fence's compare included.
const (
	opOverhead  = 16
	txnOverhead = 1024
)

// Batch collects ledger, election, endpoints and event writes to commit as
// one etcd transaction, so one reconcile step is one durable write. Writing
// the same key twice keeps the last write, in the position of the first
// (etcd refuses a transaction that writes a key twice). An invalid name or
// task id makes Commit fail, writing nothing. A batch is atomic, so it must
// fit in one transaction (Fits); callers split their work where atomicity is
// not needed. A Batch is not safe for concurrent use.
type Batch struct {
	s      *Store
	writes []write
	index  map[string]int // key -> position in writes
	bytes  int            // sum of the writes' sizes
	err    error
}

type write struct {
	key  string
	op   clientv3.Op
	size int // estimated encoded size
}

// NewBatch returns an empty batch of keys under s's prefix.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, index: map[string]int{}} }

func (b *Batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *Batch) add(w write) {
	if i, ok := b.index[w.key]; ok {
		b.bytes += w.size - b.writes[i].size
		b.writes[i] = w
		return
	}
	b.index[w.key] = len(b.writes)
	b.writes = append(b.writes, w)
	b.bytes += w.size
}

func (b *Batch) put(key string, v any) {
	val, err := json.Marshal(v)
	if err != nil {
		b.fail(fmt.Errorf("encode %s: %w", key, err))
		return
	}
	b.add(write{key, clientv3.OpPut(key, string(val)), len(key) + len(val) + opOverhead})
}

func (b *Batch) del(key string) { b.add(write{key, clientv3.OpDelete(key), len(key) + opOverhead}) }

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
func (b *Batch) Len() int { return len(b.writes) }

// Size is the batch's estimated encoded size in bytes.
func (b *Batch) Size() int { return b.bytes + txnOverhead }

// Err is the first error met while building the batch.
func (b *Batch) Err() error { return b.err }

// Fits reports whether b and o together (o's writes replacing b's to the same
// keys) fit in one transaction of the store that made b.
func (b *Batch) Fits(o *Batch) bool {
	ops, bytes := len(b.writes), b.bytes
	for _, w := range o.writes {
		if j, ok := b.index[w.key]; ok {
			bytes -= b.writes[j].size
		} else {
			ops++
		}
		bytes += w.size
	}
	return ops <= b.s.limits.ops && bytes+txnOverhead <= b.s.limits.bytes
}

// Merge adds o's writes to b, in o's order; a write to a key b already
// writes replaces b's.
func (b *Batch) Merge(o *Batch) {
	if o.err != nil {
		b.fail(o.err)
	}
	for _, w := range o.writes {
		b.add(w)
	}
}

// Commit writes the batch as one etcd transaction (fenced when s is) and
// returns its revision: all of it or none. A batch over the etcd servers'
// limits (see Options) is refused with ErrTxnTooLarge before anything is
// sent. An empty batch writes nothing and returns 0. The batch must be
// committed through a view of the store that created it (the same prefix);
// Fenced views qualify.
func (s *Store) Commit(ctx context.Context, b *Batch) (rev int64, err error) {
	if b.err != nil {
		return 0, fmt.Errorf("commit: %w", b.err)
	}
	if b.s.prefix != s.prefix {
		return 0, fmt.Errorf("commit: batch built for prefix %s, store has %s", b.s.prefix, s.prefix)
	}
	n := len(b.writes)
	if n == 0 {
		return 0, nil
	}
	if n > s.limits.ops || b.Size() > s.limits.bytes {
		return 0, fmt.Errorf("commit %d writes of %d bytes (limits %d writes, %d bytes): %w",
			n, b.Size(), s.limits.ops, s.limits.bytes, ErrTxnTooLarge)
	}
	ops := make([]clientv3.Op, n)
	for i, w := range b.writes {
		ops[i] = w.op
	}
	rev, _, _, err = s.write(ctx, nil, ops, nil)
	if err != nil {
		if errors.Is(err, ErrNotLeader) || refused(err) {
			return 0, fmt.Errorf("commit %d writes: %w", n, err)
		}
		return 0, fmt.Errorf("commit %d writes: %w: %w", n, ErrOutcomeUnknown, err)
	}
	return rev, nil
}

// refused reports whether etcd answered err, refusing the request, so nothing
// was applied (bad auth, a request too large, no space left). Unavailable,
// deadlines and cancellations are not: the request may have been applied.
func refused(err error) bool {
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	switch code {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition,
		codes.ResourceExhausted, codes.OutOfRange, codes.AlreadyExists, codes.NotFound, codes.Unimplemented:
		return true
	}
	return false
}
