package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/kubeapi"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

// env is one embedded etcd and a key prefix of this test's own.
type env struct {
	t        *testing.T
	endpoint string
	prefix   string
	st       *store.Store
	srv      *etcdtest.Server
	dir      string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := etcdtest.Start(t)
	prefix := "/t-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return &env{
		t:        t,
		endpoint: srv.Endpoints()[0],
		prefix:   prefix,
		st:       store.NewFromClient(srv.Client(), prefix),
		srv:      srv,
		dir:      t.TempDir(),
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code     int
	out, err string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
}

// run runs one converge command line in-process against the test's etcd.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	return e.runCtx(context.Background(), stdin, nil, args...)
}

func (e *env) runCtx(ctx context.Context, stdin string, out *syncBuffer, args ...string) result {
	if out == nil {
		out = &syncBuffer{}
	}
	var errOut syncBuffer
	full := append([]string{"--etcd-endpoints", e.endpoint, "--prefix", e.prefix}, args...)
	code := run(ctx, full, streams{in: strings.NewReader(stdin), out: out, errOut: &errOut})
	return result{code: code, out: out.String(), err: errOut.String()}
}

func (e *env) file(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// rev is etcd's current revision: unchanged means nothing was written.
func (e *env) rev() int64 {
	e.t.Helper()
	resp, err := e.srv.Client().Get(context.Background(), "rev-probe")
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Header.Revision
}

func (e *env) get(name string) *v1alpha1.Cluster {
	e.t.Helper()
	c, err := e.st.Get(context.Background(), "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) count() int {
	e.t.Helper()
	items, _, err := e.st.List(context.Background(), "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(items)
}

func expect(t *testing.T, r result, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
	for _, s := range contains {
		if !strings.Contains(r.out+r.err, s) {
			t.Fatalf("output lacks %q:\n%s", s, r)
		}
	}
}

func manifest(name string, replicas int, extra string) string {
	return fmt.Sprintf(`apiVersion: converge.io/v1alpha1
kind: Cluster
metadata:
  name: %s
  labels: {team: payments}
spec:
  replicas: %d
  task:
    command: "sleep 1000"
    env: {DB_PASSWORD: hunter2, MODE: fast}
    resources: {cpus: 0.1, mem: 64Mi, ports: 1}
%s`, name, replicas, extra)
}

// TestApplyVolumesCannotChange: applying a changed task.volumes to an
// existing cluster fails naming the file, the field path and why, and writes
// nothing; the same volumes (the size written otherwise) with other changes
// apply.
func TestApplyVolumesCannotChange(t *testing.T) {
	e := newEnv(t)
	vol := func(size string) string {
		return "    volumes: [{name: data, containerPath: data, size: " + size + "}]\n  role: converge\n"
	}
	f := e.file("vol.yaml", manifest("vol", 1, vol("1Gi")))
	expect(t, e.run("", "apply", "-f", f), 0, "cluster/vol created")
	f = e.file("vol.yaml", manifest("vol", 3, vol("2Gi")))
	expect(t, e.run("", "apply", "-f", f), 1, "vol.yaml", "spec.task.volumes: Forbidden: volumes cannot change", "nothing written")
	if c := e.get("vol"); c.Generation != 1 || *c.Spec.Replicas != 1 {
		t.Fatalf("generation %d, replicas %d after a refused apply: want 1, 1", c.Generation, *c.Spec.Replicas)
	}
	f = e.file("vol.yaml", manifest("vol", 3, vol("1024Mi")))
	expect(t, e.run("", "apply", "-f", f), 0, "cluster/vol configured")
}

func TestApplyCreatedUnchangedConfigured(t *testing.T) {
	e := newEnv(t)
	f := e.file("orders.yaml", manifest("orders-db", 3, ""))

	expect(t, e.run("", "apply", "-f", f), 0, "cluster/orders-db created")
	if g := e.get("orders-db").Generation; g != 1 {
		t.Fatalf("generation %d, want 1", g)
	}

	before := e.rev()
	r := e.run("", "apply", "-f", f)
	expect(t, r, 0, "cluster/orders-db unchanged")
	if after := e.rev(); after != before {
		t.Fatalf("an unchanged apply wrote to etcd (revision %d -> %d)", before, after)
	}

	// A status write by the controller is not a change of the user's spec.
	c := e.get("orders-db")
	c.Status.ReadyReplicas = 3
	if _, err := e.st.UpdateStatus(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	expect(t, e.run("", "apply", "-f", f), 0, "cluster/orders-db unchanged")

	// Dry run of a change: says configured, writes nothing.
	f2 := e.file("orders.yaml", manifest("orders-db", 5, ""))
	before = e.rev()
	expect(t, e.run("", "apply", "-f", f2, "--dry-run=server"), 0, "cluster/orders-db configured (server dry run)")
	if after := e.rev(); after != before {
		t.Fatalf("dry run wrote to etcd (revision %d -> %d)", before, after)
	}
	expect(t, e.run("", "apply", "-f", e.file("new.yaml", manifest("new-one", 1, "")), "--dry-run"), 0, "cluster/new-one created (server dry run)")
	if _, err := e.st.Get(context.Background(), "default", "new-one"); !store.IsNotFound(err) {
		t.Fatalf("dry run created the cluster: %v", err)
	}

	// The change itself: configured, generation 2 exactly.
	expect(t, e.run("", "apply", "-f", f2), 0, "cluster/orders-db configured")
	c = e.get("orders-db")
	if c.Generation != 2 || *c.Spec.Replicas != 5 {
		t.Fatalf("generation %d replicas %d, want 2 and 5", c.Generation, *c.Spec.Replicas)
	}
	if c.Status.ReadyReplicas != 3 {
		t.Fatalf("apply lost the status: %+v", c.Status)
	}

	// A label change configures without a new generation.
	f3 := e.file("orders.yaml", strings.Replace(manifest("orders-db", 5, ""), "team: payments", "team: orders", 1))
	expect(t, e.run("", "apply", "-f", f3), 0, "cluster/orders-db configured")
	if c = e.get("orders-db"); c.Generation != 2 || c.Labels["team"] != "orders" {
		t.Fatalf("generation %d labels %v", c.Generation, c.Labels)
	}
}

func TestGetOutputAppliesBackUnchanged(t *testing.T) {
	e := newEnv(t)
	f := e.file("all.yaml", manifest("alpha", 1, "")+"---\n"+manifest("beta", 2, `  election: {strategy: ordinal}
`))
	expect(t, e.run("", "apply", "-f", f), 0, "cluster/alpha created", "cluster/beta created")

	// Give one a status, as the controller would.
	c := e.get("beta")
	c.Status.ReadyReplicas = 2
	c.Status.Master = &v1alpha1.MasterStatus{TaskID: "default.beta.0.abcd", Hostname: "127.0.0.2", Port: 31002, Epoch: 7}
	c.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Converged", ObservedGeneration: 1, LastTransitionTime: metav1.Now()}}
	if _, err := e.st.UpdateStatus(context.Background(), c); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{
		{"get", "clusters", "-o", "yaml"},
		{"get", "clusters", "-o", "json"},
		{"get", "cluster", "beta", "-o", "yaml"},
		{"get", "cl/beta", "-o", "json"},
	} {
		before := e.rev()
		r := e.run("", args...)
		expect(t, r, 0)
		back := e.run(r.out, "apply", "-f", "-")
		expect(t, back, 0, "cluster/beta unchanged")
		if strings.Contains(back.out, "configured") || strings.Contains(back.out, "created") {
			t.Fatalf("%v applied back with changes:\n%s", args, back)
		}
		if after := e.rev(); after != before {
			t.Fatalf("%v applied back wrote to etcd", args)
		}
	}

	// A list prints as a ClusterList, a single object as itself.
	r := e.run("", "get", "clusters", "-o", "json")
	var list map[string]any
	if err := json.Unmarshal([]byte(r.out), &list); err != nil {
		t.Fatal(err)
	}
	if list["kind"] != "ClusterList" || list["apiVersion"] != "converge.io/v1alpha1" || len(list["items"].([]any)) != 2 {
		t.Fatalf("list output: %s", r.out)
	}
	r = e.run("", "get", "cluster", "beta", "-o", "yaml")
	var one v1alpha1.Cluster
	if err := yaml.Unmarshal([]byte(r.out), &one); err != nil || one.Kind != "Cluster" || one.Name != "beta" {
		t.Fatalf("single output (%v): %s", err, r.out)
	}

	// The table.
	r = e.run("", "get", "clusters")
	expect(t, r, 0, "NAME", "REPLICAS", "MASTER", "EPOCH", "READY", "AGE", "2/2", "127.0.0.2:31002", "True")
	r = e.run("", "get", "clusters", "-o", "wide", "-A")
	expect(t, r, 0, "NAMESPACE", "GENERATION", "OBSERVED", "STRATEGY", "UPDATED", "ordinal")
	r = e.run("", "get", "clusters", "-l", "team=nobody")
	expect(t, r, 0, "No clusters found")
	r = e.run("", "get", "cluster", "nope")
	expect(t, r, 1, "error: cluster/nope not found")
}

func TestGetWatchStreamsChanges(t *testing.T) {
	e := newEnv(t)
	f := e.file("w.yaml", manifest("watched", 1, ""))
	expect(t, e.run("", "apply", "-f", f), 0, "created")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan result, 1)
	go func() { done <- e.runCtx(ctx, "", out, "get", "clusters", "-w") }()
	waitFor(t, func() bool { return strings.Contains(out.String(), "watched") })
	expect(t, e.run("", "apply", "-f", e.file("w.yaml", manifest("watched", 4, ""))), 0, "configured")
	waitFor(t, func() bool { return strings.Contains(out.String(), "0/4") })
	cancel()
	select {
	case r := <-done:
		expect(t, r, 0)
	case <-time.After(10 * time.Second):
		t.Fatal("get -w did not stop when interrupted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	e := newEnv(t)
	bad := manifest("good-one", 1, "") + "---\n" + manifest("bad-one", 1, "") + "---\n" + manifest("good-two", 1, "")
	bad = strings.Replace(bad, "name: bad-one\n  labels: {team: payments}\nspec:\n  replicas: 1\n  task:\n    command: \"sleep 1000\"\n    env: {DB_PASSWORD: hunter2, MODE: fast}\n    resources: {cpus: 0.1, mem: 64Mi",
		"name: bad-one\n  labels: {team: payments}\nspec:\n  replicas: 1\n  task:\n    command: \"sleep 1000\"\n    env: {DB_PASSWORD: hunter2, MODE: fast}\n    resources: {cpus: 0.1, mem: lots", 1)
	f := e.file("multi.yaml", bad)
	r := e.run("", "apply", "-f", f)
	expect(t, r, 1, "multi.yaml: document 2 (cluster/bad-one): spec.task.resources.mem")
	if n := e.count(); n != 0 {
		t.Fatalf("%d clusters written from a bad multi-document file", n)
	}

	// Across files of a directory too.
	dir := filepath.Join(e.dir, "dir")
	e.file("dir/a.yaml", manifest("from-a", 1, ""))
	e.file("dir/b.yml", strings.Replace(manifest("from-b", 1, ""), "replicas: 1", "replicas: -1", 1))
	e.file("dir/notes.txt", "not a manifest")
	r = e.run("", "apply", "-f", dir)
	expect(t, r, 1, "b.yml: document 1 (cluster/from-b): spec.replicas")
	if n := e.count(); n != 0 {
		t.Fatalf("%d clusters written from a directory with a bad file", n)
	}
	e.file("dir/b.yml", manifest("from-b", 1, ""))
	expect(t, e.run("", "apply", "-f", dir), 0, "cluster/from-a created", "cluster/from-b created")
}

func TestBadInputFailsCleanly(t *testing.T) {
	e := newEnv(t)
	good := manifest("fine", 1, "")
	cases := []struct {
		name, content string
		want          []string
	}{
		{"malformed.yaml", "apiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata: {name: x\n", []string{"malformed.yaml", "yaml"}},
		{"unknown.yaml", strings.Replace(good, "  replicas: 1", "  replicas: 1\n  replcas: 2", 1), []string{"unknown.yaml", "spec.replcas", "unknown field"}},
		{"badname.yaml", strings.Replace(good, "name: fine", "name: Bad_Name", 1), []string{"badname.yaml", "metadata.name"}},
		{"mem.yaml", strings.Replace(good, "mem: 64Mi", "mem: lots", 1), []string{"mem.yaml", "spec.task.resources.mem", "lots"}},
		{"replicas.yaml", strings.Replace(good, "replicas: 1", "replicas: -1", 1), []string{"replicas.yaml", "spec.replicas"}},
		{"empty.yaml", "# nothing here\n", []string{"empty.yaml", "no objects"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := e.file(tc.name, tc.content)
			before := e.rev()
			r := e.run("", "apply", "-f", f)
			expect(t, r, 1, tc.want...)
			if !strings.HasPrefix(r.err, "error: ") {
				t.Fatalf("stderr does not start with a clear error line:\n%s", r)
			}
			if after := e.rev(); after != before {
				t.Fatal("bad input wrote to etcd")
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		wd, _ := os.Getwd()
		t.Chdir(e.dir)
		defer t.Chdir(wd)
		r := e.run("", "apply", "-f", "missing.yaml")
		expect(t, r, 1)
		if r.err != "error: open missing.yaml: no such file or directory\n" {
			t.Fatalf("stderr: %q", r.err)
		}
	})
	if n := e.count(); n != 0 {
		t.Fatalf("%d clusters written from bad input", n)
	}
}

// TestEtcdNotRunning: when nothing listens where etcd should be, every
// command says so in the same sentence, naming the refused connection (not a
// timeout: gRPC would retry until its deadline, a TCP dial knows at once).
func TestEtcdNotRunning(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	f := filepath.Join(t.TempDir(), "ok.yaml")
	if err := os.WriteFile(f, []byte(manifest("fine", 1, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "error: cannot reach etcd at " + addr + ": connection refused (is converge dev running?)\n"
	for _, args := range [][]string{
		{"apply", "-f", f},
		{"get", "clusters"},
		{"get", "clusters", "-w"},
		{"describe", "cluster", "fine"},
		{"delete", "cluster", "fine"},
		{"diff", "-f", f},
		{"endpoints", "cluster/fine", "-w"},
		{"wait", "cluster/fine", "--for=condition=Ready"},
		// Its --timeout is shorter than the connect timeout: it used to end
		// with a bare "context deadline exceeded".
		{"wait", "cluster/fine", "--for=delete", "--timeout", "2s"},
	} {
		start := time.Now()
		var out, errOut syncBuffer
		code := run(context.Background(), append([]string{"--etcd-endpoints", addr}, args...), streams{in: strings.NewReader(""), out: &out, errOut: &errOut})
		took := time.Since(start)
		wantCode := 1
		if args[0] == "diff" {
			wantCode = 2 // diff's error code, as kubectl's
		}
		if code != wantCode {
			t.Fatalf("%v: exit %d, stderr %s", args, code, errOut.String())
		}
		if errOut.String() != want {
			t.Fatalf("%v: stderr %q, want %q", args, errOut.String(), want)
		}
		// A bound that cannot flake (the connect timeout is 5 s); the
		// behaviour is the sentence above.
		if took > 4*time.Second {
			t.Fatalf("%v: took %v to give up", args, took)
		}
	}
}

func TestPrune(t *testing.T) {
	e := newEnv(t)
	both := e.file("both.yaml", manifest("keep", 1, "")+"---\n"+manifest("drop", 1, ""))
	other := e.file("other.yaml", strings.Replace(manifest("unrelated", 1, ""), "team: payments", "team: search", 1))
	expect(t, e.run("", "apply", "-f", both, "-f", other), 0, "cluster/keep created", "cluster/drop created", "cluster/unrelated created")

	one := e.file("one.yaml", manifest("keep", 1, ""))
	expect(t, e.run("", "apply", "-f", one, "--prune", "-l", "team=payments", "--dry-run=server"), 0, "cluster/drop pruned (server dry run)")
	if e.count() != 3 {
		t.Fatal("dry-run prune deleted something")
	}
	r := e.run("", "apply", "-f", one, "--prune", "-l", "team=payments")
	expect(t, r, 0, "cluster/keep unchanged", "cluster/drop pruned")
	if strings.Contains(r.out, "unrelated") {
		t.Fatalf("pruned outside the selector:\n%s", r)
	}
	if _, err := e.st.Get(context.Background(), "default", "drop"); !store.IsNotFound(err) {
		t.Fatalf("drop not pruned: %v", err)
	}
	e.get("unrelated")
	expect(t, e.run("", "apply", "-f", one, "--prune"), 2, "--prune needs a label selector")
}

func TestDiffExitCodes(t *testing.T) {
	e := newEnv(t)
	f := e.file("d.yaml", manifest("diffed", 1, ""))
	r := e.run("", "diff", "-f", f)
	expect(t, r, 1, "+++ ", "+  name: diffed")
	expect(t, e.run("", "apply", "-f", f), 0, "created")
	r = e.run("", "diff", "-f", f)
	expect(t, r, 0)
	if r.out != "" {
		t.Fatalf("diff printed something for equal objects:\n%s", r)
	}
	f = e.file("d.yaml", manifest("diffed", 3, ""))
	r = e.run("", "diff", "-f", f)
	expect(t, r, 1, "--- cluster/default/diffed (live)", "+++ cluster/default/diffed (", "-  replicas: 1", "+  replicas: 3")
	expect(t, e.run("", "apply", "-f", f), 0, "configured")
	expect(t, e.run("", "diff", "-f", f), 0)
	expect(t, e.run("", "diff", "-f", e.file("bad.yaml", "kind: Nope\n")), 2, "bad.yaml")
	expect(t, e.run("", "diff", "-f", filepath.Join(e.dir, "missing.yaml")), 2, "no such file")
}

// setCondition writes a condition as the controller would.
func (e *env) setCondition(name, typ string, status metav1.ConditionStatus, observed int64) {
	e.t.Helper()
	c := e.get(name)
	c.Status.ObservedGeneration = observed
	v1alpha1.SetCondition(&c.Status.Conditions, metav1.Condition{Type: typ, Status: status, Reason: "Test", ObservedGeneration: observed})
	if _, err := e.st.UpdateStatus(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

func TestWaitForReadyHonoursObservedGeneration(t *testing.T) {
	e := newEnv(t)
	f := e.file("w.yaml", manifest("waited", 1, ""))
	expect(t, e.run("", "apply", "-f", f), 0, "created")
	expect(t, e.run("", "apply", "-f", e.file("w.yaml", manifest("waited", 2, ""))), 0, "configured") // generation 2

	// Ready about generation 1 does not count for generation 2.
	e.setCondition("waited", "Ready", metav1.ConditionTrue, 1)
	r := e.run("", "wait", "cluster/waited", "--for=condition=Ready", "--timeout", "1s")
	expect(t, r, 1, "timed out waiting for condition=Ready=True on cluster/waited", "about generation 1")

	// Set while waiting: the watch sees it.
	done := make(chan result, 1)
	go func() { done <- e.run("", "wait", "cluster/waited", "--for=condition=Ready", "--timeout", "30s") }()
	e.setCondition("waited", "Ready", metav1.ConditionTrue, 2)
	select {
	case r := <-done:
		expect(t, r, 0, "cluster/waited condition met")
	case <-time.After(40 * time.Second):
		t.Fatal("wait did not return")
	}

	expect(t, e.run("", "wait", "cluster", "waited", "--for=condition=Stalled=False", "--timeout", "1s"), 1, "timed out")
	e.setCondition("waited", "Stalled", metav1.ConditionFalse, 2)
	expect(t, e.run("", "wait", "cl/waited", "--for=condition=Stalled=False", "--timeout", "5s"), 0, "condition met")
	expect(t, e.run("", "wait", "cluster/nope", "--for=condition=Ready"), 1, "cluster/nope not found")
	expect(t, e.run("", "wait", "cluster/waited"), 2, "--for is required")
	expect(t, e.run("", "wait", "cluster/waited", "--for=ready"), 2, "--for must be")
}

func TestWaitForDeleteAndDelete(t *testing.T) {
	e := newEnv(t)
	f := e.file("x.yaml", manifest("doomed", 1, ""))
	expect(t, e.run("", "apply", "-f", f), 0, "created")
	// The controller's finalizer holds the object until its tasks are gone.
	c := e.get("doomed")
	c.Finalizers = []string{v1alpha1.Finalizer}
	if _, err := e.st.Update(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	expect(t, e.run("", "delete", "cluster", "doomed"), 0, "cluster/doomed deleted")
	if c = e.get("doomed"); c.DeletionTimestamp == nil {
		t.Fatal("delete did not mark the cluster")
	}
	expect(t, e.run("", "get", "clusters"), 0, "Terminating")
	expect(t, e.run("", "apply", "-f", f), 1, "being deleted")
	expect(t, e.run("", "wait", "cluster/doomed", "--for=delete", "--timeout", "1s"), 1, "timed out waiting for delete")

	done := make(chan result, 1)
	go func() { done <- e.run("", "wait", "cluster/doomed", "--for=delete", "--timeout", "30s") }()
	c.Finalizers = nil
	if _, err := e.st.Update(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		expect(t, r, 0, "cluster/doomed deleted")
	case <-time.After(40 * time.Second):
		t.Fatal("wait --for=delete did not return")
	}
	expect(t, e.run("", "delete", "cluster", "doomed"), 1, "cluster/doomed not found")
	expect(t, e.run("", "delete", "cluster", "doomed", "--ignore-not-found"), 0)

	// delete -f, and --wait on an object without finalizers.
	expect(t, e.run("", "apply", "-f", f), 0, "created")
	expect(t, e.run("", "delete", "-f", f, "--wait", "--timeout", "10s"), 0, "cluster/doomed deleted", "cluster/doomed gone")
	if e.count() != 0 {
		t.Fatal("delete -f left the cluster")
	}
}

func TestDescribeRedactsEnvValues(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("d.yaml", manifest("described", 2, ""))), 0, "created")
	c := e.get("described")
	c.Status.Tasks = []v1alpha1.TaskStatus{{ID: "default.described.0.aaaa", Ordinal: 0, State: "TASK_RUNNING", Hostname: "127.0.0.1", Ports: []int32{31000}}}
	c.Status.Master = &v1alpha1.MasterStatus{TaskID: "default.described.0.aaaa", Hostname: "127.0.0.1", Port: 31000, Epoch: 3}
	if _, err := e.st.UpdateStatus(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	b := e.st.NewBatch()
	b.AppendEvents("default", "described", nil, store.Event{Time: time.Now(), Type: "Normal", Reason: "Launched", Message: "launched ordinal 0"})
	if _, err := e.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := e.run("", "describe", "cluster", "described")
	expect(t, r, 0, "Name:", "described", "DB_PASSWORD", "MODE", "TASK_RUNNING", "127.0.0.1:31000", "Epoch:", "Launched", "launched ordinal 0", "Conditions:")
	if strings.Contains(r.out, "hunter2") || strings.Contains(r.out, "fast") {
		t.Fatalf("describe printed an env value:\n%s", r.out)
	}
	expect(t, e.run("", "describe", "cluster", "nope"), 1, "not found")
}

func TestEndpoints(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("d.yaml", manifest("served", 2, ""))), 0, "created")
	expect(t, e.run("", "endpoints", "cluster/served"), 1, "no published endpoints")
	b := e.st.NewBatch()
	b.PutEndpoints(store.Endpoints{Namespace: "default", Cluster: "served", Epoch: 4,
		Master:  &store.Endpoint{TaskID: "t0", Ordinal: 0, Hostname: "127.0.0.1", Port: 31000},
		Members: []store.Endpoint{{TaskID: "t0", Ordinal: 0, Hostname: "127.0.0.1", Port: 31000}, {TaskID: "t1", Ordinal: 1, Hostname: "127.0.0.2", Port: 32000}}})
	if _, err := e.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	expect(t, e.run("", "endpoints", "cluster/served"), 0, "epoch 4", "master", "127.0.0.1:31000", "replica", "127.0.0.2:32000")
	expect(t, e.run("", "endpoints", "served", "-o", "json"), 0, `"epoch": 4`)
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply"}, "must give at least one file"},
		{[]string{"apply", "-f"}, "flag needs an argument"},
		{[]string{"apply", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"get", "pods"}, `unknown resource type "pods"`},
		{[]string{"get"}, "you must specify the type of resource"},
		{[]string{"get", "clusters", "-o", "xml"}, "unknown output format"},
		{[]string{"apply", "-f", "x.yaml", "--dry-run=client"}, "--dry-run"},
	} {
		r := e.run("", tc.args...)
		expect(t, r, 2, tc.want)
		if !strings.HasPrefix(r.err, "error: ") {
			t.Fatalf("%v: stderr %q", tc.args, r.err)
		}
	}
}

func TestVersion(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "version"), 0, "converge ", "commit ")
}

func TestNamespaceFlag(t *testing.T) {
	e := newEnv(t)
	f := e.file("ns.yaml", manifest("nsd", 1, ""))
	expect(t, e.run("", "-n", "team-a", "apply", "-f", f), 0, "cluster/nsd created")
	if _, err := e.st.Get(context.Background(), "team-a", "nsd"); err != nil {
		t.Fatal(err)
	}
	expect(t, e.run("", "get", "clusters"), 0, "No clusters found in namespace default")
	expect(t, e.run("", "-n", "team-a", "get", "clusters"), 0, "nsd")
	other := e.file("other.yaml", strings.Replace(manifest("nsd", 1, ""), "  name: nsd\n", "  name: nsd\n  namespace: team-b\n", 1))
	expect(t, e.run("", "-n", "team-a", "apply", "-f", other), 1, `metadata.namespace "team-b" does not match --namespace "team-a"`)
	expect(t, e.run("", "apply", "-f", other), 0, "cluster/nsd created")
	if _, err := e.st.Get(context.Background(), "team-b", "nsd"); err != nil {
		t.Fatal(err)
	}
}

func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// TestDevRunsAndStops starts `converge dev` in-process on free ports, uses it
// as a user would, and stops it as Ctrl-C does.
func TestDevRunsAndStops(t *testing.T) {
	etcdURL := freeURL(t)
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	errOut := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data-dir", data, "--etcd-client-url", etcdURL,
			"--mesos-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--agents", "2"},
			streams{in: strings.NewReader(""), out: out, errOut: errOut})
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "Press Ctrl-C") })
	for _, want := range []string{etcdURL, "local Mesos  http://127.0.0.1:", "/metrics", "export CONVERGE_ETCD_ENDPOINTS=" + etcdURL} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("dev output lacks %q:\n%s", want, out.String())
		}
	}

	e := &env{t: t, endpoint: etcdURL, prefix: store.DefaultPrefix, dir: t.TempDir()}
	// The whole product: the controller launches a real process on the local
	// Mesos and reports Ready.
	expect(t, e.run("", "apply", "-f", e.file("dev.yaml", manifest("in-dev", 2, "")), "--wait", "--timeout", "60s"),
		0, "cluster/in-dev created", "cluster/in-dev ready")
	expect(t, e.run("", "get", "clusters"), 0, "in-dev", "2/2", "True")
	expect(t, e.run("", "delete", "cluster", "in-dev", "--wait", "--timeout", "60s"), 0, "cluster/in-dev gone")

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("dev exited %d: %s%s", code, out.String(), errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop")
	}
	if !strings.Contains(out.String(), "etcd stopped") {
		t.Fatalf("dev did not say it stopped etcd:\n%s", out.String())
	}
}

func TestLocalMesosCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"local-mesos", "--listen", "127.0.0.1:0", "--agents", "4", "--simulate", "--masters", "2"},
			streams{in: strings.NewReader(""), out: out, errOut: &syncBuffer{}})
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "Press Ctrl-C") })
	s := out.String()
	i := strings.Index(s, "curl ")
	if i < 0 {
		t.Fatalf("no state URL in:\n%s", s)
	}
	stateURL := strings.Fields(s[i+len("curl "):])[0]
	resp, err := http.Get(stateURL)
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Slaves []json.RawMessage `json:"slaves"`
	}
	err = json.NewDecoder(resp.Body).Decode(&state)
	resp.Body.Close()
	if err != nil || len(state.Slaves) != 4 {
		t.Fatalf("state: %v, %d agents", err, len(state.Slaves))
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("local-mesos exited %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("local-mesos did not stop")
	}
}

func TestApplyWait(t *testing.T) {
	e := newEnv(t)
	f := e.file("aw.yaml", manifest("awaited", 1, ""))
	// Play the controller: once the cluster exists, report it Ready for its generation.
	go func() {
		for i := 0; i < 500; i++ {
			c, err := e.st.Get(context.Background(), "default", "awaited")
			if err == nil {
				c.Status.ReadyReplicas = 1
				c.Status.ObservedGeneration = c.Generation
				v1alpha1.SetCondition(&c.Status.Conditions, metav1.Condition{Type: "Ready", Status: "True", Reason: "Test", ObservedGeneration: c.Generation})
				if _, err := e.st.UpdateStatus(context.Background(), c); err == nil {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	r := e.run("", "apply", "-f", f, "--wait", "--timeout", "30s")
	expect(t, r, 0, "cluster/awaited created", "cluster/awaited ready")
	// A new generation is not Ready until the controller says so for it.
	r = e.run("", "apply", "-f", e.file("aw.yaml", manifest("awaited", 2, "")), "--wait", "--timeout", "1s")
	expect(t, r, 1, "cluster/awaited configured", "timed out waiting for condition=Ready=True on cluster/awaited")
}

func TestEtcdTLSFlags(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	e := &env{t: t, endpoint: srv.Endpoints()[0], prefix: "/tls", dir: t.TempDir()}
	tlsArgs := []string{"--etcd-cacert", srv.CAFile(), "--etcd-cert", srv.ClientCertFile(), "--etcd-key", srv.ClientKeyFile()}
	f := e.file("tls.yaml", manifest("secure", 1, ""))
	expect(t, e.run("", append(tlsArgs, "apply", "-f", f)...), 0, "cluster/secure created")
	expect(t, e.run("", append(tlsArgs, "get", "clusters")...), 0, "secure")
	r := e.run("", "--etcd-cacert", filepath.Join(e.dir, "missing.pem"), "get", "clusters")
	expect(t, r, 1, "etcd CA certificate", "no such file")
}

// TestServeHA runs two `converge serve` replicas against embedded etcd and a
// local Mesos that requires authentication: the leader brings a cluster to
// Ready; when it stops, the standby takes over and converges a change.
func TestServeHA(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startLocalMesos(ctx, t, localmesos.Options{Agents: 2, Principal: "converge", Secret: "s3cret"})
	secret := e.file("secret", "s3cret\n")

	start := func(id string, extra ...string) *serveReplica {
		r := e.startServe(ctx, append([]string{"serve", "--mesos-master", m.URL(), "--identity", id,
			"--principal", "converge", "--secret-file", secret, "--http", "127.0.0.1:0", "--lease-ttl", "2s"}, extra...)...)
		waitFor(t, func() bool { return strings.Contains(r.out.String(), "campaigning") })
		return r
	}
	// Replica a also serves the Kubernetes API, with static tokens.
	pki, err := kubeapi.EnsureDevPKI(filepath.Join(e.dir, "pki"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tokens := e.file("tokens.csv", "s3cret-token,ops,1001\n")
	apiFlags := []string{"--api-listen", "127.0.0.1:0", "--api-cert", pki.CertFile, "--api-key", pki.KeyFile}
	a := start("replica-a", append(apiFlags, "--api-token-file", tokens)...)
	f := e.file("ha.yaml", manifest("ha", 1, ""))
	expect(t, e.run("", "apply", "-f", f, "--wait", "--timeout", "60s"), 0, "cluster/ha ready")
	checkServeAPI(t, a.out.String(), pki.CAFile)

	b := start("replica-b")
	a.cancel()
	select {
	case r := <-a.done:
		expect(t, r, 0, "converge serve stopped")
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	expect(t, e.run("", "apply", "-f", e.file("ha.yaml", manifest("ha", 2, "")), "--wait", "--timeout", "60s"), 0, "cluster/ha configured", "cluster/ha ready (generation 2, 2/2)")
	b.cancel()
	<-b.done

	expect(t, e.run("", "serve"), 2, "--mesos-master is required")
	expect(t, e.run("", "serve", "--mesos-master", m.URL(), "--secret-file", filepath.Join(e.dir, "nope")), 1, "--secret-file", "no such file")
	expect(t, e.run("", append([]string{"serve", "--mesos-master", m.URL(), "--principal", "converge", "--secret-file", secret, "--http", ""}, apiFlags[:2]...)...),
		2, "--api-listen needs --api-cert and --api-key")
	expect(t, e.run("", append([]string{"serve", "--mesos-master", m.URL(), "--principal", "converge", "--secret-file", secret, "--http", ""}, apiFlags...)...),
		2, "--api-listen needs --api-client-ca or --api-token-file")
}

// checkServeAPI: the Kubernetes API that converge serve printed in out lists
// the cluster the CLI applied for a listed token, and refuses a wrong one.
func checkServeAPI(t *testing.T, out, caFile string) {
	t.Helper()
	url := ""
	for _, line := range strings.Split(out, "\n") {
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "kubernetes API "); ok {
			url = u
		}
	}
	ca, err := os.ReadFile(caFile)
	if err != nil || url == "" {
		t.Fatalf("converge serve --api-listen printed no API address (%v):\n%s", err, out)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	for token, want := range map[string]int{"s3cret-token": http.StatusOK, "wrong-token": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodGet, url+"/apis/converge.io/v1alpha1/namespaces/default/clusters/ha", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("converge serve's API with token %q: %s, want %d", token, resp.Status, want)
		}
	}
}

// TestExampleManifestsApply: every example a new user copies applies, and
// applies again unchanged.
func TestExampleManifestsApply(t *testing.T) {
	dir := filepath.Join("..", "..", "manifests", "examples")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no examples: %v", err)
	}
	e := newEnv(t)
	r := e.run("", "apply", "-f", dir)
	expect(t, r, 0, "created")
	r = e.run("", "apply", "-f", dir)
	expect(t, r, 0, "unchanged")
	if strings.Contains(r.out, "configured") || strings.Contains(r.out, "created") {
		t.Fatalf("examples applied twice changed something:\n%s", r)
	}
	expect(t, e.run("", "diff", "-f", dir), 0)
}

func TestEtcdUserAndPassword(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := e.srv.Client()
	const pass = "c0nverge-pass"
	steps := []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "r00t-pass"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "converge"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "converge", e.prefix+"/", clientv3.GetPrefixRangeEnd(e.prefix+"/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "converge", pass); return err },
		func() error { _, err := root.UserGrantRole(ctx, "converge", "converge"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	f := e.file("auth.yaml", manifest("authed", 1, ""))
	t.Setenv(envEtcdPassword, pass)
	expect(t, e.run("", "--etcd-user", "converge", "apply", "-f", f), 0, "cluster/authed created")
	expect(t, e.run("", "--etcd-user", "converge", "get", "clusters"), 0, "authed")
	t.Setenv(envEtcdPassword, "wrong")
	r := e.run("", "--etcd-user", "converge", "get", "clusters")
	expect(t, r, 1, "rejected the credentials")
	if strings.Contains(r.err, "wrong") {
		t.Fatalf("the password appears in the error: %s", r.err)
	}
	expect(t, e.run("", "get", "clusters"), 1, "refused access")
}

// local-mesos --principal/--secret-file makes the scheduler API require HTTP
// basic authentication, as a master with --authenticate_http_frameworks does.
func TestLocalMesosRequiresAuthentication(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Half the pair is a usage error.
	if code := run(context.Background(), []string{"local-mesos", "--principal", "fw"},
		streams{in: strings.NewReader(""), out: &syncBuffer{}, errOut: &syncBuffer{}}); code != 2 {
		t.Fatalf("--principal without --secret-file exited %d, want 2", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"local-mesos", "--listen", "127.0.0.1:0", "--agents", "1", "--simulate",
			"--principal", "fw", "--secret-file", secretFile},
			streams{in: strings.NewReader(""), out: out, errOut: &syncBuffer{}})
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "Press Ctrl-C") })
	s := out.String()
	i := strings.Index(s, "curl ")
	if i < 0 {
		t.Fatalf("no state URL in:\n%s", s)
	}
	api := strings.TrimSuffix(strings.Fields(s[i+len("curl "):])[0], "/master/state") + "/api/v1/scheduler"
	call := func(user, pass string) int {
		req, err := http.NewRequest(http.MethodPost, api, strings.NewReader(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","principal":"fw"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // a 200 is a SUBSCRIBE stream: closing ends it
		return resp.StatusCode
	}
	if code := call("", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code := call("fw", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d, want 401", code)
	}
	if code := call("fw", "s3cret"); code != http.StatusOK {
		t.Errorf("right secret: %d, want 200", code)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("local-mesos exited %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("local-mesos did not stop")
	}
}
