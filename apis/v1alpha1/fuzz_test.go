package v1alpha1

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: decoding and validating any input never panics; whatever
// decodes is valid, and its JSON encoding decodes back to the same thing
// (what `get -o json` prints, `apply` accepts).
//
//	go test ./apis/v1alpha1 -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"",
		"---\n",
		doc("a"),
		doc("a", "replicas: -1", "placement: {constraints: [{attribute: rack, operator: LIKE, value: 'r[0-9'}]}"),
		doc("a") + "---\n" + doc("b", "election: {strategy: position, positionCommand: x, timeout: 1h}"),
		doc("a", "bogus: 1"),
		"apiVersion: converge.io/v1alpha1\nkind: ClusterList\nitems:\n- metadata: {name: a}\n  spec: {task: {command: x, resources: {cpus: 1, mem: 1Gi}}}\n",
		`{"apiVersion":"converge.io/v1alpha1","kind":"Cluster","metadata":{"name":"a"},"spec":{"task":{"command":"x","resources":{"cpus":1e3,"mem":"1Gi"}}}}`,
		"{a: 1}\nb: 2\n",
		"a: &x [*x]\n",
		"apiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata: {name: a, creationTimestamp: 2024-01-01}\nspec: {task: {command: x, resources: {cpus: 1, mem: lots}}, election: {timeout: 7}}\n",
	}
	examples, _ := filepath.Glob("../../manifests/examples/*.yaml")
	for _, e := range examples {
		if data, err := os.ReadFile(e); err == nil {
			seeds = append(seeds, string(data))
		}
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := Decode(data, "fuzz.yaml")
		if err != nil {
			var de *DecodeError
			if cs != nil || (!errors.As(err, &de) && !errors.Is(err, ErrNoObjects)) {
				t.Fatalf("error %T %v with %d clusters", err, err, len(cs))
			}
			if de != nil && len(de.Problems) == 0 {
				t.Fatal("DecodeError without problems")
			}
			_ = err.Error()
			return
		}
		for _, c := range cs {
			if errs := Validate(c); len(errs) != 0 {
				t.Fatalf("decoded an invalid cluster: %v", errs)
			}
			_ = TemplateHash(&c.Spec)
			_ = c.DeepCopy()
			out1, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			again, err := Decode(out1, "again.json")
			if err != nil {
				t.Fatalf("re-decoding %s: %v", out1, err)
			}
			out2, _ := json.Marshal(again[0])
			if string(out1) != string(out2) {
				t.Fatalf("not stable:\n%s\n%s", out1, out2)
			}
			if TemplateHash(&again[0].Spec) != TemplateHash(&c.Spec) {
				t.Fatalf("template hash changed by a round trip")
			}
		}
	})
}
