package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// doc returns a valid cluster document named name with extra spec lines
// (indented by two spaces) appended to spec.
func doc(name string, specExtra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\nspec:\n", name)
	b.WriteString("  task:\n    command: exec sleep 3600\n    resources: {cpus: 100m, mem: 64Mi}\n")
	for _, l := range specExtra {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		names []string
	}{
		{"single", doc("a"), []string{"default/a"}},
		{"leading separator and comments", "# clusters\n---\n" + doc("a") + "---\n# nothing here\n---\n\n---\n" + doc("b"), []string{"default/a", "default/b"}},
		{"document end marker", doc("a") + "...\n---\n" + doc("b") + "...\n", []string{"default/a", "default/b"}},
		{"separator with comment", doc("a") + "--- # next\n" + doc("b"), []string{"default/a", "default/b"}},
		{"crlf", strings.ReplaceAll(doc("a")+"---\n"+doc("b"), "\n", "\r\n"), []string{"default/a", "default/b"}},
		{"byte order mark", "\xef\xbb\xbf" + doc("a"), []string{"default/a"}},
		{"same name in two namespaces", doc("a") + "---\n" + strings.Replace(doc("a"), "  name: a\n", "  name: a\n  namespace: prod\n", 1), []string{"default/a", "prod/a"}},
		{"block scalar holding ---", doc("a", "election:", "  strategy: position", "  positionCommand: |", "    echo ---", "    echo 1"), []string{"default/a"}},
		{"json", `{"apiVersion":"converge.io/v1alpha1","kind":"Cluster","metadata":{"name":"a"},"spec":{"task":{"command":"x","resources":{"cpus":0.5,"mem":"1Gi"}}}}`, []string{"default/a"}},
		{"json stream", "{\n  \"apiVersion\": \"converge.io/v1alpha1\",\n  \"kind\": \"Cluster\",\n  \"metadata\": {\"name\": \"a\"},\n  \"spec\": {\"task\": {\"command\": \"x\", \"resources\": {\"cpus\": 1, \"mem\": \"1Gi\"}}}\n}\n" +
			`{"apiVersion":"converge.io/v1alpha1","kind":"Cluster","metadata":{"name":"b"},"spec":{"task":{"command":"x","resources":{"cpus":"1","mem":"1Gi"}}}}`, []string{"default/a", "default/b"}},
		{"yaml flow mapping", `{apiVersion: converge.io/v1alpha1, kind: Cluster, metadata: {name: a}, spec: {task: {command: x, resources: {cpus: 1, mem: 1Gi}}}}`, []string{"default/a"}},
		{"cluster list", "apiVersion: converge.io/v1alpha1\nkind: ClusterList\nmetadata: {resourceVersion: \"12\"}\nitems:\n" +
			"- " + strings.ReplaceAll(strings.TrimSuffix(doc("a"), "\n"), "\n", "\n  ") + "\n" +
			"- metadata: {name: b}\n  spec: {task: {command: x, resources: {cpus: 1, mem: 1Gi}}}\n", []string{"default/a", "default/b"}},
		{"empty cluster list and a cluster", "apiVersion: converge.io/v1alpha1\nkind: ClusterList\nitems: []\n---\n" + doc("a"), []string{"default/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := Decode([]byte(tt.in), "in.yaml")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var got []string
			for _, c := range cs {
				got = append(got, c.Key())
				// Defaulted and valid.
				if c.APIVersion != APIVersion || c.Kind != Kind || c.Spec.Replicas == nil || c.Spec.Role != "*" || c.Spec.Election.Timeout == nil {
					t.Errorf("%s not defaulted: %+v", c.Key(), c)
				}
				if errs := Validate(c); len(errs) != 0 {
					t.Errorf("%s invalid: %v", c.Key(), errs)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.names, ",") {
				t.Errorf("decoded %v, want %v", got, tt.names)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	in := `apiVersion: converge.io/v1alpha1
kind: Cluster
metadata:
  name: orders-db
  labels: {team: payments}
spec:
  replicas: 3
  role: "*"
  task:
    command: "exec mysqld --port=$PORT0"
    env: {MYSQL_DATABASE: orders}
    uris: [{value: "http://artifacts/mysql.tgz", extract: true}]
    resources: {cpus: 500m, mem: 512Mi, disk: 1Gi, ports: 1}
    executor:
      command: "./converge executor"
      uris: [{value: "http://artifacts/converge", executable: true}]
  placement:
    spread: hostname
    constraints: [{attribute: rack, operator: GROUP_BY}]
  election:
    strategy: position
    timeout: 90s
    positionCommand: "mysql -Ne 'select @@gtid_executed'"
    promoteCommand: "/opt/bin/promote.sh"
  update:
    maxUnavailable: 2
status:
  observedGeneration: 4
  replicas: 3
  readyReplicas: 3
  master: {taskId: t1, hostname: 127.0.0.2, port: 31002, epoch: 7}
  conditions:
  - {type: Ready, status: "True", reason: Converged, message: ok, lastTransitionTime: "2024-01-02T15:04:05Z", observedGeneration: 4}
`
	cs, err := Decode([]byte(in), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	s := c.Spec
	checks := []struct {
		what string
		ok   bool
	}{
		{"labels", c.Labels["team"] == "payments"},
		{"replicas", *s.Replicas == 3},
		{"command", s.Task.Command == "exec mysqld --port=$PORT0"},
		{"env", s.Task.Env["MYSQL_DATABASE"] == "orders"},
		{"uris", len(s.Task.URIs) == 1 && s.Task.URIs[0].Extract},
		{"cpus", s.Task.Resources.CPUs.MilliValue() == 500},
		{"mem", s.Task.Resources.Mem.Value() == 512<<20},
		{"disk", s.Task.Resources.Disk.Value() == 1<<30},
		{"ports", s.Task.Resources.Ports == 1},
		{"executor", s.Task.Executor != nil && s.Task.Executor.URIs[0].Executable},
		{"spread", s.Placement.Spread == SpreadHostname},
		{"constraints", s.Placement.Constraints[0] == Constraint{Attribute: "rack", Operator: OpGroupBy}},
		{"strategy", s.Election.Strategy == ElectionPosition},
		{"timeout", s.Election.Timeout.Duration.Seconds() == 90},
		{"promote", s.Election.PromoteCommand == "/opt/bin/promote.sh"},
		{"maxUnavailable", *s.Update.MaxUnavailable == 2},
		{"status kept", c.Status.Master != nil && c.Status.Master.Epoch == 7 && c.Status.ObservedGeneration == 4},
		{"ready", FindCondition(c.Status.Conditions, ConditionReady).Status == metav1.ConditionTrue},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not decoded: %+v", ch.what, c)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	big := strings.Repeat("x", MaxDocumentBytes)
	tests := []struct {
		name string
		in   string
		// want lists the error's lines, each as substrings joined by " && ".
		want []string
	}{
		{"unknown field", doc("foo", "replica: 3"),
			[]string{`orders.yaml: document 1 (cluster/foo): unknown field "spec.replica" (did you mean "replicas"?)`}},
		{"unknown field wrong case", doc("foo", "Replicas: 3"),
			[]string{`orders.yaml: document 1 (cluster/foo): unknown field "spec.Replicas" (did you mean "replicas"?)`}},
		{"unknown nested field", doc("foo", "placement: {constraints: [{atribute: rack, operator: UNIQUE}]}"),
			[]string{`unknown field "spec.placement.constraints[0].atribute" (did you mean "attribute"?)`, `spec.placement.constraints[0].attribute: Required value`}},
		{"unknown metadata field", strings.Replace(doc("foo"), "  name: foo\n", "  name: foo\n  nmae: x\n", 1),
			[]string{`document 1 (cluster/foo): unknown field "metadata.nmae" (did you mean "name"?)`}},
		{"unknown top-level field", doc("foo") + "extra: 1\n",
			[]string{`document 1 (cluster/foo): unknown field "extra"`}},
		{"duplicate yaml key", doc("foo", "replicas: 1", "replicas: 2"),
			[]string{`orders.yaml: document 1: yaml: unmarshal errors: line 10: key "replicas" already set in map`}},
		{"duplicate json key", `{"apiVersion":"converge.io/v1alpha1","kind":"Cluster","metadata":{"name":"a"},"spec":{"replicas":1,"replicas":2,"task":{"command":"x","resources":{"cpus":1,"mem":"1Gi"}}}}`,
			[]string{`orders.yaml: document 1: duplicate field "spec.replicas"`}},
		{"bad quantity", "---\n" + doc("ok") + "---\n" + strings.Replace(doc("foo"), "mem: 64Mi", "mem: lots", 1),
			[]string{`orders.yaml: document 2 (cluster/foo): spec.task.resources.mem: Invalid value: "lots": quantities must match the regular expression`}},
		{"bad quantity and more", strings.Replace(doc("foo", "replicas: -1"), "cpus: 100m", "cpus: [1]", 1),
			[]string{`spec.task.resources.cpus: Invalid value: "a list": quantities must match`, `spec.replicas: Invalid value: -1: must be between 0 and 1000`}},
		{"replicas -1", doc("foo", "replicas: -1"),
			[]string{`orders.yaml: document 1 (cluster/foo): spec.replicas: Invalid value: -1: must be between 0 and 1000`}},
		{"replicas as text", doc("foo", "replicas: three"),
			[]string{`document 1 (cluster/foo): spec.replicas: Invalid value: expected an integer (32-bit), got a string`}},
		{"replicas overflow", doc("foo", "replicas: 99999999999"),
			[]string{`spec.replicas: Invalid value: expected an integer (32-bit), got number 99999999999`}},
		{"env value number", "apiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata: {name: foo}\nspec: {task: {command: x, env: {PORT: 8080}, resources: {cpus: 1, mem: 1Gi}}}\n",
			[]string{`document 1 (cluster/foo): spec.task.env: Invalid value: expected a string, got a number`}},
		{"unknown check field", strings.Replace(doc("foo"), "mem: 64Mi}\n", "mem: 64Mi, ports: 1}\n    healthCheck: {http: {portIndx: 0}}\n", 1),
			[]string{`unknown field "spec.task.healthCheck.http.portIndx" (did you mean "portIndex"?)`}},
		{"bad check interval", strings.Replace(doc("foo"), "mem: 64Mi}\n", "mem: 64Mi}\n    readinessCheck: {command: x, interval: often}\n", 1),
			[]string{`spec.task.readinessCheck.interval: Invalid value: "often": must be a duration`}},
		{"bad timeout", doc("foo", "election: {strategy: ordinal, timeout: forever}"),
			[]string{`spec.election.timeout: Invalid value: "forever": must be a duration such as "30s", "5m" or "1h"`}},
		{"timeout as number", doc("foo", "election: {timeout: 60}"),
			[]string{`spec.election.timeout: Invalid value: 60: must be a duration`}},
		{"timeout out of range", doc("foo", "election: {timeout: 2h}"),
			[]string{`spec.election.timeout: Invalid value: "2h0m0s": must be between 1s and 1h`}},
		{"bad creationTimestamp", strings.Replace(doc("foo"), "  name: foo\n", "  name: foo\n  creationTimestamp: yesterday\n", 1),
			[]string{`metadata.creationTimestamp: Invalid value: "yesterday": must be an RFC 3339 time`}},
		{"bad name", doc("Foo_Bar"),
			[]string{`document 1 (cluster/Foo_Bar): metadata.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 label`}},
		{"no name", strings.Replace(doc("x"), "  name: x\n", "", 1),
			[]string{`orders.yaml: document 1: metadata.name: Required value`}},
		{"missing apiVersion", strings.Replace(doc("foo"), "apiVersion: converge.io/v1alpha1\n", "", 1),
			[]string{`orders.yaml: document 1 (cluster/foo): apiVersion: Required value: must be "converge.io/v1alpha1"`}},
		{"wrong apiVersion", strings.Replace(doc("foo"), "converge.io/v1alpha1", "converge.io/v2", 1),
			[]string{`apiVersion: Unsupported value: "converge.io/v2": supported values: "converge.io/v1alpha1"`}},
		{"kind not a string", strings.Replace(doc("foo"), "kind: Cluster", "kind: 7", 1),
			[]string{`document 1 (cluster/foo): kind: Unsupported value: 7: supported values: "Cluster"`}},
		{"name with a newline", "apiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata: {name: \"a\\nb\"}\nspec: {task: {command: x, resources: {cpus: 1, mem: 1Gi}}}\n",
			[]string{`document 1 (cluster/"a\nb"): metadata.name: Invalid value: "a\nb"`}},
		{"wrong kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: []}\n",
			[]string{`document 1 (cluster/web): apiVersion: Unsupported value: "v1"`, `kind: Unsupported value: "Pod": supported values: "Cluster"`}},
		{"malformed yaml", doc("ok") + "---\napiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata: {name: [\n",
			[]string{`orders.yaml: document 2: yaml: line 12: did not find expected node content`}},
		{"bad indentation", "apiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: foo\n spec: {}\n",
			[]string{`orders.yaml: document 1: yaml: line 4: did not find expected key`}},
		{"content after flow mapping", "{apiVersion: converge.io/v1alpha1}\nkind: Cluster\n",
			[]string{`orders.yaml: document 1: yaml: content after the top-level value that ends on line 1`}},
		{"malformed json", "{\"apiVersion\": \"converge.io/v1alpha1\",\n \"kind\": }\n",
			[]string{`orders.json: document 1: json: line 2: invalid character '}' looking for beginning of value`}},
		{"truncated json", "{\"apiVersion\": \"converge.io/v1alpha1\",\n \"kind\": \"Cluster\"\n",
			[]string{`orders.json: document 1: json: line 3: unexpected end of input`}},
		{"json stream with a bad value", `{"apiVersion":"converge.io/v1alpha1","kind":"Cluster","metadata":{"name":"a"},"spec":{"task":{"command":"x","resources":{"cpus":1,"mem":"1Gi"}}}}` + "\n{\"a\": nope}\n",
			[]string{`orders.json: document 2: json: line 2: invalid character 'o' in literal null (expecting 'u')`}},
		{"yaml that looks like json", "{\"apiVersion\": \"converge.io/v1alpha1\",\n \"kind\": }\n",
			[]string{`orders.yaml: document 1: kind: Required value`}},
		{"scalar document", "hello\n",
			[]string{`orders.yaml: document 1: expected a Cluster object (a mapping), got a string`}},
		{"list document", "- a\n- b\n",
			[]string{`orders.yaml: document 1: expected a Cluster object (a mapping), got a list`}},
		{"oversize document", doc("ok") + "---\n" + doc("foo", "election: {strategy: ordinal, promoteCommand: "+big+"}"),
			[]string{`orders.yaml: document 2 (cluster/foo): document is 10 && bytes, over the 1048576 byte (1 MiB) limit`}},
		{"duplicate object", doc("foo") + "---\n" + doc("bar") + "---\n" + doc("foo", "replicas: 2"),
			[]string{`orders.yaml: document 3 (cluster/foo): metadata.name: Duplicate value: "foo": namespace "default" already has it in document 1`}},
		{"bad list item", "apiVersion: converge.io/v1alpha1\nkind: ClusterList\nitems:\n- metadata: {name: a}\n  spec: {replicas: -1, task: {command: x, resources: {cpus: 1, mem: 1Gi}}}\n- 7\n",
			[]string{`orders.yaml: document 1 item 1 (cluster/a): spec.replicas: Invalid value: -1`, `orders.yaml: document 1 item 2: expected a Cluster object (a mapping), got a number`}},
		{"list with unknown field", "apiVersion: converge.io/v1alpha1\nkind: ClusterList\nitem: []\nmetadata: {continu: x}\n",
			[]string{`document 1: unknown field "item" (did you mean "items"?)`, `document 1: unknown field "metadata.continu" (did you mean "continue"?)`}},
		{"list of other version", "apiVersion: v1\nkind: ClusterList\nitems: []\n",
			[]string{`document 1: apiVersion: Unsupported value: "v1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source := "orders.yaml"
			if strings.Contains(tt.want[0], "orders.json") {
				source = "orders.json"
			}
			cs, err := Decode([]byte(tt.in), source)
			if err == nil {
				t.Fatalf("Decode succeeded with %d clusters, want an error", len(cs))
			}
			if cs != nil {
				t.Errorf("Decode returned %d clusters with an error; want none (all or nothing)", len(cs))
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError: %v", err, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				for _, part := range strings.Split(w, " && ") {
					if !strings.Contains(lines[i], part) {
						t.Errorf("problem %d:\n  %s\ndoes not contain\n  %s", i+1, lines[i], part)
					}
				}
				if !strings.HasPrefix(lines[i], source+": document ") {
					t.Errorf("problem %d does not name source and document: %s", i+1, lines[i])
				}
			}
		})
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, in := range []string{"", "   \n\n", "# only a comment\n", "---\n---\n", "---\n# c\n...\n", "null\n", "~\n"} {
		cs, err := Decode([]byte(in), "empty.yaml")
		if !errors.Is(err, ErrNoObjects) {
			t.Errorf("Decode(%q) = %d, %v; want ErrNoObjects", in, len(cs), err)
			continue
		}
		if err.Error() != "empty.yaml: no objects found" {
			t.Errorf("Decode(%q) error %q", in, err)
		}
	}
	if _, err := Decode(nil, ""); err == nil || !strings.HasPrefix(err.Error(), "<input>: ") {
		t.Errorf("unnamed source: %v", err)
	}
}

func TestDecodeReportsEveryDocument(t *testing.T) {
	in := doc("a", "replicas: -1") + "---\n" + doc("b") + "---\n" + doc("c", "bogus: 1") + "---\nx: [\n"
	_, err := Decode([]byte(in), "f.yaml")
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("want *DecodeError, got %v", err)
	}
	var got []string
	for _, p := range de.Problems {
		got = append(got, fmt.Sprintf("%d:%s", p.Document, p.Object))
	}
	want := "1:cluster/a,3:cluster/c,4:"
	if strings.Join(got, ",") != want {
		t.Errorf("problems at %v, want %s\n%v", got, want, err)
	}
}

// TestDecodeRoundTrip: what `get -o yaml|json` prints (a Cluster or a
// ClusterList, with status and server-set metadata) decodes back unchanged.
func TestDecodeRoundTrip(t *testing.T) {
	c := valid()
	c.UID = "0b4bd3a5-1111-2222-3333-444455556666"
	c.ResourceVersion = "42"
	c.Generation = 3
	c.CreationTimestamp = metav1.Date(2024, 1, 2, 3, 4, 5, 0, metav1.Now().Location())
	c.Finalizers = []string{Finalizer}
	c.Status = ClusterStatus{
		ObservedGeneration: 3, Replicas: 3, ReadyReplicas: 2,
		Master: &MasterStatus{TaskID: "t0", Ordinal: 0, Hostname: "127.0.0.1", Port: 31000, Epoch: 2},
		Tasks:  []TaskStatus{{ID: "t0", Ordinal: 0, State: "TASK_RUNNING", Ports: []int32{31000}}},
	}
	SetCondition(&c.Status.Conditions, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "Waiting", ObservedGeneration: 3})
	list := &ClusterList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: ListKind}, Items: []Cluster{*c}}
	list.Items[0].Name = "other"

	for _, tc := range []struct {
		name string
		obj  any
		want []*Cluster
	}{
		{"cluster", c, []*Cluster{c}},
		{"list", list, []*Cluster{&list.Items[0]}},
	} {
		j, err := json.Marshal(tc.obj)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(tc.obj)
		if err != nil {
			t.Fatal(err)
		}
		for format, data := range map[string][]byte{"json": j, "yaml": y} {
			got, err := Decode(data, tc.name+"."+format)
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", tc.name, format, err, data)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%s %s: %d clusters", tc.name, format, len(got))
			}
			for i := range got {
				a, _ := json.Marshal(got[i])
				b, _ := json.Marshal(tc.want[i])
				if string(a) != string(b) {
					t.Errorf("%s %s: round trip changed the object:\n got %s\nwant %s", tc.name, format, a, b)
				}
			}
		}
	}
}

func TestDecodeErrorIsBounded(t *testing.T) {
	in := strings.Repeat("---\nkind: Cluster\n", 150)
	_, err := Decode([]byte(in), "many.yaml")
	var de *DecodeError
	if !errors.As(err, &de) || len(de.Problems) != 150 {
		t.Fatalf("want 150 problems, got %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 101 || lines[100] != "many.yaml: and 50 more problems" {
		t.Errorf("message has %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}
