package store_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
)

const prefix = "/t"

func newStore(t *testing.T) (*store.Store, *etcdtest.Server) {
	t.Helper()
	srv := etcdtest.Start(t)
	return store.NewFromClient(srv.Client(), prefix), srv
}

// newStoreWithFoo returns a store (on its own etcd) holding the cluster
// default/foo, as created, and a context for the test.
func newStoreWithFoo(t *testing.T) (*store.Store, context.Context, *v1alpha1.Cluster) {
	t.Helper()
	s, _ := newStore(t)
	ctx := ctxT(t)
	c, err := s.Create(ctx, cluster("default", "foo"))
	if err != nil {
		t.Fatal(err)
	}
	return s, ctx, c
}

// fenced puts the leadership key prefix/leader/name and returns a view of s
// fenced on it, and the key.
func fenced(ctx context.Context, t *testing.T, s *store.Store, name string) (*store.Store, string) {
	t.Helper()
	key := prefix + "/leader/" + name
	put, err := s.Client().Put(ctx, key, "me")
	if err != nil {
		t.Fatal(err)
	}
	return s.Fenced(key, put.Header.Revision), key
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func cluster(ns, name string) *v1alpha1.Cluster {
	r := int32(3)
	cpus := resource.MustParse("500m")
	mem := resource.MustParse("512Mi")
	c := &v1alpha1.Cluster{}
	c.APIVersion, c.Kind = v1alpha1.APIVersion, v1alpha1.Kind
	c.Namespace, c.Name = ns, name
	c.Spec = v1alpha1.ClusterSpec{
		Replicas: &r,
		Role:     "*",
		Task: v1alpha1.TaskSpec{
			Command:   "exec sleep 1000",
			Resources: v1alpha1.Resources{CPUs: &cpus, Mem: &mem, Ports: 1},
		},
	}
	return c
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateGet(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	in := cluster("", "foo")
	in.Status.ReadyReplicas = 7 // the controller's to write: dropped on create
	in.Generation = 9
	got, err := s.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got.Namespace != "default" || got.UID == "" || got.Generation != 1 || got.CreationTimestamp.IsZero() ||
		got.ResourceVersion == "" || got.Status.ReadyReplicas != 0 {
		t.Fatalf("created object lacks server-set metadata: %+v", got.ObjectMeta)
	}
	if in.UID != "" || in.ResourceVersion != "" {
		t.Fatal("Create modified its argument")
	}
	read, err := s.Get(ctx, "default", "foo")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, got), mustJSON(t, read); a != b {
		t.Fatalf("Get differs from Create's result:\n%s\n%s", a, b)
	}

	_, err = s.Create(ctx, cluster("default", "foo"))
	if !store.IsAlreadyExists(err) || err.Error() != "cluster default/foo already exists" {
		t.Fatalf("second create: %v", err)
	}
	_, err = s.Get(ctx, "default", "nope")
	if !store.IsNotFound(err) || err.Error() != "cluster default/nope not found" {
		t.Fatalf("get missing: %v", err)
	}
	if store.IsConflict(err) || store.IsAlreadyExists(err) {
		t.Fatal("error kinds overlap")
	}
	// The value holds no resourceVersion: it is the key's mod revision.
	resp, err := s.Client().Get(ctx, prefix+"/clusters/default/foo")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v", err)
	}
	if strings.Contains(string(resp.Kvs[0].Value), "resourceVersion") {
		t.Fatalf("stored value contains resourceVersion: %s", resp.Kvs[0].Value)
	}
	if got.ResourceVersion != fmt.Sprint(resp.Kvs[0].ModRevision) {
		t.Fatalf("resourceVersion %s, mod revision %d", got.ResourceVersion, resp.Kvs[0].ModRevision)
	}
}

var conflictRe = regexp.MustCompile(`^conflict: cluster default/foo was modified \(resourceVersion (\d+), now (\d+)\); get it and try again$`)

func TestUpdateGenerationAndConflict(t *testing.T) {
	t.Parallel()
	s, ctx, v1 := newStoreWithFoo(t)

	// Metadata only: no generation bump.
	in := dup(v1)
	in.Labels = map[string]string{"team": "a"}
	v2, err := s.Update(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Generation != 1 || v2.ResourceVersion == v1.ResourceVersion || v2.Labels["team"] != "a" {
		t.Fatalf("label update: gen %d rv %s->%s", v2.Generation, v1.ResourceVersion, v2.ResourceVersion)
	}

	// The same cpus written differently is the same spec.
	in = dup(v2)
	half := resource.MustParse("0.5")
	in.Spec.Task.Resources.CPUs = &half
	before := s.Stats()
	v3, err := s.Update(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if v3.Generation != 1 || v3.ResourceVersion != v2.ResourceVersion || s.Stats().Txns != before.Txns {
		t.Fatalf("no-op update wrote: gen %d rv %s->%s", v3.Generation, v2.ResourceVersion, v3.ResourceVersion)
	}

	// Spec change: generation+1; server-owned fields survive whatever the caller sends.
	in = dup(v3)
	in.Spec.Task.Command = "exec sleep 2000"
	in.UID = "forged"
	in.CreationTimestamp.Time = in.CreationTimestamp.Add(-time.Hour)
	in.Status.ReadyReplicas = 3
	in.Generation = 42
	v4, err := s.Update(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if v4.Generation != 2 || v4.UID != v1.UID || !v4.CreationTimestamp.Equal(&v1.CreationTimestamp) || v4.Status.ReadyReplicas != 0 {
		t.Fatalf("spec update: %+v status %+v", v4.ObjectMeta, v4.Status)
	}

	// A stale resourceVersion is a conflict, whatever it changes.
	stale := dup(v3)
	stale.Spec.Task.Command = "lost update"
	_, err = s.Update(ctx, stale)
	if !store.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	m := conflictRe.FindStringSubmatch(err.Error())
	if m == nil || m[1] != v3.ResourceVersion || m[2] != v4.ResourceVersion {
		t.Fatalf("conflict message: %q", err)
	}
	got, _ := s.Get(ctx, "default", "foo")
	if got.Spec.Task.Command != "exec sleep 2000" {
		t.Fatal("stale update overwrote")
	}

	// Two writers from the same version: exactly one wins.
	a, b := dup(got), dup(got)
	a.Spec.Task.Command, b.Spec.Task.Command = "a", "b"
	_, errA := s.Update(ctx, a)
	_, errB := s.Update(ctx, b)
	if errA != nil || !store.IsConflict(errB) {
		t.Fatalf("racing updates: %v, %v", errA, errB)
	}

	// Missing resourceVersion and missing objects are errors.
	noRV := dup(got)
	noRV.ResourceVersion = ""
	if _, err := s.Update(ctx, noRV); err == nil || !strings.Contains(err.Error(), "resourceVersion is required") {
		t.Fatalf("update without resourceVersion: %v", err)
	}
	ghost := dup(got)
	ghost.Name = "ghost"
	if _, err := s.Update(ctx, ghost); !store.IsNotFound(err) {
		t.Fatalf("update of missing: %v", err)
	}
}

func TestUpdateStatus(t *testing.T) {
	t.Parallel()
	s, ctx, v1 := newStoreWithFoo(t)
	in := dup(v1)
	in.Status.ObservedGeneration = 1
	in.Status.ReadyReplicas = 2
	in.Status.Master = &v1alpha1.MasterStatus{TaskID: "default.foo.0.x", Epoch: 3}
	in.Spec.Task.Command = "ignored by a status write"
	in.Labels = map[string]string{"ignored": "too"}
	v2, err := s.UpdateStatus(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Generation != 1 || v2.Status.ReadyReplicas != 2 || v2.Status.Master.Epoch != 3 ||
		v2.Spec.Task.Command != v1.Spec.Task.Command || v2.Labels != nil {
		t.Fatalf("status write: %+v", v2)
	}
	got, _ := s.Get(ctx, "default", "foo")
	if mustJSON(t, got) != mustJSON(t, v2) {
		t.Fatal("status write returned something else than what is stored")
	}
	// Unchanged status: no write.
	before := s.Stats().Txns
	v3, err := s.UpdateStatus(ctx, v2)
	if err != nil || v3.ResourceVersion != v2.ResourceVersion || s.Stats().Txns != before {
		t.Fatalf("no-op status write: %v", err)
	}
	// Stale: conflict.
	in = dup(v1)
	in.Status.ReadyReplicas = 1
	if _, err := s.UpdateStatus(ctx, in); !store.IsConflict(err) || !conflictRe.MatchString(err.Error()) {
		t.Fatalf("stale status write: %v", err)
	}
	// Spec change after status: generation 2, status kept.
	in = dup(v2)
	in.Spec.Task.Command = "new"
	v4, err := s.Update(ctx, in)
	if err != nil || v4.Generation != 2 || v4.Status.ReadyReplicas != 2 {
		t.Fatalf("update after status: %v %+v", err, v4)
	}
}

// seedOwned writes one of every per-cluster key for ns/name.
func seedOwned(t *testing.T, ctx context.Context, s *store.Store, ns, name string) {
	t.Helper()
	b := s.NewBatch()
	b.PutTask(store.TaskRecord{ID: ns + "." + name + ".0.a", Namespace: ns, Cluster: name, State: "TASK_RUNNING"})
	b.PutTask(store.TaskRecord{ID: ns + "." + name + ".1.b", Namespace: ns, Cluster: name, State: "TASK_RUNNING"})
	b.PutElection(ns, name, store.ElectionRecord{Epoch: 1, Phase: store.PhaseElecting})
	b.PutEndpoints(store.Endpoints{Namespace: ns, Cluster: name, Epoch: 1})
	b.AppendEvents(ns, name, nil, store.Event{Type: "Normal", Reason: "Launched"})
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func ownedKeys(t *testing.T, ctx context.Context, s *store.Store, ns, name string) int {
	t.Helper()
	n := 0
	for _, k := range []string{"/tasks/" + ns + "/" + name + "/", "/elections/" + ns + "/" + name,
		"/endpoints/" + ns + "/" + name, "/events/" + ns + "/" + name} {
		opts := []clientv3.OpOption{clientv3.WithCountOnly()}
		if strings.HasSuffix(k, "/") {
			opts = append(opts, clientv3.WithPrefix())
		}
		resp, err := s.Client().Get(ctx, prefix+k, opts...)
		if err != nil {
			t.Fatal(err)
		}
		n += int(resp.Count)
	}
	return n
}

func TestFinalizersAndDelete(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	in := cluster("default", "foo")
	in.Finalizers = []string{v1alpha1.Finalizer}
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	seedOwned(t, ctx, s, "default", "foo")
	// A neighbour whose name extends ours must not be touched.
	if _, err := s.Create(ctx, cluster("default", "foo2")); err != nil {
		t.Fatal(err)
	}
	seedOwned(t, ctx, s, "default", "foo2")

	obj, gone, err := s.Delete(ctx, "default", "foo")
	if err != nil || gone || obj.DeletionTimestamp == nil {
		t.Fatalf("delete with finalizer: gone=%v err=%v", gone, err)
	}
	again, gone, err := s.Delete(ctx, "default", "foo")
	if err != nil || gone || again.ResourceVersion != obj.ResourceVersion || !again.DeletionTimestamp.Equal(obj.DeletionTimestamp) {
		t.Fatalf("second delete is not idempotent: %v", err)
	}
	if n := ownedKeys(t, ctx, s, "default", "foo"); n != 5 {
		t.Fatalf("marking deleted removed owned keys: %d left", n)
	}
	// No new finalizer while deleting.
	add := dup(obj)
	add.Finalizers = append(add.Finalizers, "other/x")
	if _, err := s.Update(ctx, add); err == nil {
		t.Fatal("added a finalizer to an object being deleted")
	}
	// deletionTimestamp cannot be cleared by an update.
	clearTS := dup(obj)
	clearTS.DeletionTimestamp = nil
	clearTS.Labels = map[string]string{"x": "y"}
	kept, err := s.Update(ctx, clearTS)
	if err != nil || kept.DeletionTimestamp == nil {
		t.Fatalf("update cleared deletionTimestamp: %v", err)
	}
	// Removing the last finalizer deletes the object and its keys.
	rm := dup(kept)
	rm.Finalizers = nil
	if _, err := s.Update(ctx, rm); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "default", "foo"); !store.IsNotFound(err) {
		t.Fatalf("object survived its last finalizer: %v", err)
	}
	if n := ownedKeys(t, ctx, s, "default", "foo"); n != 0 {
		t.Fatalf("%d owned keys left after deletion", n)
	}
	if n := ownedKeys(t, ctx, s, "default", "foo2"); n != 5 {
		t.Fatalf("neighbour foo2 lost keys: %d left", n)
	}

	// Without finalizers: gone at once, with its keys.
	obj, gone, err = s.Delete(ctx, "default", "foo2")
	if err != nil || !gone || obj.Name != "foo2" {
		t.Fatalf("delete without finalizer: %v %v", gone, err)
	}
	if n := ownedKeys(t, ctx, s, "default", "foo2"); n != 0 {
		t.Fatalf("%d owned keys left", n)
	}
	if _, _, err := s.Delete(ctx, "default", "foo2"); !store.IsNotFound(err) {
		t.Fatalf("delete of missing: %v", err)
	}
}

func TestListSelector(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	for _, c := range []struct{ ns, name, team string }{
		{"ns2", "b", "a"}, {"ns1", "z", "a"}, {"ns1", "a", "b"}, {"ns10", "c", ""},
	} {
		in := cluster(c.ns, c.name)
		if c.team != "" {
			in.Labels = map[string]string{"team": c.team}
		}
		if _, err := s.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	names := func(cs []*v1alpha1.Cluster) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Namespace+"/"+c.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct{ ns, sel, want string }{
		{"", "", "ns1/a,ns1/z,ns10/c,ns2/b"},
		{"ns1", "", "ns1/a,ns1/z"},
		{"", "team=a", "ns1/z,ns2/b"},
		{"", "team!=a", "ns1/a,ns10/c"},
		{"", "!team", "ns10/c"},
		{"ns1", "team in (a,b)", "ns1/a,ns1/z"},
		{"ns3", "", ""},
	} {
		sel, err := labels.Parse(tc.sel)
		if err != nil {
			t.Fatal(err)
		}
		got, rev, err := s.List(ctx, tc.ns, sel)
		if err != nil {
			t.Fatal(err)
		}
		if names(got) != tc.want || rev == 0 {
			t.Errorf("List(%q, %q) = %s (rev %d), want %s", tc.ns, tc.sel, names(got), rev, tc.want)
		}
	}
	all, _, err := s.List(ctx, "", nil)
	if err != nil || len(all) != 4 || all[0].ResourceVersion == "" {
		t.Fatalf("List with nil selector: %d %v", len(all), err)
	}
}

func TestKeySafety(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	bad := []string{"", "..", ".", "a/b", "../x", "a\x00b", strings.Repeat("a", 64), "UPPER", "a.b", "-a", "/"}
	for _, v := range bad {
		for _, nsName := range [][2]string{{"default", v}, {v, "foo"}} {
			ns, name := nsName[0], nsName[1]
			if ns == "" {
				continue // an empty namespace is defaulted by Create and means "all" for List
			}
			c := cluster(ns, name)
			if _, err := s.Create(ctx, c); err == nil {
				t.Errorf("Create(%q, %q) accepted", ns, name)
			}
			if _, err := s.Get(ctx, ns, name); err == nil || store.IsNotFound(err) {
				t.Errorf("Get(%q, %q): %v", ns, name, err)
			}
			c.ResourceVersion = "1"
			if _, err := s.Update(ctx, c); err == nil || store.IsNotFound(err) {
				t.Errorf("Update(%q, %q): %v", ns, name, err)
			}
			if _, err := s.UpdateStatus(ctx, c); err == nil || store.IsNotFound(err) {
				t.Errorf("UpdateStatus(%q, %q): %v", ns, name, err)
			}
			if _, _, err := s.Delete(ctx, ns, name); err == nil || store.IsNotFound(err) {
				t.Errorf("Delete(%q, %q): %v", ns, name, err)
			}
			if _, err := s.ListTasks(ctx, ns, name); err == nil {
				t.Errorf("ListTasks(%q, %q) accepted", ns, name)
			}
			if _, err := s.GetElection(ctx, ns, name); err == nil {
				t.Errorf("GetElection(%q, %q) accepted", ns, name)
			}
			if _, err := s.GetEndpoints(ctx, ns, name); err == nil {
				t.Errorf("GetEndpoints(%q, %q) accepted", ns, name)
			}
			if _, err := s.ListEvents(ctx, ns, name); err == nil {
				t.Errorf("ListEvents(%q, %q) accepted", ns, name)
			}
			b := s.NewBatch()
			b.PutElection(ns, name, store.ElectionRecord{})
			b.PutEndpoints(store.Endpoints{Namespace: ns, Cluster: name})
			b.AppendEvents(ns, name, nil, store.Event{})
			if _, err := s.Commit(ctx, b); err == nil {
				t.Errorf("Commit for %q/%q accepted", ns, name)
			}
		}
	}
	if _, _, err := s.List(ctx, "../x", nil); err == nil {
		t.Error("List with a bad namespace accepted")
	}
	for _, id := range []string{"", ".", "..", "a/b", "../../framework", "a\x00", "a b", strings.Repeat("x", 201)} {
		b := s.NewBatch()
		b.PutTask(store.TaskRecord{ID: "ok", Namespace: "default", Cluster: "foo"})
		b.PutTask(store.TaskRecord{ID: id, Namespace: "default", Cluster: "foo"})
		if _, err := s.Commit(ctx, b); err == nil {
			t.Errorf("task id %q accepted", id)
		}
		b = s.NewBatch()
		b.DeleteTask("default", "foo", id)
		if _, err := s.Commit(ctx, b); err == nil {
			t.Errorf("delete of task id %q accepted", id)
		}
	}
	// Nothing at all was written by the rejected calls (the "ok" task of a
	// failing batch included).
	resp, err := s.Client().Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("rejected writes left %d keys (%v)", resp.Count, err)
	}
	// The longest valid names and ids work and stay under the prefix.
	long63 := strings.Repeat("n", 63)
	if _, err := s.Create(ctx, cluster(long63, long63)); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.PutTask(store.TaskRecord{ID: strings.Repeat("T", 200), Namespace: long63, Cluster: long63})
	b.PutTask(store.TaskRecord{ID: "default.x.0.A_b-c", Namespace: long63, Cluster: long63})
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	all, err := s.Client().Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		if !strings.HasPrefix(string(kv.Key), prefix+"/") {
			t.Errorf("key outside the prefix: %q", kv.Key)
		}
	}
	if len(all.Kvs) != 3 {
		t.Errorf("want 3 keys, got %d", len(all.Kvs))
	}
}

func TestBatchCommit(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	// A stock etcd takes at most 128 operations in a transaction; the test
	// server keeps that default, so a batch of exactly 128 proves the store's
	// limit is not below etcd's, and 129 proves the store refuses, unsent.
	n := store.DefaultTxnOpsLimit
	b := s.NewBatch()
	for i := range n {
		b.PutTask(store.TaskRecord{ID: fmt.Sprintf("default.big.%d.x", i), Namespace: "default", Cluster: "big", Ordinal: int32(i), State: "TASK_STAGING"})
	}
	// Writing a key twice keeps the last write (etcd refuses duplicates in a txn).
	b.PutTask(store.TaskRecord{ID: "default.big.0.x", Namespace: "default", Cluster: "big", State: "TASK_RUNNING"})
	if b.Len() != n {
		t.Fatalf("Len %d", b.Len())
	}
	over := s.NewBatch()
	over.Merge(b)
	over.PutTask(store.TaskRecord{ID: "default.big.999.x", Namespace: "default", Cluster: "big", State: "TASK_STAGING"})
	before := s.Stats()
	if _, err := s.Commit(ctx, over); !errors.Is(err, store.ErrTxnTooLarge) {
		t.Fatalf("commit of %d writes: %v, want ErrTxnTooLarge", over.Len(), err)
	}
	if got := s.Stats().Txns - before.Txns; got != 0 {
		t.Errorf("a refused batch sent %d transactions", got)
	}
	if tasks, _ := s.ListTasks(ctx, "default", "big"); len(tasks) != 0 {
		t.Fatalf("a refused batch wrote %d tasks", len(tasks))
	}
	rev, err := s.Commit(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if got := after.Txns - before.Txns; got != 1 {
		t.Errorf("%d writes took %d transactions, want 1", n, got)
	}
	if got := after.Puts - before.Puts; got != int64(n) {
		t.Errorf("Puts counted %d, want %d", got, n)
	}
	tasks, err := s.ListTasks(ctx, "default", "big")
	if err != nil || len(tasks) != n {
		t.Fatalf("ListTasks: %d %v", len(tasks), err)
	}
	resp, _ := s.Client().Get(ctx, prefix+"/tasks/default/big/default.big.0.x")
	if len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != rev {
		t.Errorf("the batch was not one transaction")
	}
	var r0 store.TaskRecord
	_ = json.Unmarshal(resp.Kvs[0].Value, &r0)
	if r0.State != "TASK_RUNNING" {
		t.Errorf("duplicate key: first write kept")
	}
	if all, err := s.ListAllTasks(ctx); err != nil || len(all) != n {
		t.Fatalf("ListAllTasks: %d %v", len(all), err)
	}

	// Mixed batch in one transaction.
	b = s.NewBatch()
	b.DeleteTask("default", "big", "default.big.1.x")
	b.PutElection("default", "big", store.ElectionRecord{Epoch: 2, Phase: store.PhaseElected, MasterTaskID: "default.big.0.x"})
	b.PutElection("ns2", "other", store.ElectionRecord{Epoch: 5})
	b.PutEndpoints(store.Endpoints{Namespace: "default", Cluster: "big", Epoch: 2, Master: &store.Endpoint{TaskID: "default.big.0.x", Hostname: "127.0.0.2", Port: 31000}})
	var existing []store.Event
	for i := range 49 {
		existing = append(existing, store.Event{Reason: fmt.Sprint(i)})
	}
	b.AppendEvents("default", "big", existing, store.Event{Reason: "49"}, store.Event{Reason: "50"}, store.Event{Reason: "51"})
	before = s.Stats()
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	after = s.Stats()
	if after.Txns-before.Txns != 1 || after.Deletes-before.Deletes != 1 || after.Puts-before.Puts != 4 {
		t.Errorf("stats delta: %+v -> %+v", before, after)
	}
	if tasks, _ := s.ListTasks(ctx, "default", "big"); len(tasks) != n-1 {
		t.Errorf("DeleteTask: %d tasks", len(tasks))
	}
	e, err := s.GetElection(ctx, "default", "big")
	if err != nil || e == nil || e.Epoch != 2 || e.MasterTaskID != "default.big.0.x" {
		t.Errorf("GetElection: %+v %v", e, err)
	}
	if e, err := s.GetElection(ctx, "default", "none"); e != nil || err != nil {
		t.Errorf("GetElection of none: %+v %v", e, err)
	}
	els, err := s.ListElections(ctx)
	if err != nil || len(els) != 2 || els["ns2/other"].Epoch != 5 {
		t.Errorf("ListElections: %+v %v", els, err)
	}
	ep, err := s.GetEndpoints(ctx, "default", "big")
	if err != nil || ep == nil || ep.Master.Port != 31000 {
		t.Errorf("GetEndpoints: %+v %v", ep, err)
	}
	evs, err := s.ListEvents(ctx, "default", "big")
	if err != nil || len(evs) != store.MaxEvents || evs[0].Reason != "2" || evs[49].Reason != "51" {
		t.Errorf("ListEvents: %d %v", len(evs), err)
	}
	if evs, err := s.ListEvents(ctx, "default", "none"); err != nil || len(evs) != 0 {
		t.Errorf("ListEvents of none: %v %v", evs, err)
	}
	// Empty batch: nothing written.
	before = s.Stats()
	if rev, err := s.Commit(ctx, s.NewBatch()); rev != 0 || err != nil || s.Stats().Txns != before.Txns {
		t.Errorf("empty commit: %d %v", rev, err)
	}
}

func TestWatchEndpoints(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	ch := s.WatchEndpoints(ctx, "default", "db")
	next := func() *store.Endpoints {
		t.Helper()
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("channel closed")
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no endpoints update within 10s")
		}
		return nil
	}
	if e := next(); e != nil {
		t.Fatalf("first value %+v, want nil (none published)", e)
	}
	for epoch := int64(1); epoch <= 2; epoch++ {
		b := s.NewBatch()
		b.PutEndpoints(store.Endpoints{Namespace: "default", Cluster: "db", Epoch: epoch})
		if _, err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		if e := next(); e == nil || e.Epoch != epoch {
			t.Fatalf("got %+v, want epoch %d", e, epoch)
		}
	}
	b := s.NewBatch()
	b.DeleteEndpoints("default", "db")
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if e := next(); e != nil {
		t.Fatalf("after delete got %+v, want nil", e)
	}
	cancel()
	for range ch {
	}
}

func TestFramework(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	if id, err := s.LoadFrameworkID(ctx); id != "" || err != nil {
		t.Fatalf("empty store: %q %v", id, err)
	}
	if f, err := s.GetFramework(ctx); f != nil || err != nil {
		t.Fatalf("GetFramework: %+v %v", f, err)
	}
	if err := s.PutFramework(ctx, store.FrameworkState{Name: "converge", Role: "db"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveFrameworkID(ctx, "fw-1"); err != nil {
		t.Fatal(err)
	}
	if id, err := s.LoadFrameworkID(ctx); id != "fw-1" || err != nil {
		t.Fatalf("load: %q %v", id, err)
	}
	if err := s.MarkFrameworkRemoved(ctx, "framework removed by operator"); err != nil {
		t.Fatal(err)
	}
	_, err := s.LoadFrameworkID(ctx)
	if !errors.Is(err, store.ErrFrameworkRemoved) || !strings.Contains(err.Error(), "fw-1") {
		t.Fatalf("load removed: %v", err)
	}
	f, _ := s.GetFramework(ctx)
	if f.Name != "converge" || f.Role != "db" || !f.Removed || f.RemovedMessage == "" {
		t.Fatalf("framework state: %+v", f)
	}
	if err := s.SaveFrameworkID(ctx, "fw-2"); err != nil {
		t.Fatal(err)
	}
	if id, err := s.LoadFrameworkID(ctx); id != "fw-2" || err != nil {
		t.Fatalf("load after new framework: %q %v", id, err)
	}
}

// A shard's view keeps its own framework id and leader prefix, and shares
// the clusters with every other view.
func TestShardView(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	a, b := s.Shard("0"), s.Shard("1")
	for _, tc := range []struct {
		st *store.Store
		id string
	}{{s, "fw-unsharded"}, {a, "fw-a"}, {b, "fw-b"}} {
		if err := tc.st.SaveFrameworkID(ctx, tc.id); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		st   *store.Store
		want string
	}{{s, "fw-unsharded"}, {a, "fw-a"}, {b, "fw-b"}} {
		if id, err := tc.st.LoadFrameworkID(ctx); id != tc.want || err != nil {
			t.Fatalf("framework id %q, %v; want %q", id, err, tc.want)
		}
	}
	if a.LeaderPrefix() != prefix+"/shards/0/leader/" || s.LeaderPrefix() != prefix+"/leader/" {
		t.Fatalf("leader prefixes %q, %q", a.LeaderPrefix(), s.LeaderPrefix())
	}
	if _, err := a.Create(ctx, cluster("default", "shared")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "default", "shared"); err != nil {
		t.Fatalf("a cluster written through one shard's view: %v", err)
	}
}

func TestFencedWrites(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	cli := s.Client()
	f, leaderKey := fenced(ctx, t, s, "abc")

	// While the key is ours, every write works, and conflicts stay conflicts.
	c, err := f.Create(ctx, cluster("default", "foo"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Create(ctx, cluster("default", "foo")); !store.IsAlreadyExists(err) || errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("fenced duplicate create: %v", err)
	}
	c.Spec.Task.Command = "v2"
	c2, err := f.Update(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Update(ctx, c); !store.IsConflict(err) || errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("fenced stale update: %v", err)
	}
	c2.Status.Replicas = 1
	c3, err := f.UpdateStatus(ctx, c2)
	if err != nil {
		t.Fatal(err)
	}
	b := f.NewBatch()
	b.PutTask(store.TaskRecord{ID: "t1", Namespace: "default", Cluster: "foo"})
	if _, err := f.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := f.SaveFrameworkID(ctx, "fw"); err != nil {
		t.Fatal(err)
	}

	// Deposed: the key is deleted, then even re-created by someone else.
	if _, err := cli.Delete(ctx, leaderKey); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrNotLeader) {
			t.Errorf("%s after losing leadership: %v, want ErrNotLeader", what, err)
		}
		if store.IsConflict(err) || store.IsNotFound(err) || store.IsAlreadyExists(err) {
			t.Errorf("%s: ErrNotLeader reported as another kind: %v", what, err)
		}
	}
	for round := 0; round < 2; round++ {
		_, err = f.Create(ctx, cluster("default", "bar"))
		check("Create", err)
		_, err = f.Create(ctx, cluster("default", "foo")) // would also be AlreadyExists
		check("Create existing", err)
		c3.Spec.Task.Command = "v3"
		_, err = f.Update(ctx, c3)
		check("Update", err)
		stale := dup(c) // would also be a conflict
		stale.Spec.Task.Command = "v4"
		_, err = f.Update(ctx, stale)
		check("stale Update", err)
		c3.Status.Replicas = 2
		_, err = f.UpdateStatus(ctx, c3)
		check("UpdateStatus", err)
		_, _, err = f.Delete(ctx, "default", "foo")
		check("Delete", err)
		b = f.NewBatch()
		b.PutTask(store.TaskRecord{ID: "t2", Namespace: "default", Cluster: "foo"})
		_, err = f.Commit(ctx, b)
		check("Commit", err)
		check("PutFramework", f.PutFramework(ctx, store.FrameworkState{FrameworkID: "evil"}))
		check("SaveFrameworkID", f.SaveFrameworkID(ctx, "evil"))
		check("MarkFrameworkRemoved", f.MarkFrameworkRemoved(ctx, "x"))
		// Someone else takes the same key: a new create revision.
		if _, err := cli.Put(ctx, leaderKey, "other"); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing of the deposed leader's writes landed; the unfenced store still writes.
	got, err := s.Get(ctx, "default", "foo")
	if err != nil || got.Spec.Task.Command != "v2" || got.Status.Replicas != 1 {
		t.Fatalf("state after fenced failures: %+v %v", got, err)
	}
	if id, _ := s.LoadFrameworkID(ctx); id != "fw" {
		t.Fatalf("framework id %q", id)
	}
	if _, err := s.Create(ctx, cluster("default", "bar")); err != nil {
		t.Fatal(err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	before := s.Stats()
	c, err := s.Create(ctx, cluster("default", "foo"))
	if err != nil {
		t.Fatal(err)
	}
	c.Status.Replicas = 1
	if _, err := s.UpdateStatus(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, "default", "foo"); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if d := after.Txns - before.Txns; d != 3 {
		t.Errorf("Txns +%d, want 3", d)
	}
	if d := after.Puts - before.Puts; d != 2 {
		t.Errorf("Puts +%d, want 2", d)
	}
	if d := after.Deletes - before.Deletes; d != 5 { // object, ledger, election, endpoints, events
		t.Errorf("Deletes +%d, want 5", d)
	}
	if after.Reads <= before.Reads {
		t.Error("Reads not counted")
	}
	// A fenced view shares the counters.
	f := s.Fenced("/t/leader/x", 1)
	_, _ = f.Create(ctx, cluster("default", "bar"))
	if s.Stats().Txns != after.Txns+1 {
		t.Error("fenced view does not share Stats")
	}
}

func TestNewUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	ep := "http://" + addr
	start := time.Now()
	_, err = store.New(context.Background(), store.Options{Endpoints: []string{ep}, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("New succeeded without etcd")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("New took %s to fail with a 1s dial timeout", el)
	}
	if want := "cannot reach etcd at " + ep + ": context deadline exceeded"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestNewConnects(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s, err := store.New(context.Background(), store.Options{Endpoints: srv.Endpoints(), Prefix: "/p/"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Prefix() != "/p" || s.LeaderPrefix() != "/p/leader/" {
		t.Fatalf("prefix %q", s.Prefix())
	}
	if _, err := s.Create(context.Background(), cluster("default", "x")); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Get(context.Background(), "/p/clusters/default/x")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("object not under the configured prefix: %v", err)
	}
}

// dup deep-copies through JSON, the form objects are stored in.
func dup(c *v1alpha1.Cluster) *v1alpha1.Cluster {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	out := &v1alpha1.Cluster{}
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

func TestNewTLS(t *testing.T) {
	t.Parallel()
	srv := etcdtest.StartTLS(t)
	tc, err := srv.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	s, err := store.New(ctx, store.Options{Endpoints: srv.Endpoints(), TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(ctx, cluster("default", "x")); err != nil {
		t.Fatal(err)
	}
	// No client certificate: New fails within its dial timeout.
	start := time.Now()
	_, err = store.New(ctx, store.Options{Endpoints: srv.Endpoints(), DialTimeout: time.Second,
		TLS: &tls.Config{RootCAs: tc.RootCAs, MinVersion: tls.VersionTLS12}})
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach etcd at "+srv.Endpoints()[0]) {
		t.Fatalf("New without client certificate: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("New took %s", time.Since(start))
	}
}

// TestNewAuth: etcd auth with a user whose role only covers converge's prefix.
func TestNewAuth(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	ctx := ctxT(t)
	root := srv.Client()
	const password = "s3cret-pw"
	steps := []func() error{
		func() error { _, err := root.RoleAdd(ctx, "root"); return err },
		func() error { _, err := root.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "converge"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "converge", prefix+"/", clientv3.GetPrefixRangeEnd(prefix+"/"),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "converge", password); return err },
		func() error { _, err := root.UserGrantRole(ctx, "converge", "converge"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	s, err := store.New(ctx, store.Options{Endpoints: srv.Endpoints(), Prefix: prefix, Username: "converge", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Create(ctx, cluster("default", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, c.Namespace, c.Name); err != nil {
		t.Fatal(err)
	}
	// The role does not reach outside the prefix.
	if _, err := s.Client().Put(ctx, "/elsewhere", "x"); err == nil {
		t.Fatal("write outside the prefix allowed")
	}
	// A store on another prefix is refused at New.
	if _, err := store.New(ctx, store.Options{Endpoints: srv.Endpoints(), Prefix: "/other", Username: "converge", Password: password}); err == nil {
		t.Fatal("New on a prefix outside the role succeeded")
	}
	// A wrong password is an error that names the user, not the password.
	_, err = store.New(ctx, store.Options{Endpoints: srv.Endpoints(), Prefix: prefix, Username: "converge", Password: "wrong-pw", DialTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), `rejected user "converge"`) || strings.Contains(err.Error(), "wrong-pw") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestObjectSizeLimit(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	big := cluster("default", "big")
	big.Spec.Task.Env = map[string]string{"BLOB": strings.Repeat("x", store.MaxObjectBytes)}
	if _, err := s.Create(ctx, big); err == nil || !strings.Contains(err.Error(), "byte limit") {
		t.Fatalf("oversized create: %v", err)
	}
	c, err := s.Create(ctx, cluster("default", "ok"))
	if err != nil {
		t.Fatal(err)
	}
	c.Status.Tasks = []v1alpha1.TaskStatus{{ID: "x", Message: strings.Repeat("m", store.MaxObjectBytes)}}
	if _, err := s.UpdateStatus(ctx, c); err == nil {
		t.Fatal("oversized status accepted")
	}
	if _, err := s.Get(ctx, "default", "big"); !store.IsNotFound(err) {
		t.Fatalf("oversized object was written: %v", err)
	}
}

// Fits must never say yes to a batch a stock etcd refuses for its request
// size (1.5 MiB): fill a batch with large event histories as far as Fits
// allows, and etcd at its default limits takes it.
func TestBatchFitsRequestBytes(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := ctxT(t)
	events := func(n, size int) []store.Event {
		var h []store.Event
		for i := range n {
			h = append(h, store.Event{Reason: fmt.Sprint(i), Message: strings.Repeat("m", size)})
		}
		return h
	}
	// Large writes until the next does not fit, then small ones: the batch
	// ends within a few hundred bytes of what Fits allows.
	b := s.NewBatch()
	fill := func(hist []store.Event) {
		for i := 0; ; i++ {
			next := s.NewBatch()
			next.AppendEvents("default", fmt.Sprintf("c%d-%d-%d", len(hist), len(hist[0].Message), i), hist)
			if !b.Fits(next) {
				return
			}
			b.Merge(next)
		}
	}
	fill(events(store.MaxEvents, 400))
	fill(events(8, 200))
	fill(events(1, 200))
	if b.Len() >= store.DefaultTxnOpsLimit {
		t.Fatalf("the byte limit never bound: %d writes", b.Len())
	}
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatalf("commit of %d writes, %d bytes, that Fits allowed: %v", b.Len(), b.Size(), err)
	}
	b.AppendEvents("default", "one-more", events(store.MaxEvents, 400))
	if _, err := s.Commit(ctx, b); !errors.Is(err, store.ErrTxnTooLarge) {
		t.Fatalf("commit over the byte limit: %v, want ErrTxnTooLarge", err)
	}
}
