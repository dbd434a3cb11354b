package kubeapi

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// clusterREST is the clusters resource, backed by the store.
type clusterREST struct {
	st *store.Store
	tableConvertor
}

var (
	_ rest.StandardStorage      = (*clusterREST)(nil)
	_ rest.ShortNamesProvider   = (*clusterREST)(nil)
	_ rest.SingularNameProvider = (*clusterREST)(nil)
	_ rest.CategoriesProvider   = (*clusterREST)(nil)
	_ rest.ResetFieldsStrategy  = (*clusterREST)(nil)
)

func (r *clusterREST) New() runtime.Object     { return &v1alpha1.Cluster{} }
func (r *clusterREST) NewList() runtime.Object { return &v1alpha1.ClusterList{} }
func (r *clusterREST) Destroy()                {}
func (r *clusterREST) NamespaceScoped() bool   { return true }
func (r *clusterREST) GetSingularName() string { return "cluster" }
func (r *clusterREST) ShortNames() []string    { return []string{"cl"} }
func (r *clusterREST) Categories() []string    { return []string{"converge"} }

// GetResetFields: applies to the main resource never own status.
func (r *clusterREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetFields("status")
}

func (r *clusterREST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	c, err := r.st.Get(ctx, genericapirequest.NamespaceValue(ctx), name)
	if err != nil {
		return nil, apiError(err, name)
	}
	return c, nil
}

// List reads the namespace (all of them for a cluster-wide request),
// filtered by label selector in the store and by field selector here
// (metadata.name, metadata.namespace). The whole list is one page: its
// resourceVersion is the etcd revision of the read, to watch from.
func (r *clusterREST) List(ctx context.Context, o *metainternalversion.ListOptions) (runtime.Object, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	cs, rev, err := r.st.List(ctx, ns, o.LabelSelector)
	if err != nil {
		return nil, apiError(err, "")
	}
	out := &v1alpha1.ClusterList{}
	out.ResourceVersion = fmt.Sprint(rev)
	for _, c := range cs {
		if matchesFields(o.FieldSelector, c) {
			out.Items = append(out.Items, *c)
		}
	}
	return out, nil
}

func matchesFields(sel fields.Selector, c *v1alpha1.Cluster) bool {
	if sel == nil || sel.Empty() {
		return true
	}
	return sel.Matches(fields.Set{"metadata.name": c.Name, "metadata.namespace": c.Namespace})
}

// Create runs k8s.io/apiserver's create policy (namespace, generateName,
// object meta validation) with converge's defaults and validation, then
// the store's Create; a dry run stops before the write.
func (r *clusterREST) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc, o *metav1.CreateOptions) (runtime.Object, error) {
	c := obj.(*v1alpha1.Cluster)
	rest.FillObjectMetaSystemFields(c)
	if err := rest.BeforeCreate(clusterStrategy, ctx, c); err != nil {
		return nil, err
	}
	if validate != nil {
		if err := validate(ctx, c); err != nil {
			return nil, err
		}
	}
	if isDryRun(o.DryRun) {
		c.ResourceVersion = ""
		return c, nil
	}
	made, err := r.st.Create(ctx, c)
	if err != nil {
		return nil, apiError(err, c.Name)
	}
	return made, nil
}

// Update applies objInfo (a PUT's body, a patch, an apply) to the stored
// object and writes it with the store's optimistic concurrency. A create
// through update happens only for server-side apply (forceAllowCreate).
func (r *clusterREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, o *metav1.UpdateOptions) (runtime.Object, bool, error) {
	next := func(ctx context.Context, cur *v1alpha1.Cluster) (*v1alpha1.Cluster, error) {
		return updatedCluster(ctx, objInfo, cur, clusterStrategy, updateValidation)
	}
	out, err := update(ctx, r.st, name, o.DryRun, next, r.st.Update)
	if apierrors.IsNotFound(err) && forceAllowCreate {
		return r.createOnUpdate(ctx, objInfo, createValidation, o)
	}
	if err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// updatedCluster is objInfo applied to cur, checked: the optimistic
// concurrency check (checkUpdate), strategy's BeforeUpdate unless strategy
// is nil, then validate (nil: none).
func updatedCluster(ctx context.Context, objInfo rest.UpdatedObjectInfo, cur *v1alpha1.Cluster, strategy rest.RESTUpdateStrategy, validate rest.ValidateObjectUpdateFunc) (*v1alpha1.Cluster, error) {
	obj, err := objInfo.UpdatedObject(ctx, cur)
	if err != nil {
		return nil, err
	}
	c := obj.(*v1alpha1.Cluster)
	if err := checkUpdate(c, cur, objInfo.Preconditions()); err != nil {
		return nil, err
	}
	if strategy != nil {
		if err := rest.BeforeUpdate(strategy, ctx, c, cur); err != nil {
			return nil, err
		}
	}
	if validate != nil {
		if err := validate(ctx, c, cur); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (r *clusterREST) createOnUpdate(ctx context.Context, objInfo rest.UpdatedObjectInfo, validate rest.ValidateObjectFunc, o *metav1.UpdateOptions) (runtime.Object, bool, error) {
	obj, err := objInfo.UpdatedObject(ctx, nil)
	if err != nil {
		return nil, false, err
	}
	made, err := r.Create(ctx, obj, validate, &metav1.CreateOptions{DryRun: o.DryRun, FieldManager: o.FieldManager})
	if err != nil {
		return nil, false, err
	}
	return made, true, nil
}

// checkUpdate is the optimistic concurrency check of an update: the
// resourceVersion the client sent must be the stored one (it is the
// stored one for patches and applies, which are computed on it), and
// preconditions must hold.
func checkUpdate(c, cur *v1alpha1.Cluster, pre *metav1.Preconditions) error {
	if err := checkPreconditions(pre, cur); err != nil {
		return err
	}
	if c.ResourceVersion == "" {
		return apierrors.NewInvalid(groupKind, c.Name, field.ErrorList{field.Invalid(
			field.NewPath("metadata", "resourceVersion"), c.ResourceVersion, "must be specified for an update")})
	}
	if c.ResourceVersion != cur.ResourceVersion {
		return apierrors.NewConflict(groupResource, c.Name, fmt.Errorf("%s (resourceVersion %s, now %s)",
			"the object has been modified; please apply your changes to the latest version and try again",
			c.ResourceVersion, cur.ResourceVersion))
	}
	return nil
}

func checkPreconditions(pre *metav1.Preconditions, cur *v1alpha1.Cluster) error {
	if pre == nil {
		return nil
	}
	if pre.UID != nil && *pre.UID != cur.UID {
		return apierrors.NewConflict(groupResource, cur.Name,
			fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", *pre.UID, cur.UID))
	}
	if pre.ResourceVersion != nil && *pre.ResourceVersion != cur.ResourceVersion {
		return apierrors.NewConflict(groupResource, cur.Name,
			fmt.Errorf("precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pre.ResourceVersion, cur.ResourceVersion))
	}
	return nil
}

// Delete is the store's: with finalizers (the controller's converge.io/tasks)
// it marks the cluster deleted and the controller removes it once its tasks
// are gone (deleted is false, kubectl waits); without, it is gone at once.
func (r *clusterREST) Delete(ctx context.Context, name string, validate rest.ValidateObjectFunc, o *metav1.DeleteOptions) (runtime.Object, bool, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	cur, err := r.st.Get(ctx, ns, name)
	if err != nil {
		return nil, false, apiError(err, name)
	}
	if err := checkPreconditions(o.Preconditions, cur); err != nil {
		return nil, false, err
	}
	if validate != nil {
		if err := validate(ctx, cur); err != nil {
			return nil, false, err
		}
	}
	if isDryRun(o.DryRun) {
		return cur, len(cur.Finalizers) == 0, nil
	}
	obj, gone, err := r.st.Delete(ctx, ns, name)
	if err != nil {
		return nil, false, apiError(err, name)
	}
	return obj, gone, nil
}

// DeleteCollection deletes every listed cluster (kubectl delete --all).
func (r *clusterREST) DeleteCollection(ctx context.Context, validate rest.ValidateObjectFunc, o *metav1.DeleteOptions, lo *metainternalversion.ListOptions) (runtime.Object, error) {
	obj, err := r.List(ctx, lo)
	if err != nil {
		return nil, err
	}
	list := obj.(*v1alpha1.ClusterList)
	for i := range list.Items {
		c := &list.Items[i]
		nctx := genericapirequest.WithNamespace(ctx, c.Namespace)
		if _, _, err := r.Delete(nctx, c.Name, validate, o); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return list, nil
}

func isDryRun(dryRun []string) bool { return len(dryRun) > 0 }

// apiError turns a store error into the API's Status error: 404, 409
// (AlreadyExists or Conflict), else 500 with the store's message.
func apiError(err error, name string) error {
	switch {
	case store.IsNotFound(err):
		return apierrors.NewNotFound(groupResource, name)
	case store.IsAlreadyExists(err):
		return apierrors.NewAlreadyExists(groupResource, name)
	case store.IsConflict(err):
		return apierrors.NewConflict(groupResource, name, err)
	}
	return apierrors.NewInternalError(err)
}
