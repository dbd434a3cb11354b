package store_test

import (
	"errors"
	"testing"

	v1alpha1 "github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

func TestUpdateStatusOf(t *testing.T) {
	t.Parallel()
	s, ctx, v1 := newStoreWithFoo(t)
	st := v1alpha1.ClusterStatus{ObservedGeneration: 1, ReadyReplicas: 2,
		Master: &v1alpha1.MasterStatus{TaskID: "default.foo.0.x", Epoch: 3}}
	before := s.Stats()
	v2, err := s.UpdateStatusOf(ctx, v1, st)
	if err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if after.Reads != before.Reads || after.Txns != before.Txns+1 {
		t.Fatalf("one write and no read expected: before %+v after %+v", before, after)
	}
	if v2.Generation != 1 || v2.Status.ReadyReplicas != 2 || v2.Status.Master.Epoch != 3 || v2.ResourceVersion == v1.ResourceVersion {
		t.Fatalf("status write: %+v", v2)
	}
	if v1.Status.Master != nil {
		t.Fatal("base was modified")
	}
	got, err := s.Get(ctx, "default", "foo")
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, got) != mustJSON(t, v2) {
		t.Fatalf("returned %s, stored %s", mustJSON(t, v2), mustJSON(t, got))
	}
	if mustJSON(t, v1.Spec) != mustJSON(t, got.Spec) || mustJSON(t, v1.Labels) != mustJSON(t, got.Labels) || v1.UID != got.UID {
		t.Fatal("spec or metadata changed by a status write")
	}

	// A stale base is a conflict, never an overwrite.
	if _, err := s.UpdateStatusOf(ctx, v1, v1alpha1.ClusterStatus{ReadyReplicas: 1}); !store.IsConflict(err) {
		t.Fatalf("stale base: %v", err)
	}
	// Gone: not found.
	if _, _, err := s.Delete(ctx, "default", "foo"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateStatusOf(ctx, v2, st); !store.IsNotFound(err) {
		t.Fatalf("deleted object: %v", err)
	}

	// Fenced and deposed: ErrNotLeader, even for a stale base.
	f, leaderKey := fenced(ctx, t, s, "of")
	c, err := f.Create(ctx, cluster("default", "bar"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err = f.UpdateStatusOf(ctx, c, st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Delete(ctx, leaderKey); err != nil {
		t.Fatal(err)
	}
	if _, err := f.UpdateStatusOf(ctx, c, v1alpha1.ClusterStatus{}); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed: %v", err)
	}
}
