package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/kstatus/watcher"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// TestFluxApplyAndHealth is Flux's kustomize-controller path, built from the
// libraries it uses: fluxcd/pkg/ssa's ResourceManager server-side applies the
// examples through converge dev's Kubernetes API (a controller-runtime
// client, field manager kustomize-controller), then WaitForSet polls their
// health with kstatus (fluxcd/cli-utils) until every one is Current; a
// second apply finds nothing to change. minimal.yaml and stateless-web.yaml
// in an in-process converge dev (cheap); TestFluxElectingExample runs
// replicated-db.yaml, which elects a master through `converge executor`, in
// a converge dev process. postgres.yaml and mariadb.yaml need real database
// servers (their own tests run them).
func TestFluxApplyAndHealth(t *testing.T) {
	k := startDevWithAPI(t, 2)
	man, _, _ := fluxManager(t, k.kubeconfig)
	objs := readExamples(t, "minimal.yaml", "stateless-web.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs, err := man.ApplyAllStaged(ctx, objs, ssa.DefaultApplyOptions())
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, e := range cs.Entries {
		if e.Action != ssa.CreatedAction {
			t.Fatalf("apply: %s %s, want created\n%s", e.Subject, e.Action, cs)
		}
	}
	if err := man.WaitForSetWithContext(ctx, cs.ToObjMetadataSet(), ssa.WaitOptions{Interval: time.Second, Timeout: 2 * time.Minute}); err != nil {
		t.Fatalf("health: %v", err)
	}
	// Current means converged: kstatus must not have read a cluster as
	// Current before the controller made it Ready.
	for _, o := range objs {
		if c := k.get(o.GetName()); !v1alpha1.IsReady(c) {
			t.Fatalf("kstatus read %s as Current, but it is not Ready: %+v", o.GetName(), c.Status)
		}
	}

	again, err := man.ApplyAllStaged(ctx, objs, ssa.DefaultApplyOptions())
	if err != nil {
		t.Fatalf("second apply: %v", err)
	}
	for _, e := range again.Entries {
		if e.Action != ssa.UnchangedAction {
			t.Fatalf("second apply: %s %s, want unchanged\n%s", e.Subject, e.Action, again)
		}
	}
}

// fluxManager is kustomize-controller's ResourceManager (a controller-runtime
// client on the kubeconfig, field manager kustomize-controller, kstatus
// polling), the REST mapper it discovers with and a dynamic client.
func fluxManager(t *testing.T, kubeconfig string) (*ssa.ResourceManager, meta.RESTMapper, dynamic.Interface) {
	t.Helper()
	ctrllog.SetLogger(logr.Discard()) // else controller-runtime complains that it has none
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	man := ssa.NewResourceManager(c, polling.NewStatusPoller(c, mapper, polling.Options{}),
		ssa.Owner{Field: "kustomize-controller", Group: "kustomize.toolkit.fluxcd.io"})
	return man, mapper, dyn
}

// readExamples reads manifests/examples/NAME... as Flux does, in namespace
// default (kustomize-controller sets the target namespace).
func readExamples(t *testing.T, names ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, name := range names {
		f, err := os.Open(filepath.Join("..", "..", "manifests", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ssautils.ReadObjects(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, o := range got {
			o.SetNamespace("default")
		}
		objs = append(objs, got...)
	}
	return objs
}

// TestFluxElectingExample: Flux's path against an example that elects a
// master (replicated-db.yaml, election.strategy position), through the
// Kubernetes API of a real `converge dev` process (its own binary runs
// `converge executor` for the election): the ResourceManager creates it and
// WaitForSet's kstatus polling reads it Current; a kstatus watcher, started
// before, sees every state the API serves and the first it reads Current is
// Ready with a master elected. A change of spec.replicas applied the same
// way reads InProgress, then Current again once converged, with the same
// master (a scale-down never needs an election).
func TestFluxElectingExample(t *testing.T) {
	data := t.TempDir()
	startDevProcessIn(t, data, "--agents", "3", "--api-listen", "127.0.0.1:0")
	man, mapper, dyn := fluxManager(t, filepath.Join(data, "kubeconfig"))
	objs := readExamples(t, "replicated-db.yaml")
	db, set := objs[0], object.UnstructuredSetToObjMetadataSet(objs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	events := watcher.NewDefaultStatusWatcher(dyn, mapper).Watch(ctx, set, watcher.Options{})
	wait := ssa.WaitOptions{Interval: 250 * time.Millisecond, Timeout: time.Minute}

	cs, err := man.ApplyAllStaged(ctx, objs, ssa.DefaultApplyOptions())
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(cs.Entries) != 1 || cs.Entries[0].Action != ssa.CreatedAction {
		t.Fatalf("apply: want replicated-db created:\n%s", cs)
	}
	if err := man.WaitForSetWithContext(ctx, set, wait); err != nil {
		t.Fatalf("health: %v", err)
	}
	master := checkElected(t, nextStatus(t, events, status.CurrentStatus), 3)

	if err := unstructured.SetNestedField(db.Object, int64(2), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	e, err := man.Apply(ctx, db, ssa.DefaultApplyOptions())
	if err != nil {
		t.Fatalf("apply replicas 2: %v", err)
	}
	if e.Action != ssa.ConfiguredAction {
		t.Fatalf("apply replicas 2: %s, want configured", e)
	}
	nextStatus(t, events, status.InProgressStatus)
	// Scale-down removes the highest non-master ordinal: the master stays.
	if after := checkElected(t, nextStatus(t, events, status.CurrentStatus), 2); *after != *master {
		t.Fatalf("the scale-down changed the master: %+v, then %+v", *master, *after)
	}
	if err := man.WaitForSetWithContext(ctx, set, wait); err != nil {
		t.Fatalf("health after the change: %v", err)
	}
}

// nextStatus reads the watcher's events until one says want and returns
// the object it read; an error or a Failed status before it fails the test.
func nextStatus(t *testing.T, events <-chan event.Event, want status.Status) *unstructured.Unstructured {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("the kstatus watcher stopped before %s", want)
			}
			switch {
			case e.Type == event.ErrorEvent:
				t.Fatalf("kstatus watcher: %v", e.Error)
			case e.Type != event.ResourceUpdateEvent:
			case e.Resource.Status == want:
				t.Logf("kstatus: %s (%s)", e.Resource.Status, e.Resource.Message)
				return e.Resource.Resource
			case e.Resource.Status == status.FailedStatus:
				t.Fatalf("kstatus: Failed while waiting for %s: %s", want, e.Resource.Message)
			default:
				t.Logf("kstatus: %s (%s), waiting for %s", e.Resource.Status, e.Resource.Message, want)
			}
		case <-timeout:
			t.Fatalf("kstatus did not read %s within a minute", want)
		}
	}
}

// checkElected: what kstatus read Current, u, is Ready for its generation
// with replicas ready members and a master elected, which it returns.
func checkElected(t *testing.T, u *unstructured.Unstructured, replicas int32) *v1alpha1.MasterStatus {
	t.Helper()
	var c v1alpha1.Cluster
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
		t.Fatal(err)
	}
	if !v1alpha1.IsReady(&c) || c.Status.ObservedGeneration != c.Generation || c.Status.ReadyReplicas != replicas ||
		c.Status.Master == nil || c.Status.Master.Epoch == 0 {
		t.Fatalf("kstatus read replicated-db Current, but it is not Ready with %d members and a master: generation %d, %+v",
			replicas, c.Generation, c.Status)
	}
	t.Logf("Current: generation %d, %d/%d ready, master ordinal %d in epoch %d",
		c.Generation, c.Status.ReadyReplicas, replicas, c.Status.Master.Ordinal, c.Status.Master.Epoch)
	return c.Status.Master
}
