package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// WaitFor is what wait --for asks: a condition with a status, or deletion.
type WaitFor struct {
	Delete bool
	// Condition type (Ready, Reconciling, Stalled, ...) and wanted status.
	Condition string
	Status    metav1.ConditionStatus
}

func (f WaitFor) String() string {
	if f.Delete {
		return "delete"
	}
	return fmt.Sprintf("condition=%s=%s", f.Condition, f.Status)
}

// ParseWaitFor reads --for: "delete", "condition=TYPE" or
// "condition=TYPE=True|False|Unknown".
func ParseWaitFor(s string) (WaitFor, error) {
	if s == "delete" {
		return WaitFor{Delete: true}, nil
	}
	rest, ok := strings.CutPrefix(s, "condition=")
	if !ok || rest == "" {
		return WaitFor{}, Usage("--for must be delete or condition=TYPE[=True|False|Unknown], not %q", s)
	}
	typ, status, hasStatus := strings.Cut(rest, "=")
	if typ == "" {
		return WaitFor{}, Usage("--for=%s names no condition type", s)
	}
	f := WaitFor{Condition: typ, Status: metav1.ConditionTrue}
	if hasStatus {
		switch strings.ToLower(status) {
		case "true":
			f.Status = metav1.ConditionTrue
		case "false":
			f.Status = metav1.ConditionFalse
		case "unknown":
			f.Status = metav1.ConditionUnknown
		default:
			return WaitFor{}, Usage("--for=%s: a condition status is True, False or Unknown", s)
		}
	}
	return f, nil
}

// Met reports whether c satisfies f. A condition counts only when it speaks
// for the object's current generation (its observedGeneration equals
// metadata.generation): a Ready about an older spec is not Ready.
func (f WaitFor) Met(c *v1alpha1.Cluster) bool {
	if f.Delete || c == nil {
		return false
	}
	k := meta.FindStatusCondition(c.Status.Conditions, f.Condition)
	return k != nil && k.Status == f.Status && k.ObservedGeneration == c.Generation
}

// ErrTimeout is returned (wrapped) when a wait's deadline passes.
var ErrTimeout = errors.New("timed out")

// ErrStalled is returned (wrapped) when the cluster is Stalled for its
// current generation: what is waited for will not come without a change.
var ErrStalled = errors.New("stalled")

// Stalled returns an error naming the Stalled condition's reason and message
// when c is Stalled for its current generation and f waits for something
// else (as kstatus reads Failed): waiting longer would only wait out the
// timeout.
func (f WaitFor) Stalled(c *v1alpha1.Cluster) error {
	if f.Delete || c == nil || f.Condition == v1alpha1.ConditionStalled {
		return nil
	}
	k := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionStalled)
	if k == nil || k.Status != metav1.ConditionTrue || k.ObservedGeneration != c.Generation {
		return nil
	}
	return fmt.Errorf("%s is Stalled (%s): %s; not waiting for %s: %w", Ref(c.Name), k.Reason, oneLine(k.Message), f, ErrStalled)
}

// Wait blocks until the cluster ns/name satisfies f, or ctx ends. It reads the
// object once, then follows store.Watch from that revision: no polling. A
// condition wait on a missing object fails at once; a deletion wait on one
// succeeds at once. A condition wait on a cluster Stalled for its current
// generation fails at once (ErrStalled). When ctx's deadline passes the error
// says so, with the last state seen.
func Wait(ctx context.Context, st *store.Store, ns, name string, f WaitFor) (*v1alpha1.Cluster, error) {
	ref := Ref(name)
	c, err := st.Get(ctx, ns, name)
	if store.IsNotFound(err) {
		if f.Delete {
			return nil, nil
		}
		return nil, fmt.Errorf("%s not found in namespace %s", ref, ns)
	}
	if err != nil {
		return nil, waitErr(ctx, ref, f, nil, err)
	}
	if f.Met(c) {
		return c, nil
	}
	if err := f.Stalled(c); err != nil {
		return c, err
	}
	rev, err := strconv.ParseInt(c.ResourceVersion, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: resourceVersion %q: %w", ref, c.ResourceVersion, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for ev := range st.Watch(wctx, ns, rev) {
		if ev.Object == nil || ev.Object.Name != name {
			continue
		}
		if ev.Type == store.Deleted {
			if f.Delete {
				return nil, nil
			}
			return nil, fmt.Errorf("%s was deleted while waiting for %s", ref, f)
		}
		c = ev.Object
		if f.Met(c) {
			return c, nil
		}
		if err := f.Stalled(c); err != nil {
			return c, err
		}
	}
	return nil, waitErr(ctx, ref, f, c, ctx.Err())
}

func waitErr(ctx context.Context, ref string, f WaitFor, last *v1alpha1.Cluster, err error) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	msg := fmt.Sprintf("timed out waiting for %s on %s", f, ref)
	if last != nil {
		msg += " (" + summary(last, f) + ")"
	}
	return fmt.Errorf("%s: %w", msg, ErrTimeout)
}

// summary says, in a few words, where the object stands.
func summary(c *v1alpha1.Cluster, f WaitFor) string {
	if f.Delete {
		if c.DeletionTimestamp == nil {
			return "not marked for deletion"
		}
		return "still deleting: finalizers " + strings.Join(c.Finalizers, ", ")
	}
	k := meta.FindStatusCondition(c.Status.Conditions, f.Condition)
	parts := []string{fmt.Sprintf("generation %d, %d/%d ready", c.Generation, c.Status.ReadyReplicas, Desired(c))}
	switch {
	case k == nil:
		parts = append(parts, f.Condition+" not reported yet")
	case k.ObservedGeneration != c.Generation:
		parts = append(parts, fmt.Sprintf("%s=%s is about generation %d", k.Type, k.Status, k.ObservedGeneration))
	default:
		s := fmt.Sprintf("%s=%s", k.Type, k.Status)
		if k.Reason != "" {
			s += " " + k.Reason
		}
		if k.Message != "" {
			s += ": " + oneLine(k.Message)
		}
		parts = append(parts, s)
	}
	if k := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionStalled); k != nil && k.Status == metav1.ConditionTrue && f.Condition != v1alpha1.ConditionStalled {
		parts = append(parts, "Stalled "+k.Reason+": "+oneLine(k.Message))
	}
	return strings.Join(parts, "; ")
}
