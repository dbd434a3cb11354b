package kubeapi

import (
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// TestKstatusReadsClusters: kstatus (Flux's fork, which its health checks
// use) computes a cluster's health from what the API serves: InProgress
// when just created (the controller has not observed it: observedGeneration
// 0 is served, not left out, else kstatus would read Current), InProgress
// while Reconciling, Failed when Stalled, Current once converged.
func TestKstatusReadsClusters(t *testing.T) {
	e := startAPI(t)
	made := e.create(testCluster("db", 1))
	dyn, err := dynamic.NewForConfig(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	clusters := dyn.Resource(schema.GroupVersionResource{Group: GroupVersion.Group, Version: GroupVersion.Version, Resource: "clusters"}).Namespace("default")
	health := func() status.Status {
		t.Helper()
		u, err := clusters.Get(e.ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := status.Compute(u)
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	if s := health(); s != status.InProgressStatus {
		t.Fatalf("a cluster not yet observed: kstatus %s, want InProgress", s)
	}

	cond := func(typ string, s metav1.ConditionStatus) metav1.Condition {
		return metav1.Condition{Type: typ, Status: s, Reason: "Test", ObservedGeneration: 1, LastTransitionTime: metav1.Now()}
	}
	for _, step := range []struct {
		ready, reconciling, stalled metav1.ConditionStatus
		want                        status.Status
	}{
		{metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, status.InProgressStatus},
		{metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, status.FailedStatus},
		{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, status.CurrentStatus},
	} {
		cur := e.stored("db")
		cur.Status.ObservedGeneration = made.Generation
		cur.Status.Conditions = []metav1.Condition{
			cond(v1alpha1.ConditionReady, step.ready), cond(v1alpha1.ConditionReconciling, step.reconciling), cond(v1alpha1.ConditionStalled, step.stalled)}
		if _, err := e.put(cur, "status"); err != nil {
			t.Fatal(err)
		}
		if s := health(); s != step.want {
			t.Fatalf("Ready %s, Reconciling %s, Stalled %s: kstatus %s, want %s", step.ready, step.reconciling, step.stalled, s, step.want)
		}
	}
}
