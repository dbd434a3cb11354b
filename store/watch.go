package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	v1alpha1 "github.com/converge-io/converge/apis/v1alpha1"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchType says what happened to an object.
type WatchType string

// Watch event types (Kubernetes' names).
const (
	Added    WatchType = "ADDED"
	Modified WatchType = "MODIFIED"
	Deleted  WatchType = "DELETED"
)

// WatchEvent is one change. Revision is the etcd revision of the change
// (for events synthesised by a re-list, the revision of the list).
// For Deleted, Object is the last state known: the previous value when
// etcd still had it, else an object with only its namespace, name and
// resourceVersion.
type WatchEvent struct {
	Type     WatchType
	Object   *v1alpha1.Cluster
	Revision int64
}

// watch retry pacing after a failed re-list.
const (
	watchRetryMin = 50 * time.Millisecond
	watchRetryMax = 2 * time.Second
)

// Watch streams changes of the clusters of namespace ns ("" = all) after
// revision fromRev (0 = from now; pass List's revision to see every change
// after the list). It survives compaction and lost connections: it
// re-lists, emits what changed meanwhile (Added or Modified for objects
// changed after the last revision it delivered, Deleted for objects that
// vanished), then watches again from the list's revision. The channel is
// closed when ctx ends, or at once for an invalid namespace.
//
// With fromRev 0, Watch reads the current revision before it returns
// (unless etcd does not answer within DefaultDialTimeout; it then keeps
// trying in the background and "now" is when it succeeds).
//
// One limit of etcd: when fromRev itself is already compacted, objects
// created and deleted, or deleted, before the compaction revision cannot be
// reported as Deleted; everything after it is.
func (s *Store) Watch(ctx context.Context, ns string, fromRev int64) <-chan WatchEvent {
	out := make(chan WatchEvent)
	if ns != "" && ValidateKeyName("namespace", ns) != nil {
		close(out)
		return out
	}
	w := &clusterWatch{s: s, ns: ns, out: out, known: map[string]int64{}}
	prefix := s.clustersPrefix(ns)
	started := false
	if fromRev <= 0 {
		// "Now" is the time of the call: read it before returning, so
		// every write after Watch returns is seen.
		sctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
		started = w.start(sctx, prefix, 0) == nil
		cancel()
	}
	go w.run(ctx, prefix, fromRev, started)
	return out
}

type clusterWatch struct {
	s   *Store
	ns  string
	out chan<- WatchEvent
	// known maps "ns/name" to the mod revision last delivered (or listed):
	// the set the consumer believes exists, for diffs after a re-list.
	known map[string]int64
	// lastRev is the revision up to which the consumer has everything.
	lastRev int64
	// seeded is false while the starting set is unknown (fromRev was
	// already compacted when the watch started).
	seeded bool
}

// start establishes the starting set: the objects as of fromRev, or as of now.
func (w *clusterWatch) start(ctx context.Context, prefix string, fromRev int64) error {
	if fromRev > 0 {
		err := w.seed(ctx, prefix, fromRev)
		if errors.Is(err, rpctypes.ErrCompacted) {
			// The watch fails with the compaction revision and resyncs from there.
			w.lastRev = fromRev
			return nil
		}
		if err == nil {
			w.seeded = true
		}
		return err
	}
	resp, err := w.s.get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	w.seeded = true
	w.lastRev = resp.Header.Revision
	for _, kv := range resp.Kvs {
		w.known[string(kv.Key)] = kv.ModRevision
	}
	return nil
}

func (w *clusterWatch) run(ctx context.Context, prefix string, fromRev int64, started bool) {
	defer close(w.out)
	backoff := watchRetryMin
	pause := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(backoff*2, watchRetryMax)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	for !started {
		if err := w.start(ctx, prefix, fromRev); err == nil {
			break
		}
		if !pause() {
			return
		}
	}

	for ctx.Err() == nil {
		compactRev, err := w.stream(ctx, prefix)
		if ctx.Err() != nil {
			return
		}
		_ = err // every failure is handled the same way: resync
		for {
			if err := w.resync(ctx, prefix, compactRev); err == nil {
				backoff = watchRetryMin
				break
			}
			if !pause() {
				return
			}
		}
	}
}

// seed loads the keys (and mod revisions) present at rev.
func (w *clusterWatch) seed(ctx context.Context, prefix string, rev int64) error {
	resp, err := w.s.get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
	if err != nil {
		return err
	}
	clear(w.known)
	for _, kv := range resp.Kvs {
		w.known[string(kv.Key)] = kv.ModRevision
	}
	w.lastRev = rev
	return nil
}

// stream relays etcd watch events after lastRev until the watch fails.
// It returns the compaction revision when that is why it failed.
func (w *clusterWatch) stream(ctx context.Context, prefix string) (compactRev int64, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(),
		clientv3.WithRev(w.lastRev+1), clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return resp.CompactRevision, rpctypes.ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return 0, err
		}
		if resp.Canceled {
			return 0, errors.New("watch canceled by etcd")
		}
		for _, ev := range resp.Events {
			we, ok := w.event(ev)
			if !ok {
				continue
			}
			if !w.send(ctx, we) {
				return 0, ctx.Err()
			}
		}
		if resp.IsProgressNotify() && resp.Header.Revision > w.lastRev {
			w.lastRev = resp.Header.Revision
		}
	}
	return 0, errors.New("watch channel closed")
}

func (w *clusterWatch) event(ev *clientv3.Event) (WatchEvent, bool) {
	key := string(ev.Kv.Key)
	rev := ev.Kv.ModRevision
	if rev > w.lastRev {
		w.lastRev = rev
	}
	if ev.Type == mvccpb.DELETE {
		last := w.known[key]
		delete(w.known, key)
		var obj *v1alpha1.Cluster
		if ev.PrevKv != nil {
			if c, err := decodeCluster(ev.PrevKv); err == nil {
				obj = c
			}
		}
		if obj == nil {
			obj = w.stub(key, last)
		}
		return WatchEvent{Type: Deleted, Object: obj, Revision: rev}, obj != nil
	}
	c, err := decodeCluster(ev.Kv)
	if err != nil {
		return WatchEvent{}, false // not ours to report; a corrupt value is visible to Get
	}
	typ := Modified
	if ev.IsCreate() {
		typ = Added
	}
	w.known[key] = rev
	return WatchEvent{Type: typ, Object: c, Revision: rev}, true
}

// resync re-lists and emits the difference between the consumer's view
// (known, up to lastRev) and the current state. When the watch failed for
// compaction, the view is first re-seeded at the compaction revision if it
// was unknown (the watch started from an already compacted revision).
func (w *clusterWatch) resync(ctx context.Context, prefix string, compactRev int64) error {
	if compactRev > 0 && !w.seeded && w.lastRev < compactRev {
		// Best effort: objects present at compactRev and gone now become
		// Deleted events. If compactRev is itself compacted, nothing is lost
		// that was not already.
		last := w.lastRev
		if err := w.seed(ctx, prefix, compactRev); err == nil {
			w.lastRev = last
		}
		w.seeded = true
	}
	resp, err := w.s.get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	listRev := resp.Header.Revision
	present := make(map[string]bool, len(resp.Kvs))
	var evs []WatchEvent
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		present[key] = true
		// Everything delivered so far is at or below lastRev, so exactly the
		// objects written after it are news to the consumer.
		if kv.ModRevision <= w.lastRev {
			w.known[key] = kv.ModRevision
			continue
		}
		c, err := decodeCluster(kv)
		if err != nil {
			continue
		}
		typ := Modified
		if kv.CreateRevision > w.lastRev {
			typ = Added
		}
		evs = append(evs, WatchEvent{Type: typ, Object: c, Revision: listRev})
	}
	for key, rev := range w.known {
		if !present[key] {
			if obj := w.stub(key, rev); obj != nil {
				evs = append(evs, WatchEvent{Type: Deleted, Object: obj, Revision: listRev})
			}
		}
	}
	// Deliver; only then commit the new view, so an interrupted delivery
	// (ctx ended) cannot leave known ahead of the consumer.
	for _, ev := range evs {
		if !w.send(ctx, ev) {
			return nil
		}
		key := w.s.clusterKey(ev.Object.Namespace, ev.Object.Name)
		if ev.Type == Deleted {
			delete(w.known, key)
		} else {
			rv, _ := strconv.ParseInt(ev.Object.ResourceVersion, 10, 64)
			w.known[key] = rv
		}
	}
	w.lastRev = listRev
	return nil
}

// stub is a Deleted event's object when the last value is unavailable.
func (w *clusterWatch) stub(key string, rev int64) *v1alpha1.Cluster {
	ns, name, ok := nsNameFromKey(w.s.prefix+"/clusters/", key)
	if !ok {
		return nil
	}
	c := &v1alpha1.Cluster{}
	c.APIVersion, c.Kind = v1alpha1.APIVersion, v1alpha1.Kind
	c.Namespace, c.Name = ns, name
	if rev > 0 {
		c.ResourceVersion = strconv.FormatInt(rev, 10)
	}
	return c
}

func (w *clusterWatch) send(ctx context.Context, ev WatchEvent) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
