package kubeapi

import (
	"context"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// statusREST is clusters/status: the controller's part of the object,
// written with the store's UpdateStatus (spec and metadata are kept).
type statusREST struct{ st *store.Store }

var (
	_ rest.Getter              = (*statusREST)(nil)
	_ rest.Updater             = (*statusREST)(nil)
	_ rest.ResetFieldsStrategy = (*statusREST)(nil)
)

func (r *statusREST) New() runtime.Object { return &v1alpha1.Cluster{} }
func (r *statusREST) Destroy()            {}

// GetResetFields: applies to status never own the spec.
func (r *statusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetFields("spec")
}

func (r *statusREST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	c, err := r.st.Get(ctx, genericapirequest.NamespaceValue(ctx), name)
	if err != nil {
		return nil, apiError(err, name)
	}
	return c, nil
}

// Update writes the status of objInfo's object (a PUT's body, a patch, an
// apply) with the store's UpdateStatus: its spec and metadata are ignored.
func (r *statusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, _ rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, _ bool, o *metav1.UpdateOptions) (runtime.Object, bool, error) {
	next := func(ctx context.Context, cur *v1alpha1.Cluster) (*v1alpha1.Cluster, error) {
		c, err := updatedCluster(ctx, objInfo, cur, nil, updateValidation)
		if err != nil {
			return nil, err
		}
		// What UpdateStatus writes: the stored object with the new status.
		out := cur.DeepCopy()
		out.Status = c.Status
		return out, nil
	}
	out, err := update(ctx, r.st, name, o.DryRun, next, r.st.UpdateStatus)
	if err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// scaleREST is clusters/scale, autoscaling/v1 Scale over spec.replicas, so
// `kubectl scale` (and anything else that scales through the scale
// subresource) works.
type scaleREST struct{ st *store.Store }

var (
	_ rest.Getter                   = (*scaleREST)(nil)
	_ rest.Updater                  = (*scaleREST)(nil)
	_ rest.GroupVersionKindProvider = (*scaleREST)(nil)
)

func (r *scaleREST) New() runtime.Object { return &autoscalingv1.Scale{} }
func (r *scaleREST) Destroy()            {}

func (r *scaleREST) GroupVersionKind(schema.GroupVersion) schema.GroupVersionKind {
	return autoscalingv1.SchemeGroupVersion.WithKind("Scale")
}

func (r *scaleREST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	c, err := r.st.Get(ctx, genericapirequest.NamespaceValue(ctx), name)
	if err != nil {
		return nil, apiError(err, name)
	}
	return toScale(c), nil
}

// Update sets spec.replicas from objInfo's Scale; a Scale without a
// resourceVersion is unconditional, as for Deployments.
func (r *scaleREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, _ rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, _ bool, o *metav1.UpdateOptions) (runtime.Object, bool, error) {
	next := func(ctx context.Context, cur *v1alpha1.Cluster) (*v1alpha1.Cluster, error) {
		old := toScale(cur)
		obj, err := objInfo.UpdatedObject(ctx, old)
		if err != nil {
			return nil, err
		}
		scale := obj.(*autoscalingv1.Scale)
		if scale.ResourceVersion == "" {
			scale.ResourceVersion = cur.ResourceVersion
		}
		c := cur.DeepCopy()
		c.ResourceVersion = scale.ResourceVersion
		c.Spec.Replicas = &scale.Spec.Replicas
		if err := checkUpdate(c, cur, objInfo.Preconditions()); err != nil {
			return nil, err
		}
		if err := rest.BeforeUpdate(clusterStrategy, ctx, c, cur); err != nil {
			return nil, err
		}
		if updateValidation != nil {
			if err := updateValidation(ctx, scale, old); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	out, err := update(ctx, r.st, name, o.DryRun, next, r.st.Update)
	if err != nil {
		return nil, false, err
	}
	return toScale(out), false, nil
}

func toScale(c *v1alpha1.Cluster) *autoscalingv1.Scale {
	replicas := v1alpha1.DefaultReplicas
	if c.Spec.Replicas != nil {
		replicas = *c.Spec.Replicas
	}
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name: c.Name, Namespace: c.Namespace, UID: c.UID,
			ResourceVersion: c.ResourceVersion, CreationTimestamp: c.CreationTimestamp,
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: c.Status.Replicas},
	}
}
