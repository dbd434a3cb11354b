package v1alpha1

import (
	"slices"
	"testing"
)

// TestSpreadNone: "none", the documented default of placement.spread, is a
// value one may write (as election.strategy: none is); it is what defaulting
// fills in, and the schema accepts exactly what Validate does.
func TestSpreadNone(t *testing.T) {
	doc := []byte(`apiVersion: converge.io/v1alpha1
kind: Cluster
metadata: {name: spread-none}
spec:
  task:
    command: "sleep 1000"
    resources: {cpus: 100m, mem: 64Mi}
  placement:
    spread: none
`)
	cs, err := Decode(doc, "spread.yaml") // defaults and validates
	if err != nil || len(cs) != 1 {
		t.Fatalf("spread: none: %v (%d objects)", err, len(cs))
	}
	c := cs[0]
	if c.Spec.Placement.Spread != SpreadNone {
		t.Fatalf("spread = %q", c.Spec.Placement.Spread)
	}

	c.Spec.Placement.Spread = ""
	SetDefaults(c)
	if c.Spec.Placement.Spread != SpreadNone {
		t.Fatalf("defaulted spread = %q, want %q", c.Spec.Placement.Spread, SpreadNone)
	}

	spread := loadSchema(t)["properties"].(map[string]any)["spec"].(map[string]any)["properties"].(map[string]any)["placement"].(map[string]any)["properties"].(map[string]any)["spread"].(map[string]any)
	var enum []string
	for _, v := range spread["enum"].([]any) {
		enum = append(enum, v.(string))
	}
	if !slices.Equal(enum, SpreadValues) || spread["default"] != SpreadNone {
		t.Fatalf("schema spread enum %q default %v; Validate accepts %q, default %q", enum, spread["default"], SpreadValues, SpreadNone)
	}
}
