package kubeapi

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

// apiEnv is the API server over a store on real embedded etcd, as converge
// dev serves it (its own PKI, a client certificate), and a client-go REST
// client for converge.io/v1alpha1 built from the kubeconfig it wrote.
type apiEnv struct {
	t   *testing.T
	ctx context.Context
	st  *store.Store
	rc  *restclient.RESTClient
	cfg *restclient.Config
}

func startAPI(t *testing.T) *apiEnv {
	t.Helper()
	etcd := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	st, err := store.New(ctx, store.Options{Endpoints: etcd.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	running, err := StartDev(actx, st, t.TempDir(), "127.0.0.1:0", logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if err := running.Wait(); err != nil {
			t.Errorf("API server: %v", err)
		}
		st.Close()
		cancel()
	})
	kc, err := ReadDevKubeconfig(filepath.Dir(running.Kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	gv := GroupVersion
	rcfg := restclient.CopyConfig(cfg)
	rcfg.GroupVersion = &gv
	rcfg.APIPath = "/apis"
	rcfg.NegotiatedSerializer = Codecs.WithoutConversion()
	rc, err := restclient.RESTClientFor(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{t: t, ctx: ctx, st: st, rc: rc, cfg: cfg}
	e.waitReady()
	return e
}

// waitReady waits until the server answers (it serves in the background).
func (e *apiEnv) waitReady() {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := e.rc.Get().AbsPath("/version").Do(e.ctx).Error()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("API server not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testCluster(name string, replicas int32) *v1alpha1.Cluster {
	return &v1alpha1.Cluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: v1alpha1.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.ClusterSpec{
			Replicas: &replicas,
			Task: v1alpha1.TaskSpec{
				Command:   "sleep 1000",
				Resources: v1alpha1.Resources{CPUs: ptr(resource.MustParse("100m")), Mem: ptr(resource.MustParse("64Mi"))},
			},
		},
	}
}

func (e *apiEnv) create(c *v1alpha1.Cluster) *v1alpha1.Cluster {
	e.t.Helper()
	out := &v1alpha1.Cluster{}
	if err := e.rc.Post().Namespace(c.Namespace).Resource("clusters").Body(c).Do(e.ctx).Into(out); err != nil {
		e.t.Fatalf("create %s: %v", c.Name, err)
	}
	return out
}

// put PUTs c to the resource or a subresource ("" or "status").
func (e *apiEnv) put(c *v1alpha1.Cluster, sub string) (*v1alpha1.Cluster, error) {
	out := &v1alpha1.Cluster{}
	req := e.rc.Put().Namespace(c.Namespace).Resource("clusters").Name(c.Name)
	if sub != "" {
		req = req.SubResource(sub)
	}
	return out, req.Body(c).Do(e.ctx).Into(out)
}

func (e *apiEnv) stored(name string) *v1alpha1.Cluster {
	e.t.Helper()
	c, err := e.st.Get(e.ctx, "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestStatusSubresource: /status writes status only (a PUT's or a patch's
// spec is ignored), and the main resource writes everything but status,
// as for Kubernetes' own objects and custom resources with a status
// subresource.
func TestStatusSubresource(t *testing.T) {
	e := startAPI(t)
	made := e.create(testCluster("db", 1))

	// PUT /status with a changed spec: status written, spec kept.
	in := made.DeepCopy()
	in.Spec.Replicas = ptr(int32(7))
	in.Status.ReadyReplicas = 1
	in.Status.ObservedGeneration = 1
	out, err := e.put(in, "status")
	if err != nil {
		t.Fatalf("PUT status: %v", err)
	}
	for _, c := range []*v1alpha1.Cluster{out, e.stored("db")} {
		if c.Status.ReadyReplicas != 1 || c.Status.ObservedGeneration != 1 {
			t.Fatalf("PUT status: status not written: %+v", c.Status)
		}
		if *c.Spec.Replicas != 1 || c.Generation != 1 {
			t.Fatalf("PUT status changed the spec: replicas %d, generation %d", *c.Spec.Replicas, c.Generation)
		}
	}

	// PATCH /status (merge patch) with a spec change: the same.
	patch := []byte(`{"spec":{"replicas":9},"status":{"readyReplicas":0,"replicas":1}}`)
	if err := e.rc.Patch(types.MergePatchType).Namespace("default").Resource("clusters").Name("db").
		SubResource("status").Body(patch).Do(e.ctx).Error(); err != nil {
		t.Fatalf("PATCH status: %v", err)
	}
	if c := e.stored("db"); c.Status.Replicas != 1 || c.Status.ReadyReplicas != 0 || *c.Spec.Replicas != 1 {
		t.Fatalf("PATCH status: replicas %d, status %+v", *c.Spec.Replicas, c.Status)
	}

	// PUT of the main resource with a changed status: spec written, status kept.
	cur := e.stored("db")
	in = cur.DeepCopy()
	in.Spec.Replicas = ptr(int32(2))
	in.Status.Replicas = 5
	in.Status.ObservedGeneration = 42
	out, err = e.put(in, "")
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	for _, c := range []*v1alpha1.Cluster{out, e.stored("db")} {
		if *c.Spec.Replicas != 2 || c.Generation != 2 {
			t.Fatalf("PUT: spec not written: replicas %d, generation %d", *c.Spec.Replicas, c.Generation)
		}
		if c.Status.Replicas != 1 || c.Status.ObservedGeneration != 1 {
			t.Fatalf("PUT of the resource changed status: %+v", c.Status)
		}
	}
}

// TestStalePutIsConflictStatus: a PUT carrying a resourceVersion that is no
// longer the stored one is refused with 409 Conflict, as a metav1.Status
// (the API conventions' error body), on the resource, its status and its
// scale; nothing is written.
func TestStalePutIsConflictStatus(t *testing.T) {
	e := startAPI(t)
	old := e.create(testCluster("db", 1))
	newer := old.DeepCopy()
	newer.Spec.Replicas = ptr(int32(2))
	if _, err := e.put(newer, ""); err != nil {
		t.Fatal(err)
	}
	before := e.stored("db")

	stale := old.DeepCopy()
	stale.Spec.Replicas = ptr(int32(3))
	stale.Status.Replicas = 3
	scale := []byte(`{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"db","namespace":"default","resourceVersion":"` +
		old.ResourceVersion + `"},"spec":{"replicas":3}}`)
	for _, sub := range []string{"", "status", "scale"} {
		req := e.rc.Put().Namespace("default").Resource("clusters").Name("db")
		if sub != "" {
			req = req.SubResource(sub)
		}
		if sub == "scale" {
			req = req.Body(scale)
		} else {
			req = req.Body(stale)
		}
		var code int
		body, err := req.Do(e.ctx).StatusCode(&code).Raw()
		if !apierrors.IsConflict(err) || code != 409 {
			t.Fatalf("stale PUT %q: code %d, err %v; want 409 Conflict", sub, code, err)
		}
		var st metav1.Status
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("stale PUT %q: body is not a Status: %v\n%s", sub, err, body)
		}
		if st.Kind != "Status" || st.Status != metav1.StatusFailure || st.Code != 409 ||
			st.Reason != metav1.StatusReasonConflict || st.Details == nil || st.Details.Name != "db" || st.Details.Kind != "clusters" {
			t.Fatalf("stale PUT %q: Status %+v", sub, st)
		}
	}
	if after := e.stored("db"); after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("a refused PUT wrote: resourceVersion %s -> %s", before.ResourceVersion, after.ResourceVersion)
	}
}

func ptr[T any](v T) *T { return &v }

// record appends events to a cluster's history, as the controller does, and
// returns the etcd revision of the write.
func (e *apiEnv) record(name string, add ...store.Event) int64 {
	e.t.Helper()
	existing, err := e.st.ListEvents(e.ctx, "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	b := e.st.NewBatch()
	b.AppendEvents("default", name, existing, add...)
	rev, err := e.st.Commit(e.ctx, b)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// TestEvents: the store's event histories are core/v1 events, selected by
// the field selectors kubectl 1.32 sends (kubectl events --for: kind,
// apiVersion, name; describe: name, namespace, kind, uid), got by name, and
// watched from a list's resourceVersion; an unsupported field label is a
// 400 naming it.
func TestEvents(t *testing.T) {
	e := startAPI(t)
	web := e.create(testCluster("web", 1))
	e.create(testCluster("db", 1))
	t0 := time.Now().Truncate(time.Second)
	e.record("web", store.Event{Time: t0, Type: "Normal", Reason: "Launched", Message: "launched web-0"},
		store.Event{Time: t0, Type: "Normal", Reason: "Elected", Message: "web-0 is master"})
	e.record("db", store.Event{Time: t0, Type: "Warning", Reason: "TaskFailed", Message: "db-0 failed"})
	cs, err := kubernetes.NewForConfig(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	evs := cs.CoreV1().Events("default")

	forWeb := fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.kind", "Cluster"),
		fields.OneTermEqualSelector("involvedObject.apiVersion", "converge.io/v1alpha1"),
		fields.OneTermEqualSelector("involvedObject.name", "web")).String()
	uid := string(web.UID)
	describeWeb := evs.GetFieldSelector(ptr("web"), ptr("default"), ptr("Cluster"), &uid).String()
	for _, sel := range []string{forWeb, describeWeb} {
		l, err := evs.List(e.ctx, metav1.ListOptions{FieldSelector: sel, Limit: 500})
		if err != nil {
			t.Fatalf("list %s: %v", sel, err)
		}
		if len(l.Items) != 2 || l.Items[0].Reason != "Launched" || l.Items[1].Reason != "Elected" ||
			l.Items[1].InvolvedObject.UID != web.UID || l.Items[1].Source.Component != eventSource {
			t.Fatalf("list %s: %+v", sel, l.Items)
		}
		if l.Items[0].Name == l.Items[1].Name {
			t.Fatalf("two events of one instant share the name %s", l.Items[0].Name)
		}
	}
	all, err := evs.List(e.ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil || len(all.Items) != 1 || all.Items[0].InvolvedObject.Name != "db" {
		t.Fatalf("list type=Warning: %v %+v", err, all)
	}
	got, err := evs.Get(e.ctx, all.Items[0].Name, metav1.GetOptions{})
	if err != nil || got.Message != "db-0 failed" {
		t.Fatalf("get %s: %v %+v", all.Items[0].Name, err, got)
	}
	if _, err := evs.List(e.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=x"}); !apierrors.IsBadRequest(err) ||
		!strings.Contains(err.Error(), "spec.nodeName") {
		t.Fatalf("unsupported field label: %v, want 400 naming it", err)
	}

	// Watch from the list: only web's new event arrives.
	w, err := evs.Watch(e.ctx, metav1.ListOptions{FieldSelector: forWeb, ResourceVersion: all.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e.record("db", store.Event{Time: t0.Add(time.Second), Type: "Normal", Reason: "Launched", Message: "db-1"})
	e.record("web", store.Event{Time: t0.Add(time.Second), Type: "Normal", Reason: "Scaled", Message: "web to 2"})
	select {
	case ev := <-w.ResultChan():
		got, ok := ev.Object.(*corev1.Event)
		if ev.Type != watch.Added || !ok || got.Reason != "Scaled" {
			t.Fatalf("watch: %s %+v", ev.Type, ev.Object)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch: no event within 30s")
	}

	// A compacted resourceVersion is 410 Gone: the client lists again.
	now, err := evs.List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := strconv.ParseInt(now.ResourceVersion, 10, 64)
	if _, err := e.st.Client().Compact(e.ctx, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := evs.Watch(e.ctx, metav1.ListOptions{ResourceVersion: all.ResourceVersion}); !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from a compacted resourceVersion: %v, want 410", err)
	}
}
