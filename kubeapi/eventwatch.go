package kubeapi

import (
	"context"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/converge-io/converge/store"
)

// Watch streams the events of the namespace from a resourceVersion, with
// Kubernetes' semantics: "" or "0" first send the current events as ADDED
// (unless sendInitialEvents=false), a revision starts after it (a
// compacted one is 410 Gone: list again). A new entry of a cluster's
// history is ADDED; an entry dropped from the bounded history (or with its
// cluster) is DELETED, as kube-apiserver deletes expired events. Bookmarks
// go only to a client that allowed them (allowWatchBookmarks), as the
// clusters watch sends them: the k8s.io/initial-events-end one after the
// initial events of sendInitialEvents=true, then about once a minute. A
// client that did not allow them gets none: kubectl events --watch prints
// every event it is sent, a bookmark as a line of "<unknown>", and
// k8s.io/apiserver's watch handler panics on an initial-events-end bookmark
// of a watch that is not a watch-list (its hook for that is nil).
func (r *eventREST) Watch(ctx context.Context, o *metainternalversion.ListOptions) (watch.Interface, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	initial := o.ResourceVersion == "" || o.ResourceVersion == "0"
	if o.SendInitialEvents != nil {
		initial = *o.SendInitialEvents
	}
	var atRev int64
	if o.ResourceVersion != "" && o.ResourceVersion != "0" {
		rev, err := strconv.ParseInt(o.ResourceVersion, 10, 64)
		if err != nil || rev <= 0 {
			return nil, apierrors.NewBadRequest("resourceVersion " + strconv.Quote(o.ResourceVersion) + " is not a revision")
		}
		atRev = rev
	}
	// What the client has (at atRev) is what the changes are diffed against.
	hs, rev, err := r.load(ctx, ns, exactCluster(o), atRev)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &eventWatch{
		out: make(chan watch.Event), ctx: wctx, cancel: cancel, st: r.st,
		labels: o.LabelSelector, fields: o.FieldSelector, rev: bookmarkRev{done: rev, last: rev},
		bookmarks: o.AllowWatchBookmarks, known: map[string][]corev1.Event{}, uids: map[string]types.UID{},
	}
	for _, h := range hs {
		w.order = append(w.order, h.key)
		w.known[h.key] = h.events
		if len(h.events) > 0 {
			w.uids[h.key] = h.events[0].InvolvedObject.UID
		}
	}
	changes := r.st.WatchEventHistories(wctx, ns, rev)
	go w.run(initial, o.SendInitialEvents != nil && *o.SendInitialEvents, changes)
	return w, nil
}

// eventWatch is one client's watch of events.
type eventWatch struct {
	out    chan watch.Event
	ctx    context.Context
	cancel context.CancelFunc
	st     *store.Store
	labels labels.Selector
	fields fields.Selector
	rev    bookmarkRev
	// bookmarks: the client allowed them.
	bookmarks bool
	// known is each cluster's history as the client has it; uids its uid.
	known map[string][]corev1.Event
	uids  map[string]types.UID
	order []string // the keys listed first, in the list's order
}

func (w *eventWatch) ResultChan() <-chan watch.Event { return w.out }
func (w *eventWatch) Stop()                          { w.cancel() }

func (w *eventWatch) run(initial, endMarker bool, changes <-chan store.EventHistoryChange) {
	defer close(w.out)
	defer w.cancel()
	if initial {
		for _, key := range w.order {
			if !w.sendAll(watch.Added, w.known[key]) {
				return
			}
		}
	}
	if endMarker && w.bookmarks && !w.bookmark(w.rev.last, map[string]string{metav1.InitialEventsAnnotationKey: "true"}) {
		return
	}
	tick := time.NewTicker(bookmarkInterval())
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-tick.C:
			if w.bookmarks && !w.bookmark(w.rev.next(), nil) {
				return
			}
		case ch, ok := <-changes:
			if !ok || !w.change(ch) {
				return
			}
		}
	}
}

// change applies one change of the store's watch; false ends the watch.
func (w *eventWatch) change(ch store.EventHistoryChange) bool {
	if ch.Err != nil {
		st := apierrors.NewResourceExpired(ch.Err.Error()).ErrStatus
		if !store.IsCompacted(ch.Err) {
			st = apierrors.NewInternalError(ch.Err).ErrStatus
		}
		w.send(watch.Error, &st)
		return false
	}
	w.rev.saw(ch.Revision)
	return w.apply(ch.EventHistory)
}

// bookmark sends an empty Event carrying revision rev.
func (w *eventWatch) bookmark(rev int64, annotations map[string]string) bool {
	bm := &corev1.Event{}
	bm.ResourceVersion = strconv.FormatInt(rev, 10)
	bm.Annotations = annotations
	return w.send(watch.Bookmark, bm)
}

// apply diffs a cluster's new history against what the client has.
func (w *eventWatch) apply(h store.EventHistory) bool {
	key := h.Namespace + "/" + h.Name
	old := w.known[key]
	if h.Events == nil {
		delete(w.known, key)
		delete(w.uids, key)
		return w.sendAll(watch.Deleted, old)
	}
	uid, ok := w.uids[key]
	if !ok {
		if c, err := w.st.Get(w.ctx, h.Namespace, h.Name); err == nil {
			uid = c.UID
		}
		w.uids[key] = uid
	}
	now := toEvents(h, uid)
	w.known[key] = now
	return w.sendAll(watch.Deleted, missing(old, now)) && w.sendAll(watch.Added, missing(now, old))
}

// missing are the events of a whose names b lacks.
func missing(a, b []corev1.Event) []corev1.Event {
	in := make(map[string]bool, len(b))
	for _, e := range b {
		in[e.Name] = true
	}
	var out []corev1.Event
	for _, e := range a {
		if !in[e.Name] {
			out = append(out, e)
		}
	}
	return out
}

func (w *eventWatch) sendAll(t watch.EventType, evs []corev1.Event) bool {
	for i := range evs {
		if eventMatches(w.labels, w.fields, &evs[i]) && !w.send(t, &evs[i]) {
			return false
		}
	}
	return true
}

func (w *eventWatch) send(t watch.EventType, obj runtime.Object) bool {
	select {
	case w.out <- watch.Event{Type: t, Object: obj}:
		return true
	case <-w.ctx.Done():
		return false
	}
}
