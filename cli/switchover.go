package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// SwitchoverRequest is a recorded switchover request.
type SwitchoverRequest struct {
	At   string // its identity (AnnotationSwitchoverAt)
	From v1alpha1.MasterStatus
	To   *int32
}

// RequestSwitchover checks that cluster ns/name can switch over (to the
// ordinal to, if given) and records the request in its annotations, where
// the controller acts on it (Kubernetes style: the object holds the
// request, status.switchover the outcome). Checks follow Patroni's
// (api.py is_failover_possible): a position election, a master now, a
// target that is another running member, no request under way.
func RequestSwitchover(ctx context.Context, st *store.Store, ns, name string, to *int32, now time.Time) (*SwitchoverRequest, error) {
	for attempt := 0; ; attempt++ {
		c, err := st.Get(ctx, ns, name)
		if store.IsNotFound(err) {
			return nil, fmt.Errorf("%s not found in namespace %s", Ref(name), ns)
		}
		if err != nil {
			return nil, err
		}
		if err := switchoverPossible(c, to); err != nil {
			return nil, err
		}
		req := &SwitchoverRequest{At: now.UTC().Format(time.RFC3339Nano), From: *c.Status.Master, To: to}
		obj := c.DeepCopy()
		if obj.Annotations == nil {
			obj.Annotations = map[string]string{}
		}
		obj.Annotations[v1alpha1.AnnotationSwitchoverAt] = req.At
		obj.Annotations[v1alpha1.AnnotationSwitchoverFrom] = req.From.TaskID
		delete(obj.Annotations, v1alpha1.AnnotationSwitchoverTo)
		if to != nil {
			obj.Annotations[v1alpha1.AnnotationSwitchoverTo] = strconv.Itoa(int(*to))
		}
		_, err = st.Update(ctx, obj)
		if store.IsConflict(err) && attempt < 3 {
			continue // the controller wrote meanwhile: check again
		}
		if err != nil {
			return nil, fmt.Errorf("record the switchover request on %s: %w", Ref(name), err)
		}
		return req, nil
	}
}

func switchoverPossible(c *v1alpha1.Cluster, to *int32) error {
	ref := Ref(c.Name)
	if s := c.Spec.Election.Strategy; s != v1alpha1.ElectionPosition {
		if s == "" {
			s = v1alpha1.ElectionNone
		}
		return fmt.Errorf("%s elects its master by %q: a switchover needs spec.election.strategy position", ref, s)
	}
	if c.DeletionTimestamp != nil {
		return fmt.Errorf("%s is being deleted", ref)
	}
	if at := c.Annotations[v1alpha1.AnnotationSwitchoverAt]; at != "" {
		sw := c.Status.Switchover
		if sw == nil || sw.RequestedAt != at || sw.Phase == v1alpha1.SwitchoverDemoting || sw.Phase == v1alpha1.SwitchoverElecting {
			return fmt.Errorf("%s: the switchover requested at %s is still under way (see converge describe cluster %s)", ref, at, c.Name)
		}
	}
	m := c.Status.Master
	if m == nil {
		why := ""
		if k := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionReady); k != nil && k.Message != "" {
			why = ": " + oneLine(k.Message)
		}
		return fmt.Errorf("%s has no master to switch over from%s", ref, why)
	}
	running := map[int32]bool{}
	for _, t := range c.Status.Tasks {
		if t.State == "TASK_RUNNING" && t.ID != m.TaskID {
			running[t.Ordinal] = true
		}
	}
	if to == nil {
		if len(running) == 0 {
			return fmt.Errorf("%s: no member other than the master (ordinal %d) is running", ref, m.Ordinal)
		}
		return nil
	}
	replicas := int(Desired(c))
	switch {
	case *to < 0 || int(*to) >= replicas:
		return fmt.Errorf("--to %d: %s has ordinals 0 to %d", *to, ref, replicas-1)
	case *to == m.Ordinal:
		return fmt.Errorf("--to %d: ordinal %d is already the master of %s", *to, *to, ref)
	case !running[*to]:
		return fmt.Errorf("--to %d: ordinal %d of %s has no running member", *to, *to, ref)
	}
	return nil
}

// ErrSwitchoverFailed is returned (wrapped) when the controller reports the
// request failed.
var ErrSwitchoverFailed = errors.New("switchover failed")

// WaitSwitchover waits until the controller reports the request done
// (status.switchover, phase Succeeded), through a watch; a Failed phase is
// an error with the controller's reason.
func WaitSwitchover(ctx context.Context, st *store.Store, ns, name string, req *SwitchoverRequest) (*v1alpha1.SwitchoverStatus, error) {
	var last *v1alpha1.Cluster
	done := func(c *v1alpha1.Cluster) (*v1alpha1.SwitchoverStatus, bool, error) {
		last = c
		sw := c.Status.Switchover
		if sw == nil || sw.RequestedAt != req.At {
			return nil, false, nil
		}
		switch sw.Phase {
		case v1alpha1.SwitchoverSucceeded:
			return sw, true, nil
		case v1alpha1.SwitchoverFailed:
			return sw, true, fmt.Errorf("%s: %s: %w", Ref(name), sw.Message, ErrSwitchoverFailed)
		}
		return nil, false, nil
	}
	c, err := st.Get(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	if sw, ok, err := done(c); ok {
		return sw, err
	}
	rev, err := strconv.ParseInt(c.ResourceVersion, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: resourceVersion %q: %w", Ref(name), c.ResourceVersion, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for ev := range st.Watch(wctx, ns, rev) {
		if ev.Object == nil || ev.Object.Name != name {
			continue
		}
		if ev.Type == store.Deleted {
			return nil, fmt.Errorf("%s was deleted during the switchover", Ref(name))
		}
		if sw, ok, err := done(ev.Object); ok {
			return sw, err
		}
	}
	where := "not acted on yet"
	if sw := last.Status.Switchover; sw != nil && sw.RequestedAt == req.At {
		where = "phase " + sw.Phase
	}
	if k := v1alpha1.FindCondition(last.Status.Conditions, v1alpha1.ConditionReady); k != nil && k.Message != "" {
		where += "; Ready " + string(k.Status) + " " + k.Reason + ": " + oneLine(k.Message)
	}
	return nil, fmt.Errorf("timed out waiting for the switchover of %s (%s): %w", Ref(name), where, ErrTimeout)
}
