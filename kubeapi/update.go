package kubeapi

import (
	"context"

	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// maxUpdateAttempts bounds re-reading after a store conflict in an update, as
// k8s.io/apiserver's GuaranteedUpdate retries: a patch or an apply is
// recomputed on the new object, a PUT with a stale resourceVersion is a 409
// (checkUpdate, in the next step).
const maxUpdateAttempts = 5

// nextFunc computes the object to write from the stored one: the request's
// object (a PUT's body, a patch or an apply computed on cur) checked against
// cur (checkUpdate), with the update policy and validation applied. An
// error ends the update as it is.
type nextFunc func(ctx context.Context, cur *v1alpha1.Cluster) (*v1alpha1.Cluster, error)

// writeFunc writes the computed object with the store's optimistic
// concurrency (a store Conflict when it was written meanwhile).
type writeFunc func(ctx context.Context, next *v1alpha1.Cluster) (*v1alpha1.Cluster, error)

// update is the read-modify-write loop of every update, of the resource as
// of its status and scale subresources: read the stored object, compute the
// next one, stop there on a dry run, else write it, and on a store conflict
// (written meanwhile) read again and recompute. A missing object is the
// API's NotFound.
func update(ctx context.Context, st *store.Store, name string, dryRun []string, next nextFunc, write writeFunc) (*v1alpha1.Cluster, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	for attempt := 1; ; attempt++ {
		cur, err := st.Get(ctx, ns, name)
		if err != nil {
			return nil, apiError(err, name)
		}
		c, err := next(ctx, cur)
		if err != nil {
			return nil, err
		}
		if isDryRun(dryRun) {
			return c, nil
		}
		out, err := write(ctx, c)
		if store.IsConflict(err) && attempt < maxUpdateAttempts {
			continue
		}
		if err != nil {
			return nil, apiError(err, name)
		}
		return out, nil
	}
}
