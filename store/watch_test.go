package store_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/converge-io/converge/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watcher reads a Watch channel with deadlines.
type watcher struct {
	t  *testing.T
	ch <-chan store.WatchEvent
}

func (w watcher) next() store.WatchEvent {
	w.t.Helper()
	select {
	case ev, ok := <-w.ch:
		if !ok {
			w.t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(15 * time.Second):
		w.t.Fatal("no watch event within 15s")
	}
	return store.WatchEvent{}
}

// expect reads len(want) events ("ADDED ns/name", in any order when
// unordered) and fails on a mismatch.
func (w watcher) expect(unordered bool, want ...string) []store.WatchEvent {
	w.t.Helper()
	var got []string
	var evs []store.WatchEvent
	for range want {
		ev := w.next()
		evs = append(evs, ev)
		got = append(got, string(ev.Type)+" "+ev.Object.Namespace+"/"+ev.Object.Name)
	}
	g, x := append([]string(nil), got...), append([]string(nil), want...)
	if unordered {
		sort.Strings(g)
		sort.Strings(x)
	}
	if strings.Join(g, ",") != strings.Join(x, ",") {
		w.t.Fatalf("watch events %v, want %v", got, want)
	}
	return evs
}

// quiet checks that nothing more arrives for a moment (a sanity check
// against duplicate events, not a synchronisation).
func (w watcher) quiet(d time.Duration) {
	w.t.Helper()
	select {
	case ev, ok := <-w.ch:
		if ok {
			w.t.Fatalf("unexpected event %s %s/%s", ev.Type, ev.Object.Namespace, ev.Object.Name)
		}
	case <-time.After(d):
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	if _, err := s.Create(ctx, cluster("ns1", "pre")); err != nil {
		t.Fatal(err)
	}
	_, rev, err := s.List(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	all := watcher{t, s.Watch(ctx, "", rev)}
	ns1 := watcher{t, s.Watch(ctx, "ns1", rev)}

	a, err := s.Create(ctx, cluster("ns1", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, cluster("ns2", "b")); err != nil {
		t.Fatal(err)
	}
	a.Spec.Task.Command = "changed"
	a2, err := s.Update(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, "ns1", "a"); err != nil {
		t.Fatal(err)
	}
	evs := all.expect(false, "ADDED ns1/a", "ADDED ns2/b", "MODIFIED ns1/a", "DELETED ns1/a")
	if evs[2].Object.Generation != 2 || evs[2].Object.ResourceVersion != a2.ResourceVersion ||
		fmt.Sprint(evs[2].Revision) != a2.ResourceVersion {
		t.Fatalf("modified event: %+v rev %d", evs[2].Object.ObjectMeta, evs[2].Revision)
	}
	if evs[3].Object.Spec.Task.Command != "changed" {
		t.Fatal("deleted event does not carry the last state")
	}
	ns1.expect(false, "ADDED ns1/a", "MODIFIED ns1/a", "DELETED ns1/a")

	// From 0: only what happens after the call.
	now := watcher{t, s.Watch(ctx, "", 0)}
	if _, err := s.Create(ctx, cluster("ns1", "c")); err != nil {
		t.Fatal(err)
	}
	now.expect(false, "ADDED ns1/c")
	all.expect(false, "ADDED ns1/c")

	// From an old, uncompacted revision: the history is replayed.
	old := watcher{t, s.Watch(ctx, "ns2", rev)}
	old.expect(false, "ADDED ns2/b")
	old.quiet(200 * time.Millisecond)

	cancel()
	for range all.ch {
	}
}

func TestWatchAcrossCompaction(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	for _, n := range []string{"a", "b", "c", "e"} {
		if _, err := s.Create(ctx, cluster("default", n)); err != nil {
			t.Fatal(err)
		}
	}
	_, rev0, err := s.List(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Get(ctx, "default", "a")
	a.Spec.Task.Command = "changed"
	if _, err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, "default", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, cluster("default", "d")); err != nil {
		t.Fatal(err)
	}
	_, cur, _ := s.List(ctx, "", nil)
	if _, err := s.Client().Compact(ctx, cur, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, "default", "c"); err != nil {
		t.Fatal(err)
	}
	// rev0 is compacted: the watch re-lists and reports what changed since.
	// (b was deleted before the compaction revision: etcd no longer knows it
	// existed, the documented limit.) e is unchanged: not reported.
	w := watcher{t, s.Watch(ctx, "", rev0)}
	evs := w.expect(true, "MODIFIED default/a", "ADDED default/d", "DELETED default/c")
	for _, ev := range evs {
		if ev.Type == store.Modified && ev.Object.Spec.Task.Command != "changed" {
			t.Fatalf("modified object is stale: %+v", ev.Object.Spec.Task)
		}
	}
	// Then it keeps watching from the re-list's revision, without duplicates.
	if _, err := s.Create(ctx, cluster("default", "f")); err != nil {
		t.Fatal(err)
	}
	w.expect(false, "ADDED default/f")
	w.quiet(200 * time.Millisecond)
}

func TestWatchAcrossRestart(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	a, err := s.Create(ctx, cluster("default", "a"))
	if err != nil {
		t.Fatal(err)
	}
	_, rev, _ := s.List(ctx, "", nil)
	w := watcher{t, s.Watch(ctx, "", rev)}
	if _, err := s.Create(ctx, cluster("default", "b")); err != nil {
		t.Fatal(err)
	}
	w.expect(false, "ADDED default/b")

	srv.Restart(t)

	// The client reconnects by itself; retry the write until etcd answers.
	deadline := time.Now().Add(15 * time.Second)
	for {
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		_, err := s.Create(wctx, cluster("default", "c"))
		wcancel()
		if err == nil || store.IsAlreadyExists(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not writable after restart: %v", err)
		}
	}
	a.Spec.Task.Command = "after restart"
	if _, err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	w.expect(false, "ADDED default/c", "MODIFIED default/a")
	w.quiet(200 * time.Millisecond)
}
