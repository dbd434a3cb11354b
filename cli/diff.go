package cli

import (
	"context"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// Diff writes, for each manifest, a unified diff of the live object against
// what apply would make of it, as YAML of the parts apply owns (apiVersion,
// kind, name, namespace, labels, annotations, spec). A cluster that does not
// exist yet diffs against nothing. It reports whether anything differs.
func Diff(ctx context.Context, st *store.Store, ms []Manifest, w io.Writer) (bool, error) {
	differs := false
	for _, m := range ms {
		want := m.Cluster
		path := fmt.Sprintf("cluster/%s/%s", want.Namespace, want.Name)
		liveText := ""
		live, err := st.Get(ctx, want.Namespace, want.Name)
		switch {
		case store.IsNotFound(err):
		case err != nil:
			return differs, fmt.Errorf("read cluster/%s (namespace %s): %w", want.Name, want.Namespace, err)
		default:
			if liveText, err = ownedYAML(live); err != nil {
				return differs, err
			}
			want = Merge(live, want)
		}
		wantText, err := ownedYAML(want)
		if err != nil {
			return differs, err
		}
		d, err := UnifiedDiff(w, path+" (live)", path+" ("+m.Source+")", liveText, wantText)
		if err != nil {
			return differs, err
		}
		differs = differs || d
	}
	return differs, nil
}

// ownedYAML renders the parts of c that apply writes.
func ownedYAML(c *v1alpha1.Cluster) (string, error) {
	md := map[string]any{"name": c.Name, "namespace": c.Namespace}
	if len(c.Labels) > 0 {
		md["labels"] = c.Labels
	}
	if len(c.Annotations) > 0 {
		md["annotations"] = c.Annotations
	}
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": v1alpha1.APIVersion,
		"kind":       v1alpha1.Kind,
		"metadata":   md,
		"spec":       c.Spec,
	})
	if err != nil {
		return "", fmt.Errorf("render cluster/%s: %w", c.Name, err)
	}
	return string(b), nil
}
