package cli

import (
	"context"
	"fmt"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// scaleAttempts bounds the re-reads after a conflicting write.
const scaleAttempts = 5

// Scale sets spec.replicas of the named cluster, as kubectl scale does. With
// current set, the cluster must have that many desired replicas (kubectl's
// --current-replicas precondition), checked against the object the write is
// conditioned on. A write that loses a race to another re-reads and tries
// again. It reports whether anything was written (nothing when the cluster
// already has that many).
func Scale(ctx context.Context, st *store.Store, ns, name string, replicas int32, current *int32) (bool, error) {
	for attempt := 1; ; attempt++ {
		c, err := st.Get(ctx, ns, name)
		if store.IsNotFound(err) {
			return false, fmt.Errorf("%s not found in namespace %s", Ref(name), ns)
		} else if err != nil {
			return false, err
		}
		if c.DeletionTimestamp != nil {
			return false, fmt.Errorf("%s is being deleted", Ref(name))
		}
		if have := Desired(c); current != nil && have != *current {
			return false, fmt.Errorf("%s: expected replicas to be %d, was %d", Ref(name), *current, have)
		}
		if c.Spec.Replicas != nil && *c.Spec.Replicas == replicas {
			return false, nil
		}
		c.Spec.Replicas = &replicas
		check := c.DeepCopy()
		v1alpha1.SetDefaults(check)
		if errs := v1alpha1.Validate(check); len(errs) > 0 {
			return false, fmt.Errorf("%s: %w", Ref(name), errs.ToAggregate())
		}
		_, err = st.Update(ctx, c)
		if store.IsConflict(err) && attempt < scaleAttempts {
			continue // changed meanwhile: read it again
		}
		if err != nil {
			return false, fmt.Errorf("scale %s: %w", Ref(name), err)
		}
		return true, nil
	}
}
