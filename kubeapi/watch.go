package kubeapi

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// bookmarkEvery is how often a watch that allows bookmarks gets one, as
// kube-apiserver sends them about once a minute (nanoseconds; 0: a minute).
var bookmarkEvery atomic.Int64

func bookmarkInterval() time.Duration {
	if d := time.Duration(bookmarkEvery.Load()); d > 0 {
		return d
	}
	return time.Minute
}

// SetBookmarkInterval makes watches started from now on send bookmarks every
// d instead of every minute, until restore is called: tests use it to see
// bookmarks (or their absence) within seconds, here and through kubectl.
func SetBookmarkInterval(d time.Duration) (restore func()) {
	old := bookmarkEvery.Swap(int64(d))
	return func() { bookmarkEvery.Store(old) }
}

// Watch streams the store's watch of the namespace, filtered by the label
// and field selectors. Kubernetes' resourceVersion semantics: "" or "0"
// start with a synthetic ADDED event per existing object (unless
// sendInitialEvents=false), a revision starts after it. With
// sendInitialEvents=true (client-go's watch-list) the initial events end
// with a bookmark annotated k8s.io/initial-events-end. Bookmarks carry the
// revision the client has every change up to (bookmarkRev); they are sent
// only to a client that allowed them (allowWatchBookmarks), the
// initial-events-end one included, as kube-apiserver's cacher does.
func (r *clusterREST) Watch(ctx context.Context, o *metainternalversion.ListOptions) (watch.Interface, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	initial := o.ResourceVersion == "" || o.ResourceVersion == "0"
	if o.SendInitialEvents != nil {
		initial = *o.SendInitialEvents
	}
	var (
		from  int64
		items []*v1alpha1.Cluster
		err   error
	)
	if initial {
		if items, from, err = r.st.List(ctx, ns, o.LabelSelector); err != nil {
			return nil, apiError(err, "")
		}
	} else if o.ResourceVersion != "" && o.ResourceVersion != "0" {
		if from, err = strconv.ParseInt(o.ResourceVersion, 10, 64); err != nil || from < 0 {
			return nil, apierrors.NewBadRequest("resourceVersion " + strconv.Quote(o.ResourceVersion) + " is not a revision")
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &clusterWatch{
		out: make(chan watch.Event), cancel: cancel, ctx: wctx,
		labels: o.LabelSelector, fields: o.FieldSelector,
		rev: bookmarkRev{done: from, last: from}, bookmarks: o.AllowWatchBookmarks,
	}
	events := r.st.Watch(wctx, ns, from)
	go w.run(items, o.SendInitialEvents != nil && *o.SendInitialEvents, events)
	return w, nil
}

// clusterWatch is one client's watch.
type clusterWatch struct {
	out       chan watch.Event
	ctx       context.Context
	cancel    context.CancelFunc
	labels    labels.Selector
	fields    fields.Selector
	rev       bookmarkRev
	bookmarks bool // the client allowed bookmarks
}

func (w *clusterWatch) ResultChan() <-chan watch.Event { return w.out }
func (w *clusterWatch) Stop()                          { w.cancel() }

func (w *clusterWatch) run(initial []*v1alpha1.Cluster, endMarker bool, events <-chan store.WatchEvent) {
	defer close(w.out)
	defer w.cancel()
	for _, c := range initial {
		if w.matches(c) && !w.send(watch.Added, c) {
			return
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
		case ev, ok := <-events:
			if !ok {
				return
			}
			w.rev.saw(ev.Revision)
			if w.matches(ev.Object) && !w.send(watch.EventType(ev.Type), ev.Object) {
				return
			}
		}
	}
}

func (w *clusterWatch) matches(c *v1alpha1.Cluster) bool {
	if w.labels != nil && !w.labels.Matches(labels.Set(c.Labels)) {
		return false
	}
	return matchesFields(w.fields, c)
}

func (w *clusterWatch) bookmark(rev int64, annotations map[string]string) bool {
	c := &v1alpha1.Cluster{}
	c.ResourceVersion = strconv.FormatInt(rev, 10)
	c.Annotations = annotations
	return w.send(watch.Bookmark, c)
}

func (w *clusterWatch) send(t watch.EventType, c *v1alpha1.Cluster) bool {
	select {
	case w.out <- watch.Event{Type: t, Object: c}:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// bookmarkRev is the revision a watch's periodic bookmark carries: one the
// client has every change up to. One store transaction can change several
// objects at one revision, which arrive one by one, so the newest revision
// seen is complete once a later one arrives (etcd watches deliver in
// revision order) or a whole bookmark interval passed with no change (the
// rest of a revision comes with its first change, from one etcd watch
// response); until then a bookmark carries the revision before it.
type bookmarkRev struct {
	done, last int64 // done: known complete; last: the newest seen
	moved      bool  // a change arrived since the last bookmark
}

// saw records a change at rev.
func (b *bookmarkRev) saw(rev int64) {
	if rev > b.last {
		b.done, b.last = b.last, rev
	}
	b.moved = true
}

// next is the revision for the bookmark due now.
func (b *bookmarkRev) next() int64 {
	if b.moved {
		b.moved = false
		return b.done
	}
	return b.last
}
