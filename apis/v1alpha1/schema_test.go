package v1alpha1

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const schemaPath = "../../manifests/schema/cluster.schema.json"

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	return s
}

// TestSchemaMatchesTypes: every object in the schema lists exactly the JSON
// fields of the Go type it describes (metadata: a subset of ObjectMeta's).
func TestSchemaMatchesTypes(t *testing.T) {
	root := loadSchema(t)
	var walk func(s map[string]any, typ reflect.Type, path string, subset bool)
	walk = func(s map[string]any, typ reflect.Type, path string, subset bool) {
		s = resolve(root, s)
		typ = derefType(typ)
		if items, ok := s["items"].(map[string]any); ok {
			walk(items, typ, path+"[]", subset)
			return
		}
		props, ok := s["properties"].(map[string]any)
		if !ok || typ.Kind() != reflect.Struct {
			return
		}
		goNames := jsonFieldNames(typ)
		var schemaNames []string
		for name, ps := range props {
			schemaNames = append(schemaNames, name)
			ft := fieldType(typ, name)
			if ft == nil {
				t.Errorf("%s.%s is in the schema but not in %s", path, name, typ)
				continue
			}
			walk(ps.(map[string]any), ft, path+"."+name, name == "metadata")
		}
		if subset {
			return
		}
		sort.Strings(goNames)
		sort.Strings(schemaNames)
		if !slices.Equal(goNames, schemaNames) {
			t.Errorf("%s: schema has %v, %s has %v", path, schemaNames, typ, goNames)
		}
	}
	walk(root, reflect.TypeOf(Cluster{}), "Cluster", false)
}

func TestSchemaValidatesExamples(t *testing.T) {
	root := loadSchema(t)
	files, _ := filepath.Glob("../../manifests/examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := yamlObject(t, data)
		if errs := schemaCheck(root, root, obj, ""); len(errs) != 0 {
			t.Errorf("%s: %v", f, errs)
		}
	}
	// What `get -o json` prints conforms as well.
	b, _ := json.Marshal(full())
	var obj any
	_ = json.Unmarshal(b, &obj)
	if errs := schemaCheck(root, root, obj, ""); len(errs) != 0 {
		t.Errorf("full cluster: %v", errs)
	}

	bad := map[string]string{
		"replicas -1":    doc("a", "replicas: -1"),
		"unknown field":  doc("a", "replica: 1"),
		"bad name":       doc("A_b"),
		"bad quantity":   strings.Replace(doc("a"), "mem: 64Mi", "mem: lots", 1),
		"bad strategy":   doc("a", "election: {strategy: raft}"),
		"bad operator":   doc("a", "placement: {constraints: [{attribute: rack, operator: unique}]}"),
		"reserved env":   doc("a", "task: {command: x, env: {CONVERGE_X: y}, resources: {cpus: 1, mem: 1Gi}}"),
		"missing mem":    strings.Replace(doc("a"), ", mem: 64Mi", "", 1),
		"wrong kind":     strings.Replace(doc("a"), "kind: Cluster", "kind: Pod", 1),
		"bad timeout":    doc("a", "election: {timeout: forever}"),
		"too many ports": doc("a", "task: {command: x, resources: {cpus: 1, mem: 1Gi, ports: 65}}"),
	}
	for name, in := range bad {
		if errs := schemaCheck(root, root, yamlObject(t, []byte(in)), ""); len(errs) == 0 {
			t.Errorf("%s: schema accepted it", name)
		}
	}
}

func yamlObject(t *testing.T, data []byte) any {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var obj any
	if err := json.Unmarshal(j, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func resolve(root, s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name := strings.TrimPrefix(ref, "#/$defs/")
		def := root["$defs"].(map[string]any)[name].(map[string]any)
		merged := map[string]any{}
		for k, v := range def {
			merged[k] = v
		}
		for k, v := range s {
			if k != "$ref" {
				merged[k] = v
			}
		}
		s = merged
	}
}

// schemaCheck is a small JSON Schema validator for the keywords the schema
// uses; enough to keep the schema and the examples honest.
func schemaCheck(root, s map[string]any, v any, path string) []string {
	s = resolve(root, s)
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if ty, ok := s["type"]; ok {
		types := []any{ty}
		if list, ok := ty.([]any); ok {
			types = list
		}
		if !slices.ContainsFunc(types, func(x any) bool { return jsonType(v, x.(string)) }) {
			fail("type %v, want %v", v, ty)
			return errs
		}
	}
	if c, ok := s["const"]; ok && c != v {
		fail("%v is not %v", v, c)
	}
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, v) {
		fail("%v not in %v", v, e)
	}
	if str, ok := v.(string); ok {
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
		if n, ok := s["minLength"].(float64); ok && float64(len(str)) < n {
			fail("shorter than %v", n)
		}
		if n, ok := s["maxLength"].(float64); ok && float64(len(str)) > n {
			fail("longer than %v", n)
		}
	}
	if num, ok := v.(float64); ok {
		if n, ok := s["minimum"].(float64); ok && num < n {
			fail("%v < %v", num, n)
		}
		if n, ok := s["maximum"].(float64); ok && num > n {
			fail("%v > %v", num, n)
		}
	}
	if not, ok := s["not"].(map[string]any); ok && len(schemaCheck(root, not, v, path)) == 0 {
		fail("matches a forbidden schema")
	}
	if one, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, o := range one {
			if len(schemaCheck(root, o.(map[string]any), v, path)) == 0 {
				n++
			}
		}
		if n != 1 {
			fail("matches %d of oneOf", n)
		}
	}
	if list, ok := v.([]any); ok {
		if items, ok := s["items"].(map[string]any); ok {
			for i, el := range list {
				errs = append(errs, schemaCheck(root, items, el, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		for _, r := range asList(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				fail("missing %s", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, val := range obj {
			if pn, ok := s["propertyNames"].(map[string]any); ok {
				errs = append(errs, schemaCheck(root, pn, k, path+"."+k+"(name)")...)
			}
			if ps, ok := props[k]; ok {
				errs = append(errs, schemaCheck(root, ps.(map[string]any), val, path+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("unknown property %s", k)
				}
			case map[string]any:
				errs = append(errs, schemaCheck(root, ap, val, path+"."+k)...)
			}
		}
	}
	return errs
}

func asList(v any) []any { l, _ := v.([]any); return l }

func jsonType(v any, ty string) bool {
	switch ty {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	}
	return false
}
