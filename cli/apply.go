package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// Actions apply reports, after "cluster/NAME".
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
	ActionPruned     = "pruned"
	ActionDeleted    = "deleted"
)

// dryRunSuffix marks what --dry-run=server would have done.
const dryRunSuffix = " (server dry run)"

// maxApplyAttempts bounds re-reading and re-applying after a conflict (the
// controller writes status concurrently; each attempt recomputes from the
// object as it is now).
const maxApplyAttempts = 3

// ApplyOptions control Apply.
type ApplyOptions struct {
	// DryRun: read live state, validate and report, write nothing.
	DryRun bool
	// Prune deletes clusters that match Selector in the applied namespaces
	// (or PruneNamespace when nothing was applied) but are not in the
	// applied set.
	Prune          bool
	Selector       labels.Selector
	PruneNamespace string
	// Out receives one line per object.
	Out io.Writer
	// beforeWrite, when set, runs between an object's read and its write:
	// tests interleave another writer there to exercise conflicts.
	beforeWrite func()
}

// Applied is the outcome for one object.
type Applied struct {
	Action string
	// Object is the object as stored after the apply (as it would be, on a
	// dry run).
	Object *v1alpha1.Cluster
}

// Apply makes each manifest's spec, labels and annotations the stored ones:
// it creates what is missing, updates what differs (generation goes up by one
// when the spec changed) and writes nothing for what is equal. Failures of
// single objects do not stop the others; their errors are joined. Pruning runs
// only when every object applied.
func Apply(ctx context.Context, st *store.Store, ms []Manifest, o ApplyOptions) ([]Applied, error) {
	var (
		done []Applied
		errs []error
	)
	suffix := ""
	if o.DryRun {
		suffix = dryRunSuffix
	}
	for _, m := range ms {
		a, err := applyOne(ctx, st, m.Cluster, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Source, err))
			continue
		}
		done = append(done, a)
		fmt.Fprintf(o.Out, "%s %s%s\n", Ref(a.Object.Name), a.Action, suffix)
	}
	if len(errs) > 0 {
		if o.Prune {
			errs = append(errs, errors.New("nothing was pruned because not every object applied"))
		}
		return done, errors.Join(errs...)
	}
	if o.Prune {
		if err := prune(ctx, st, ms, o, suffix); err != nil {
			return done, err
		}
	}
	return done, nil
}

func applyOne(ctx context.Context, st *store.Store, want *v1alpha1.Cluster, o ApplyOptions) (Applied, error) {
	ref := fmt.Sprintf("cluster/%s (namespace %s)", want.Name, want.Namespace)
	// seen is what apply owns of the object as first read ("" when absent). A
	// write that fails on a conflict is retried only if the object changed in
	// what apply does not own (the controller's status, finalizers): a spec,
	// label or annotation change by someone else is never overwritten silently.
	var seen string
	var lastErr error
	for attempt := 0; attempt < maxApplyAttempts; attempt++ {
		live, err := st.Get(ctx, want.Namespace, want.Name)
		if err != nil && !store.IsNotFound(err) {
			return Applied{}, fmt.Errorf("read %s: %w", ref, err)
		}
		now := ""
		if live != nil {
			now = ownedPart(live)
		}
		if attempt == 0 {
			seen = now
		} else if now != seen {
			return changedMeanwhile(live, want, seen, now, ref)
		}
		var a Applied
		var retry bool
		if live == nil {
			a, retry, err = o.create(ctx, st, want, ref)
		} else {
			a, retry, err = o.update(ctx, st, live, want, ref)
		}
		if retry {
			lastErr = err
			continue
		}
		return a, err
	}
	return Applied{}, fmt.Errorf("apply %s: gave up after %d attempts, the controller keeps writing it: %w", ref, maxApplyAttempts, lastErr)
}

// changedMeanwhile answers an apply whose object changed, in what apply
// owns, since it was first read (seen; now as read again): unchanged if
// the change is exactly this apply's, else a conflict naming what
// happened, with nothing written.
func changedMeanwhile(live, want *v1alpha1.Cluster, seen, now, ref string) (Applied, error) {
	if live != nil && now == ownedPart(Merge(live, want)) {
		return Applied{ActionUnchanged, live}, nil // someone wrote just this meanwhile
	}
	what := "changed (spec, labels or annotations)"
	switch {
	case live == nil:
		what = "deleted"
	case seen == "":
		what = "created"
	}
	return Applied{}, fmt.Errorf("conflict: %s was %s by someone else while this apply ran; nothing written: review with converge diff -f and apply again", ref, what)
}

// create creates want; retry (with err) when it was created meanwhile, so
// that the next attempt looks at what is there.
func (o ApplyOptions) create(ctx context.Context, st *store.Store, want *v1alpha1.Cluster, ref string) (a Applied, retry bool, err error) {
	obj := forCreate(want)
	if o.DryRun {
		return Applied{ActionCreated, obj}, false, nil
	}
	o.callBeforeWrite()
	created, err := st.Create(ctx, obj)
	if store.IsAlreadyExists(err) {
		return Applied{}, true, err
	}
	if err != nil {
		return Applied{}, false, fmt.Errorf("create %s: %w", ref, err)
	}
	return Applied{ActionCreated, created}, false, nil
}

// update merges want into live and writes it if that changes anything;
// retry (with err) when live changed or went meanwhile.
func (o ApplyOptions) update(ctx context.Context, st *store.Store, live, want *v1alpha1.Cluster, ref string) (a Applied, retry bool, err error) {
	if live.DeletionTimestamp != nil {
		return Applied{}, false, fmt.Errorf("%s is being deleted (its tasks are being killed); apply it again once it is gone (converge wait cluster/%s --for=delete)", ref, want.Name)
	}
	next := Merge(live, want)
	if same(live, next) {
		return Applied{ActionUnchanged, live}, false, nil
	}
	if errs := v1alpha1.ValidateVolumesUpdate(next, live); len(errs) > 0 {
		return Applied{}, false, fmt.Errorf("%s: %w; nothing written", ref, errs.ToAggregate())
	}
	if o.DryRun {
		if !sameSpec(live, next) {
			next.Generation = live.Generation + 1
		}
		return Applied{ActionConfigured, next}, false, nil
	}
	o.callBeforeWrite()
	updated, err := st.Update(ctx, next)
	if store.IsConflict(err) || store.IsNotFound(err) {
		return Applied{}, true, err // changed meanwhile: look again at what changed
	}
	if err != nil {
		return Applied{}, false, fmt.Errorf("update %s: %w", ref, err)
	}
	return Applied{ActionConfigured, updated}, false, nil
}

// callBeforeWrite runs the test hook, if any, just before a write.
func (o ApplyOptions) callBeforeWrite() {
	if o.beforeWrite != nil {
		o.beforeWrite()
	}
}

// Merge returns live with the parts a user's manifest owns (spec, labels,
// annotations) taken from want; server-set metadata, finalizers and status
// stay live's.
func Merge(live, want *v1alpha1.Cluster) *v1alpha1.Cluster {
	next := live.DeepCopy()
	w := want.DeepCopy()
	next.Labels = w.Labels
	next.Annotations = w.Annotations
	next.Spec = w.Spec
	return next
}

// forCreate strips what the server sets from a manifest (it may be the output
// of get -o yaml of another cluster).
func forCreate(want *v1alpha1.Cluster) *v1alpha1.Cluster {
	c := want.DeepCopy()
	c.UID = ""
	c.ResourceVersion = ""
	c.Generation = 1
	c.CreationTimestamp = metav1.Time{}
	c.DeletionTimestamp = nil
	c.DeletionGracePeriodSeconds = nil
	c.ManagedFields = nil
	c.OwnerReferences = nil
	c.Status = v1alpha1.ClusterStatus{}
	return c
}

// userPart is what apply owns, in the canonical JSON the store compares.
type userPart struct {
	Labels      map[string]string    `json:"labels,omitempty"`
	Annotations map[string]string    `json:"annotations,omitempty"`
	Spec        v1alpha1.ClusterSpec `json:"spec"`
}

func same(a, b *v1alpha1.Cluster) bool {
	return ownedPart(a) == ownedPart(b)
}

// ownedPart is the canonical encoding of what apply owns of c.
func ownedPart(c *v1alpha1.Cluster) string {
	return canonical(userPart{c.Labels, c.Annotations, c.Spec})
}

func sameSpec(a, b *v1alpha1.Cluster) bool {
	return canonical(a.Spec) == canonical(b.Spec)
}

func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unencodable: %v", err) // never equal to a real encoding
	}
	return string(b)
}

func prune(ctx context.Context, st *store.Store, ms []Manifest, o ApplyOptions, suffix string) error {
	if o.Selector == nil || o.Selector.Empty() {
		return Usage("--prune needs a label selector (-l) that names the set it owns")
	}
	keep := map[string]bool{}
	nsSet := map[string]bool{}
	for _, m := range ms {
		keep[m.Cluster.Namespace+"/"+m.Cluster.Name] = true
		nsSet[m.Cluster.Namespace] = true
	}
	if len(nsSet) == 0 {
		nsSet[o.PruneNamespace] = true
	}
	namespaces := make([]string, 0, len(nsSet))
	for ns := range nsSet {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	var errs []error
	for _, ns := range namespaces {
		items, _, err := st.List(ctx, ns, o.Selector)
		if err != nil {
			return fmt.Errorf("list clusters to prune in namespace %s: %w", ns, err)
		}
		for _, c := range items {
			if keep[c.Namespace+"/"+c.Name] || c.DeletionTimestamp != nil {
				continue
			}
			if o.DryRun {
				fmt.Fprintf(o.Out, "%s %s%s\n", Ref(c.Name), ActionPruned, suffix)
				continue
			}
			if _, _, err := st.Delete(ctx, c.Namespace, c.Name); err != nil && !store.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("prune cluster/%s (namespace %s): %w", c.Name, c.Namespace, err))
				continue
			}
			fmt.Fprintf(o.Out, "%s %s\n", Ref(c.Name), ActionPruned)
		}
	}
	return errors.Join(errs...)
}
