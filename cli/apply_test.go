package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

func decodeOne(t *testing.T, replicas string) Manifest {
	t.Helper()
	cs, err := v1alpha1.Decode([]byte(`apiVersion: converge.io/v1alpha1
kind: Cluster
metadata: {name: raced}
spec:
  replicas: `+replicas+`
  task: {command: "sleep 1", resources: {cpus: 100m, mem: 64Mi}}
`), "raced.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return Manifest{Source: "raced.yaml", Cluster: cs[0]}
}

// once returns a func that runs f the first time it is called: apply's
// beforeWrite, to interleave one other write between its read and its write.
func once(f func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			f()
		}
	}
}

func TestApplyConflicts(t *testing.T) {
	srv := etcdtest.Start(t)
	st := store.NewFromClient(srv.Client(), "/apply-conflicts")
	ctx := context.Background()
	var out bytes.Buffer
	apply := func(m Manifest, between func()) ([]Applied, error) {
		out.Reset()
		return Apply(ctx, st, []Manifest{m}, ApplyOptions{Out: &out, beforeWrite: between})
	}
	if _, err := apply(decodeOne(t, "1"), nil); err != nil {
		t.Fatal(err)
	}

	// The controller writes status meanwhile: apply re-reads and applies on top.
	statusWrite := once(func() {
		c, _ := st.Get(ctx, "default", "raced")
		c.Status.ReadyReplicas = 1
		if _, err := st.UpdateStatus(ctx, c); err != nil {
			t.Error(err)
		}
	})
	if _, err := apply(decodeOne(t, "2"), statusWrite); err != nil {
		t.Fatalf("apply over a status write: %v", err)
	}
	c, _ := st.Get(ctx, "default", "raced")
	if *c.Spec.Replicas != 2 || c.Generation != 2 || c.Status.ReadyReplicas != 1 {
		t.Fatalf("replicas %d generation %d ready %d", *c.Spec.Replicas, c.Generation, c.Status.ReadyReplicas)
	}

	// Another user changes the spec meanwhile: apply refuses to overwrite it.
	specWrite := once(func() {
		c, _ := st.Get(ctx, "default", "raced")
		r := int32(7)
		c.Spec.Replicas = &r
		if _, err := st.Update(ctx, c); err != nil {
			t.Error(err)
		}
	})
	_, err := apply(decodeOne(t, "3"), specWrite)
	if err == nil || !strings.Contains(err.Error(), "conflict: cluster/raced (namespace default) was changed (spec, labels or annotations) by someone else") {
		t.Fatalf("want a conflict, got %v", err)
	}
	if c, _ = st.Get(ctx, "default", "raced"); *c.Spec.Replicas != 7 {
		t.Fatalf("the other user's spec was overwritten: replicas %d", *c.Spec.Replicas)
	}

	// Someone else creates the same object meanwhile: nothing to do.
	if _, _, err := st.Delete(ctx, "default", "raced"); err != nil {
		t.Fatal(err)
	}
	create := once(func() {
		if _, err := st.Create(ctx, decodeOne(t, "4").Cluster); err != nil {
			t.Error(err)
		}
	})
	done, err := apply(decodeOne(t, "4"), create)
	if err != nil || done[0].Action != ActionUnchanged {
		t.Fatalf("create race with an equal object: %v %+v", err, done)
	}
}
