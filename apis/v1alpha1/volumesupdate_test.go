package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

// TestValidateVolumesUpdate: an update may not add, remove, rename, move or
// resize volumes, nor change the role of a cluster that has them; the same
// size written otherwise (1Gi, 1024Mi) and changes elsewhere pass.
func TestValidateVolumesUpdate(t *testing.T) {
	withVolumes := func(role string, sizes ...string) *Cluster {
		c := &Cluster{}
		c.Spec.Role = role
		for _, s := range sizes {
			q := resource.MustParse(s)
			c.Spec.Task.Volumes = append(c.Spec.Task.Volumes, Volume{Name: "data", ContainerPath: "data", Size: &q})
		}
		return c
	}
	old := withVolumes("db", "1Gi")
	for _, tc := range []struct {
		name string
		c    *Cluster
		want string // "" passes
	}{
		{"same", withVolumes("db", "1Gi"), ""},
		{"same size written otherwise", withVolumes("db", "1024Mi"), ""},
		{"resized", withVolumes("db", "2Gi"), "spec.task.volumes: Forbidden: volumes cannot change once the cluster exists"},
		{"added", withVolumes("db", "1Gi", "1Gi"), "spec.task.volumes: Forbidden"},
		{"removed", withVolumes("db"), "spec.task.volumes: Forbidden"},
		{"role", withVolumes("other", "1Gi"), `spec.role: Forbidden: the role cannot change while the cluster has volumes: they live on resources reserved for role "db"`},
	} {
		got := ValidateVolumesUpdate(tc.c, old).ToAggregate()
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%s: %v", tc.name, got)
		case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, got, tc.want)
		}
	}
	moved := withVolumes("db", "1Gi")
	moved.Spec.Task.Volumes[0].ContainerPath = "elsewhere"
	if ValidateVolumesUpdate(moved, old) == nil {
		t.Error("a volume moved to another containerPath passed")
	}
	if errs := ValidateVolumesUpdate(withVolumes("other"), withVolumes("db")); errs != nil {
		t.Errorf("a role change without volumes: %v", errs)
	}
}
