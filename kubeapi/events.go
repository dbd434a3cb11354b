package kubeapi

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// eventSource is the component named as the source of converge's events
// (kubectl describe's "From" column).
const eventSource = "converge-controller"

// eventsResource names events in API errors.
var eventsResource = corev1.Resource("events")

// eventREST is core/v1 events, read-only: the bounded event history the
// controller records per cluster (the store's; `converge events` and
// `converge describe` show it), each entry a v1 Event whose involvedObject
// is its Cluster. kubectl events --for cluster/NAME lists them with the
// field selector involvedObject.kind,apiVersion,name; kubectl describe with
// involvedObject.name,namespace,kind,uid (kubectl 1.32's pkg/cmd/events and
// pkg/describe searchEvents).
type eventREST struct {
	st *store.Store
	eventTable
}

var (
	_ rest.Getter               = (*eventREST)(nil)
	_ rest.Lister               = (*eventREST)(nil)
	_ rest.Watcher              = (*eventREST)(nil)
	_ rest.Scoper               = (*eventREST)(nil)
	_ rest.ShortNamesProvider   = (*eventREST)(nil)
	_ rest.SingularNameProvider = (*eventREST)(nil)
)

func (r *eventREST) New() runtime.Object     { return &corev1.Event{} }
func (r *eventREST) NewList() runtime.Object { return &corev1.EventList{} }
func (r *eventREST) Destroy()                {}
func (r *eventREST) NamespaceScoped() bool   { return true }
func (r *eventREST) GetSingularName() string { return "event" }
func (r *eventREST) ShortNames() []string    { return []string{"ev"} }

// clusterEvents are the events of one cluster (key "ns/name"), oldest first.
type clusterEvents struct {
	key    string
	events []corev1.Event
}

// Get finds the event by name: <cluster>.<hex time>[.<n>].
func (r *eventREST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	cluster, _, _ := strings.Cut(name, ".")
	if store.ValidateKeyName("name", cluster) != nil {
		return nil, apierrors.NewNotFound(eventsResource, name)
	}
	hs, _, err := r.load(ctx, ns, cluster, 0)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		for i := range h.events {
			if h.events[i].Name == name {
				return &h.events[i], nil
			}
		}
	}
	return nil, apierrors.NewNotFound(eventsResource, name)
}

// List is every event of the namespace (all of them for a cluster-wide
// request) matching the selectors, in one page; its resourceVersion is the
// etcd revision of the read, to watch from.
func (r *eventREST) List(ctx context.Context, o *metainternalversion.ListOptions) (runtime.Object, error) {
	hs, rev, err := r.load(ctx, genericapirequest.NamespaceValue(ctx), exactCluster(o), 0)
	if err != nil {
		return nil, err
	}
	out := &corev1.EventList{}
	out.ResourceVersion = strconv.FormatInt(rev, 10)
	for _, h := range hs {
		for _, e := range h.events {
			if eventMatches(o.LabelSelector, o.FieldSelector, &e) {
				out.Items = append(out.Items, e)
			}
		}
	}
	return out, nil
}

// exactCluster is the cluster an involvedObject.name field selector names
// ("" when it names none): only its history needs reading.
func exactCluster(o *metainternalversion.ListOptions) string {
	if o == nil || o.FieldSelector == nil {
		return ""
	}
	name, _ := o.FieldSelector.RequiresExactMatch("involvedObject.name")
	return name
}

// load reads the events of namespace ns (of cluster only, unless "") as of
// etcd revision atRev (0 = now), each involving its cluster by uid.
func (r *eventREST) load(ctx context.Context, ns, cluster string, atRev int64) ([]clusterEvents, int64, error) {
	if cluster != "" && (ns == "" || store.ValidateKeyName("name", cluster) != nil) {
		cluster = "" // all namespaces: filtered by the selector instead
	}
	hs, rev, err := r.st.ListEventHistories(ctx, ns, cluster, atRev)
	if err != nil {
		if store.IsCompacted(err) {
			return nil, 0, apierrors.NewResourceExpired(fmt.Sprintf("resourceVersion %d is too old: %v", atRev, err))
		}
		return nil, 0, apierrors.NewInternalError(err)
	}
	uids, err := r.uids(ctx, ns, cluster)
	if err != nil {
		return nil, 0, err
	}
	out := make([]clusterEvents, 0, len(hs))
	for _, h := range hs {
		key := h.Namespace + "/" + h.Name
		out = append(out, clusterEvents{key: key, events: toEvents(h, uids[key])})
	}
	return out, rev, nil
}

// uids are the uids of the clusters of ns (of cluster only, unless ""), by
// "ns/name": a cluster's events are deleted with it, so the cluster of that
// name now is the one they involve.
func (r *eventREST) uids(ctx context.Context, ns, cluster string) (map[string]types.UID, error) {
	out := map[string]types.UID{}
	if cluster != "" {
		c, err := r.st.Get(ctx, ns, cluster)
		if err == nil {
			out[ns+"/"+cluster] = c.UID
		} else if !store.IsNotFound(err) {
			return nil, apierrors.NewInternalError(err)
		}
		return out, nil
	}
	cs, _, err := r.st.List(ctx, ns, nil)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	for _, c := range cs {
		out[c.Namespace+"/"+c.Name] = c.UID
	}
	return out, nil
}

// toEvents turns a cluster's stored history into v1 Events. Names are
// <cluster>.<event time in hex nanoseconds>, as Kubernetes' recorder names
// events, with .<n> added for the n-th other event of the same instant.
func toEvents(h store.EventHistory, uid types.UID) []corev1.Event {
	out := make([]corev1.Event, 0, len(h.Events))
	seen := map[string]int{}
	for _, e := range h.Events {
		name := fmt.Sprintf("%s.%x", h.Name, e.Time.UnixNano())
		if n := seen[name]; n > 0 {
			seen[name]++
			name = fmt.Sprintf("%s.%d", name, n)
		} else {
			seen[name] = 1
		}
		t := metav1.NewTime(e.Time)
		out = append(out, corev1.Event{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: h.Namespace, UID: eventUID(uid, h.Namespace, name), CreationTimestamp: t,
				ResourceVersion: strconv.FormatInt(h.Revision, 10),
			},
			InvolvedObject: corev1.ObjectReference{
				Kind: v1alpha1.Kind, APIVersion: GroupVersion.String(),
				Namespace: h.Namespace, Name: h.Name, UID: uid,
			},
			Reason: e.Reason, Message: e.Message, Type: e.Type,
			Source:         corev1.EventSource{Component: eventSource},
			FirstTimestamp: t, LastTimestamp: t, Count: 1,
			ReportingController: eventSource,
		})
	}
	return out
}

// eventUIDSpace is the name space of the uids of events whose cluster's uid
// is not a UUID (none: the store makes them so) or not known.
var eventUIDSpace = uuid.MustParse("6f1c1b0e-5c1d-4d0a-9a43-0c6e7f2b8a51")

// eventUID is an event's metadata.uid: a name-based (SHA1, version 5) UUID
// of its cluster's uid and its name. Nothing stores it, so it is derived:
// the same entry has the same uid in a list, a watch, on every replica and
// after a restart, and one of a cluster recreated under the same name
// another (its uid differs).
func eventUID(cluster types.UID, ns, name string) types.UID {
	space, err := uuid.Parse(string(cluster))
	if err != nil {
		return types.UID(uuid.NewSHA1(eventUIDSpace, []byte(string(cluster)+"/"+ns+"/"+name)).String())
	}
	return types.UID(uuid.NewSHA1(space, []byte(name)).String())
}

// eventFields are the fields of an Event a field selector can name: those
// kube-apiserver supports for events.
func eventFields(e *corev1.Event) fields.Set {
	return fields.Set{
		"metadata.name":                  e.Name,
		"metadata.namespace":             e.Namespace,
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

// convertEventFieldLabel accepts eventFields' labels and refuses others, as
// kube-apiserver does ("field label not supported").
func convertEventFieldLabel(label, value string) (string, string, error) {
	if _, ok := eventFields(&corev1.Event{})[label]; !ok {
		return "", "", fmt.Errorf("field label not supported: %s", label)
	}
	return label, value, nil
}

func eventMatches(ls labels.Selector, fs fields.Selector, e *corev1.Event) bool {
	if ls != nil && !ls.Matches(labels.Set(e.Labels)) {
		return false
	}
	return fs == nil || fs.Matches(eventFields(e))
}
