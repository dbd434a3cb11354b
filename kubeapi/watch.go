package kubeapi

import (
	"context"
	"strconv"
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

// bookmarkInterval is how often a watch that allows bookmarks gets one when
// nothing else happened, as kube-apiserver sends them about once a minute.
var bookmarkInterval = time.Minute

// Watch streams the store's watch of the namespace, filtered by the label
// and field selectors. Kubernetes' resourceVersion semantics: "" or "0"
// start with a synthetic ADDED event per existing object (unless
// sendInitialEvents=false), a revision starts after it. With
// sendInitialEvents=true (client-go's watch-list) the initial events end
// with a bookmark annotated k8s.io/initial-events-end. Bookmarks carry the
// revision of the last event sent, which the client already has in full.
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
		labels: o.LabelSelector, fields: o.FieldSelector, rev: from,
		bookmarks: o.AllowWatchBookmarks,
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
	rev       int64 // revision of the last event sent
	bookmarks bool
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
	if endMarker && !w.bookmark(map[string]string{metav1.InitialEventsAnnotationKey: "true"}) {
		return
	}
	tick := time.NewTicker(bookmarkInterval)
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-tick.C:
			if w.bookmarks && !w.bookmark(nil) {
				return
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Revision > w.rev {
				w.rev = ev.Revision
			}
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

func (w *clusterWatch) bookmark(annotations map[string]string) bool {
	c := &v1alpha1.Cluster{}
	c.ResourceVersion = strconv.FormatInt(w.rev, 10)
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
