package kubeapi

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// strategy is the create and update policy k8s.io/apiserver's rest.BeforeCreate
// and rest.BeforeUpdate apply: defaults and validation are apis/v1alpha1's,
// the same the converge CLI applies, so a manifest is accepted or refused
// alike by both.
type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

var clusterStrategy = strategy{Scheme, names.SimpleNameGenerator}

func (strategy) NamespaceScoped() bool { return true }

// PrepareForCreate drops what only the controller writes.
func (strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	c := obj.(*v1alpha1.Cluster)
	c.Status = v1alpha1.ClusterStatus{}
	c.Generation = 1
	setDefaults(c)
}

// PrepareForUpdate keeps the stored status: status is written through the
// status subresource only.
func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	c, was := obj.(*v1alpha1.Cluster), old.(*v1alpha1.Cluster)
	c.Status = was.Status
	setDefaults(c)
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return v1alpha1.Validate(obj.(*v1alpha1.Cluster))
}

// ValidateUpdate also refuses new finalizers on a cluster being deleted, as
// the store does (with Kubernetes' wording).
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	c, was := obj.(*v1alpha1.Cluster), old.(*v1alpha1.Cluster)
	errs := v1alpha1.Validate(c)
	errs = append(errs, v1alpha1.ValidateVolumesUpdate(c, was)...)
	if was.DeletionTimestamp != nil {
		for _, f := range c.Finalizers {
			if !slices.Contains(was.Finalizers, f) {
				errs = append(errs, field.Forbidden(field.NewPath("metadata", "finalizers"),
					"no new finalizers can be added if the object is being deleted, found new finalizer "+f))
			}
		}
	}
	return errs
}

func (strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }
func (strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}
func (strategy) Canonicalize(runtime.Object)              {}
func (strategy) AllowCreateOnUpdate(context.Context) bool { return false }

// AllowUnconditionalUpdate is false, as for custom resources: a PUT must
// carry the resourceVersion it read.
func (strategy) AllowUnconditionalUpdate(context.Context) bool { return false }

// resetFields are the fields a server-side apply to the main resource never
// owns (status) and to the status subresource never owns (spec and metadata).
func resetFields(of string) map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(GroupVersion.String()): fieldpath.NewSet(fieldpath.MakePathOrDie(of)),
	}
}
