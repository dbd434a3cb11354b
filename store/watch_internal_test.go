package store

import (
	"context"
	"sort"
	"testing"
	"time"

	v1alpha1 "github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store/etcdtest"
)

// TestResyncDiff pins the re-list a watch does after losing its stream:
// against the set the consumer was last given, it reports exactly what
// changed, appeared and vanished meanwhile.
func TestResyncDiff(t *testing.T) {
	srv := etcdtest.Start(t)
	s := NewFromClient(srv.Client(), "/t")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mk := func(name string) *v1alpha1.Cluster {
		c := &v1alpha1.Cluster{}
		c.Namespace, c.Name = "default", name
		c.Spec.Task.Command = "x"
		return c
	}
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.Create(ctx, mk(n)); err != nil {
			t.Fatal(err)
		}
	}
	_, rev0, err := s.List(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan WatchEvent, 10)
	w := &clusterWatch{s: s, out: out, known: map[string]int64{}}
	prefix := s.clustersPrefix("")
	if err := w.seed(ctx, prefix, rev0); err != nil {
		t.Fatal(err)
	}
	// Changes the consumer never saw.
	a, _ := s.Get(ctx, "default", "a")
	a.Spec.Task.Command = "y"
	if _, err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, "default", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, mk("d")); err != nil {
		t.Fatal(err)
	}
	if err := w.resync(ctx, prefix, 0); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []string
	for ev := range out {
		got = append(got, string(ev.Type)+" "+ev.Object.Name)
	}
	sort.Strings(got)
	want := []string{"ADDED d", "DELETED b", "MODIFIED a"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("resync events %v, want %v", got, want)
	}
	_, cur, _ := s.List(ctx, "", nil)
	if w.lastRev != cur || len(w.known) != 3 {
		t.Fatalf("after resync lastRev %d (want %d), known %v", w.lastRev, cur, w.known)
	}
}
