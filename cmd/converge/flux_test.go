package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// TestFluxApplyAndHealth is Flux's kustomize-controller path, built from the
// libraries it uses: fluxcd/pkg/ssa's ResourceManager server-side applies the
// examples through converge dev's Kubernetes API (a controller-runtime
// client, field manager kustomize-controller), then WaitForSet polls their
// health with kstatus (fluxcd/cli-utils) until every one is Current; a
// second apply finds nothing to change. minimal.yaml and stateless-web.yaml
// only: the others elect a master through `converge executor`, which an
// in-process converge dev cannot serve (its binary is the test binary), and
// postgres.yaml and mariadb.yaml need real database servers.
func TestFluxApplyAndHealth(t *testing.T) {
	k := startDevWithAPI(t, 2)
	cfg, err := clientcmd.BuildConfigFromFlags("", k.kubeconfig)
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
	man := ssa.NewResourceManager(c, polling.NewStatusPoller(c, mapper, polling.Options{}),
		ssa.Owner{Field: "kustomize-controller", Group: "kustomize.toolkit.fluxcd.io"})

	var objs []*unstructured.Unstructured
	for _, name := range []string{"minimal.yaml", "stateless-web.yaml"} {
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
			o.SetNamespace("default") // kustomize-controller sets the target namespace
		}
		objs = append(objs, got...)
	}

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
