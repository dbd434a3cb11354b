package kubeapi

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TestPutValidatesAndDefaults: a PUT of the main resource goes through the
// strategy's PrepareForUpdate and ValidateUpdate (rest.BeforeUpdate), as
// for Kubernetes' own objects: an invalid spec is refused with 422 Invalid
// naming the field, and nothing is written; a valid one is defaulted as at
// create.
func TestPutValidatesAndDefaults(t *testing.T) {
	e := startAPI(t)
	made := e.create(testCluster("db", 1))

	in := made.DeepCopy()
	in.Spec.Replicas = ptr(int32(-1))
	_, err := e.put(in, "")
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.replicas") {
		t.Fatalf("PUT with replicas -1: %v, want 422 Invalid naming spec.replicas", err)
	}
	if c := e.stored("db"); *c.Spec.Replicas != 1 || c.ResourceVersion != made.ResourceVersion {
		t.Fatalf("the refused PUT wrote: replicas %d, resourceVersion %s (was %s)", *c.Spec.Replicas, c.ResourceVersion, made.ResourceVersion)
	}

	in = made.DeepCopy()
	in.Spec.Role = ""
	out, err := e.put(in, "")
	if err != nil {
		t.Fatalf("PUT without a role: %v", err)
	}
	if want := made.Spec.Role; out.Spec.Role != want || e.stored("db").Spec.Role != want {
		t.Fatalf("PUT without a role: role %q (stored %q), want the default %q", out.Spec.Role, e.stored("db").Spec.Role, want)
	}
}
