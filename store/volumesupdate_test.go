package store_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// TestUpdateRefusesVolumeChanges: every writer (converge apply, scale, the
// Kubernetes API) goes through Update, which refuses a change of
// task.volumes (v1alpha1.ValidateVolumesUpdate) and writes nothing.
func TestUpdateRefusesVolumeChanges(t *testing.T) {
	st, _ := newStore(t)
	ctx := ctxT(t)
	c := cluster("default", "vol")
	c.Spec.Role = "db"
	size := resource.MustParse("1Gi")
	c.Spec.Task.Volumes = []v1alpha1.Volume{{Name: "data", ContainerPath: "data", Size: &size}}
	c, err := st.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	bigger := resource.MustParse("2Gi")
	next := c.DeepCopy()
	next.Spec.Task.Volumes[0].Size = &bigger
	if _, err := st.Update(ctx, next); err == nil || !strings.Contains(err.Error(), "spec.task.volumes: Forbidden") {
		t.Fatalf("resizing a volume: %v, want spec.task.volumes: Forbidden", err)
	}
	if got, err := st.Get(ctx, "default", "vol"); err != nil || got.Generation != c.Generation || got.Spec.Task.Volumes[0].Size.Cmp(size) != 0 {
		t.Fatalf("after the refused update: %v, generation %d (was %d)", err, got.Generation, c.Generation)
	}
	two := int32(2)
	next = c.DeepCopy()
	next.Spec.Replicas = &two
	if _, err := st.Update(ctx, next); err != nil {
		t.Fatalf("a change elsewhere: %v", err)
	}
}
