package v1alpha1

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamples decodes and validates every manifest users are told to copy.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../manifests/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"minimal.yaml": false, "stateless-web.yaml": false, "replicated-db.yaml": false}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := Decode(data, f)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			for _, c := range cs {
				if errs := Validate(c); len(errs) != 0 {
					t.Errorf("%s: %v", c.Key(), errs.ToAggregate())
				}
				// Small enough for three default local agents.
				cpus, mem, _ := ResourceScalars(c.Spec.Task.Resources)
				if float64(*c.Spec.Replicas)*cpus > 1 || float64(*c.Spec.Replicas)*mem > 512 {
					t.Errorf("%s asks for %v x (%v cpus, %v MiB): keep examples small", c.Key(), *c.Spec.Replicas, cpus, mem)
				}
			}
		})
		if _, ok := want[filepath.Base(f)]; ok {
			want[filepath.Base(f)] = true
		}
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("manifests/examples/%s is missing", f)
		}
	}
}

func TestExampleStrategies(t *testing.T) {
	for file, strategy := range map[string]string{
		"replicated-db.yaml": ElectionPosition,
		"stateless-web.yaml": ElectionNone,
		"minimal.yaml":       ElectionNone,
	} {
		data, err := os.ReadFile(filepath.Join("../../manifests/examples", file))
		if err != nil {
			t.Fatal(err)
		}
		cs, err := Decode(data, file)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].Spec.Election.Strategy != strategy {
			t.Errorf("%s: want one cluster with strategy %s", file, strategy)
		}
		if file == "replicated-db.yaml" && *cs[0].Spec.Replicas != 3 {
			t.Errorf("%s: want 3 replicas", file)
		}
	}
}
