package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestScale: converge scale sets spec.replicas (kubectl scale); a
// --current-replicas that does not hold, a bad count or a missing cluster
// writes nothing.
func TestScale(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("s.yaml", manifest("orders", 2, ""))), 0, "created")
	gen := e.get("orders").Generation

	expect(t, e.run("", "scale", "cluster/orders", "--replicas", "5"), 0, "cluster/orders scaled")
	if c := e.get("orders"); *c.Spec.Replicas != 5 || c.Generation != gen+1 {
		t.Fatalf("replicas %d generation %d, want 5 and %d", *c.Spec.Replicas, c.Generation, gen+1)
	}
	rev := e.rev()
	expect(t, e.run("", "scale", "cluster/orders", "--replicas", "5"), 0, "cluster/orders scaled")
	expect(t, e.run("", "scale", "cluster/orders", "--replicas", "3", "--current-replicas", "2"), 1, "cluster/orders: expected replicas to be 2, was 5")
	expect(t, e.run("", "scale", "cluster/orders", "--replicas", "1001"), 1, "spec.replicas", "must be between 0 and 1000")
	expect(t, e.run("", "scale", "cluster/nothing", "--replicas", "1"), 1, "cluster/nothing not found in namespace default")
	expect(t, e.run("", "scale", "cluster/orders"), 2, "--replicas is required")
	expect(t, e.run("", "scale", "cluster/orders", "--replicas", "-1"), 2, "must be 0 or more")
	expect(t, e.run("", "scale", "--replicas", "1"), 2, "you must specify the type of resource")
	expect(t, e.run("", "scale", "pods/x", "--replicas", "1"), 2, `unknown resource type "pods"`)
	if got := e.rev(); got != rev {
		t.Fatalf("an unchanged or refused scale wrote (revision %d -> %d)", rev, got)
	}
	if c := e.get("orders"); *c.Spec.Replicas != 5 || c.Generation != gen+1 {
		t.Fatalf("after refused scales: replicas %d generation %d", *c.Spec.Replicas, c.Generation)
	}
	expect(t, e.run("", "scale", "cluster/orders", "--replicas", "0", "--current-replicas", "5"), 0, "scaled")
	if c := e.get("orders"); *c.Spec.Replicas != 0 {
		t.Fatalf("replicas %d, want 0", *c.Spec.Replicas)
	}
}

// TestGetJSONPathAndShowLabels: get -o jsonpath=TEMPLATE (client-go's
// jsonpath, as kubectl) over one named object or the list; --show-labels
// adds a LABELS column.
func TestGetJSONPathAndShowLabels(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("a.yaml", manifest("alpha", 2, ""))), 0, "created")
	expect(t, e.run("", "apply", "-f", e.file("b.yaml", strings.Replace(manifest("beta", 3, ""), "labels: {team: payments}", "labels: {tier: db, team: search}", 1))), 0, "created")

	r := e.run("", "get", "cluster/alpha", "-o", "jsonpath={.metadata.name}:{.spec.replicas}")
	expect(t, r, 0)
	if r.out != "alpha:2" {
		t.Fatalf("jsonpath of one object = %q, want %q", r.out, "alpha:2")
	}
	r = e.run("", "get", "clusters", `-o=jsonpath={range .items[*]}{.metadata.name} {.metadata.labels.team}{"\n"}{end}`)
	expect(t, r, 0)
	if r.out != "alpha payments\nbeta search\n" {
		t.Fatalf("jsonpath over the list = %q", r.out)
	}
	// A missing key prints nothing, as kubectl's default --allow-missing-template-keys.
	if r = e.run("", "get", "cluster/alpha", "-o", "jsonpath={.status.master.hostname}"); r.code != 0 || r.out != "" {
		t.Fatalf("missing key: %s", r)
	}
	expect(t, e.run("", "get", "clusters", "-o", "jsonpath={.items[*"), 2, "error parsing jsonpath")
	expect(t, e.run("", "get", "clusters", "-o", "jsonpath="), 2, "needs a template")

	r = e.run("", "get", "clusters", "--show-labels")
	expect(t, r, 0)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`AGE\s+LABELS$`).MatchString(lines[0]) ||
		!strings.HasSuffix(lines[1], " team=payments") || !strings.HasSuffix(lines[2], " team=search,tier=db") {
		t.Fatalf("--show-labels table:\n%s", r.out)
	}
	r = e.run("", "get", "clusters", "-o", "wide", "--show-labels", "--no-headers")
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); r.code != 0 || len(lines) != 2 || !strings.HasSuffix(lines[0], "team=payments") {
		t.Fatalf("wide --show-labels:\n%s", r)
	}
}

// TestLogs: converge logs reads a member's stdout and stderr from its
// sandbox through the agent's files API, under converge dev (its local
// Mesos serves /files/read on each agent), and -f follows what it writes.
func TestLogs(t *testing.T) {
	_, out, _, _, e := startDevProcess(t)
	m := regexp.MustCompile(`local Mesos\s+(http://\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no Mesos address in:\n%s", out)
	}
	mesosURL := m[1]
	cl := `apiVersion: converge.io/v1alpha1
kind: Cluster
metadata: {name: talker}
spec:
  replicas: 1
  task:
    command: 'echo "hello from $CONVERGE_ORDINAL"; echo "a warning" >&2; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'
    resources: {cpus: 0.1, mem: 32Mi}
  update: {minReadySeconds: 0}
`
	expect(t, e.run("", "apply", "-f", e.file("talker.yaml", cl)), 0, "created")
	expect(t, e.run("", "wait", "cluster/talker", "--for=condition=Ready", "--timeout", "60s"), 0)

	r := e.run("", "logs", "cluster/talker", "0", "--mesos-master", mesosURL)
	expect(t, r, 0)
	if !strings.HasPrefix(r.out, "hello from 0\ntick 1\n") {
		t.Fatalf("stdout of member 0 = %q", r.out)
	}
	r = e.run("", "logs", "cluster", "talker", "0", "--stderr", "--mesos-master", mesosURL)
	if r.code != 0 || !strings.Contains(r.out, "a warning\n") || strings.Contains(r.out, "tick") {
		t.Fatalf("stderr of member 0: %s", r)
	}
	expect(t, e.run("", "logs", "cluster/talker", "1", "--mesos-master", mesosURL), 1, "cluster/talker has no member with ordinal 1 (members: 0)")
	expect(t, e.run("", "logs", "cluster/talker", "x", "--mesos-master", mesosURL), 2, `ordinal "x"`)
	expect(t, e.run("", "logs", "cluster/talker", "0", "--mesos-master", "ftp://x"), 2, "want http://host:port")

	// -f: what is written after the start arrives, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	follow := &syncBuffer{}
	done := make(chan result, 1)
	go func() { done <- e.runCtx(ctx, "", follow, "logs", "talker", "0", "-f", "--mesos-master", mesosURL) }()
	before := strings.Count(r.out, "tick")
	waitUntil(t, 20*time.Second, "ticks written after the follow started", func() bool {
		return strings.Count(follow.String(), "tick") > before+5
	})
	cancel()
	if res := <-done; res.code != 0 {
		t.Fatalf("logs -f after interrupt: %s", res)
	}
	if got := follow.String(); !strings.HasPrefix(got, "hello from 0\ntick 1\n") || strings.Count(got, "hello") != 1 {
		t.Fatalf("followed output repeats or misses the start: %q", got[:min(len(got), 200)])
	}
}
