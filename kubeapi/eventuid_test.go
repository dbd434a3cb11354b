package kubeapi

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/converge-io/converge/store"
)

// TestEventUIDsAndBookmarks: every event has a well-formed version 5 uid,
// derived from its cluster's uid and its name (so the same in a list, in a
// watch and after a restart); a watch that allowed bookmarks gets them,
// ending with one at the revision of the last write, and one that did not
// gets none, not even the k8s.io/initial-events-end one of
// sendInitialEvents=true (kube-apiserver's cacher sends that only with
// allowWatchBookmarks), which k8s.io/apiserver turns on for every watch from
// "" (kubectl events --watch's); the same holds for the clusters watch.
func TestEventUIDsAndBookmarks(t *testing.T) {
	defer SetBookmarkInterval(50 * time.Millisecond)()
	e := startAPI(t)
	web := e.create(testCluster("web", 1))
	t0 := time.Now().Truncate(time.Second)
	e.record("web", store.Event{Time: t0, Type: "Normal", Reason: "Launched", Message: "launched web-0"},
		store.Event{Time: t0, Type: "Normal", Reason: "Elected", Message: "web-0 is master"})
	cs, err := kubernetes.NewForConfig(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	evs := cs.CoreV1().Events("default")
	listed := listEventUIDs(t, e, evs, web.UID, 2)

	// From "": the events listed arrive as ADDED with the uids listed.
	bm, err := evs.Watch(e.ctx, metav1.ListOptions{AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bm.Stop()
	plain, err := evs.Watch(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Stop()
	// k8s.io/apiserver makes such a watch sendInitialEvents=true (WatchList
	// is on): bm's initial events end with the initial-events-end bookmark,
	// plain's (kubectl events --watch's) with nothing.
	for _, w := range []watch.Interface{bm, plain} {
		for range listed {
			ev := nextEvent(t, w, false)
			if want := listed[ev.Name]; ev.UID != want {
				t.Fatalf("watch: event %s has uid %s, listed %s", ev.Name, ev.UID, want)
			}
		}
	}
	checkInitialEnd(t, bm, true, nil)
	// A new entry: the same uid in both watches and in a list.
	rev := e.record("web", store.Event{Time: t0.Add(time.Second), Type: "Normal", Reason: "Scaled", Message: "web to 2"})
	listed = listEventUIDs(t, e, evs, web.UID, 3)
	for _, w := range []watch.Interface{bm, plain} {
		ev := nextEvent(t, w, w == bm)
		if ev.Reason != "Scaled" || ev.UID != listed[ev.Name] {
			t.Fatalf("watch: %s %s uid %s, listed %s", ev.Name, ev.Reason, ev.UID, listed[ev.Name])
		}
	}

	// bm's bookmarks come to the revision of that write; plain gets none.
	deadline := time.Now().Add(30 * time.Second)
	for bookmarkRV(t, bm, plain) != strconv.FormatInt(rev, 10) {
		if time.Now().After(deadline) {
			t.Fatalf("no bookmark at the last write's revision %d within 30s", rev)
		}
	}
	waitBookmarks(t, bm, 3, plain)

	// sendInitialEvents=true: the initial-events-end bookmark only when allowed.
	watchList := metav1.ListOptions{SendInitialEvents: ptr(true), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}
	allowed := watchList
	allowed.AllowWatchBookmarks = true
	for _, o := range []metav1.ListOptions{allowed, watchList} {
		w, err := evs.Watch(e.ctx, o)
		if err != nil {
			t.Fatalf("watch %+v: %v", o, err)
		}
		for range listed {
			nextEvent(t, w, false)
		}
		checkInitialEnd(t, w, o.AllowWatchBookmarks, bm)
		w.Stop()
	}
	for _, o := range []metav1.ListOptions{allowed, watchList} {
		o.Watch = true
		w, err := e.rc.Get().Namespace("default").Resource("clusters").
			VersionedParams(&o, runtime.NewParameterCodec(Scheme)).Watch(e.ctx)
		if err != nil {
			t.Fatalf("watch clusters %+v: %v", o, err)
		}
		if ev := <-w.ResultChan(); ev.Type != watch.Added {
			t.Fatalf("watch clusters: %s %+v, want ADDED web", ev.Type, ev.Object)
		}
		checkInitialEnd(t, w, o.AllowWatchBookmarks, bm)
		w.Stop()
	}
}

// listEventUIDs lists the events of web (n of them) and checks their uids:
// distinct, version 5 (SHA1, name-based), of web's uid and the event's name.
func listEventUIDs(t *testing.T, e *apiEnv, evs typedcorev1.EventInterface, web types.UID, n int) map[string]types.UID {
	t.Helper()
	l, err := evs.List(e.ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != n {
		t.Fatalf("list: %v, %d events, want %d", err, len(l.Items), n)
	}
	out := map[string]types.UID{}
	seen := map[types.UID]bool{}
	for _, ev := range l.Items {
		u, err := uuid.Parse(string(ev.UID))
		if err != nil || u.Version() != 5 || u.Variant() != uuid.RFC4122 || seen[ev.UID] {
			t.Fatalf("event %s: uid %q (%v): want a distinct RFC 4122 version 5 UUID", ev.Name, ev.UID, err)
		}
		if want := uuid.NewSHA1(uuid.MustParse(string(web)), []byte(ev.Name)).String(); string(ev.UID) != want {
			t.Fatalf("event %s: uid %s, want %s (SHA1 of cluster uid %s and the name)", ev.Name, ev.UID, want, web)
		}
		seen[ev.UID] = true
		out[ev.Name] = ev.UID
	}
	return out
}

// nextEvent is w's next Event; bookmarks are skipped when skip is true and
// fail the test otherwise.
func nextEvent(t *testing.T, w watch.Interface, skip bool) *corev1.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch ended")
			}
			got, isEvent := ev.Object.(*corev1.Event)
			if ev.Type == watch.Bookmark && skip {
				continue
			}
			if ev.Type != watch.Added || !isEvent {
				t.Fatalf("watch: %s %+v, want ADDED Event", ev.Type, ev.Object)
			}
			return got
		case <-timeout:
			t.Fatal("watch: no event within 30s")
		}
	}
}

// bookmarkRV waits for bm's next event, which must be a bookmark, and
// returns its resourceVersion; anything arriving on quiet fails the test.
func bookmarkRV(t *testing.T, bm watch.Interface, quiet watch.Interface) string {
	t.Helper()
	select {
	case ev := <-bm.ResultChan():
		if ev.Type != watch.Bookmark {
			t.Fatalf("watch allowing bookmarks: %s %+v, want BOOKMARK", ev.Type, ev.Object)
		}
		m, err := meta.Accessor(ev.Object)
		if err != nil {
			t.Fatal(err)
		}
		return m.GetResourceVersion()
	case ev := <-quiet.ResultChan():
		t.Fatalf("a watch that did not allow bookmarks got %s %+v", ev.Type, ev.Object)
	case <-time.After(30 * time.Second):
		t.Fatal("no bookmark within 30s")
	}
	return ""
}

// waitBookmarks waits for n bookmarks on bm (n bookmark intervals) while
// nothing may arrive on quiet.
func waitBookmarks(t *testing.T, bm watch.Interface, n int, quiet watch.Interface) {
	t.Helper()
	for range n {
		bookmarkRV(t, bm, quiet)
	}
}

// checkInitialEnd: after the initial events, w gets the initial-events-end
// bookmark if it allowed bookmarks, and nothing (over three bookmark
// intervals of bm) otherwise.
func checkInitialEnd(t *testing.T, w watch.Interface, allowed bool, bm watch.Interface) {
	t.Helper()
	if !allowed {
		waitBookmarks(t, bm, 3, w)
		return
	}
	ev := <-w.ResultChan()
	m, err := meta.Accessor(ev.Object)
	if err != nil || ev.Type != watch.Bookmark || m.GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" || m.GetResourceVersion() == "" {
		t.Fatalf("after the initial events: %s %+v (%v), want the initial-events-end bookmark", ev.Type, ev.Object, err)
	}
}

// TestBookmarkRev: a periodic bookmark never carries the newest revision
// seen while more of it may still be on its way (one transaction, several
// objects): only once a later revision arrived or an interval passed quietly.
func TestBookmarkRev(t *testing.T) {
	b := bookmarkRev{done: 10, last: 10}
	if got := b.next(); got != 10 {
		t.Fatalf("quiet from 10: %d", got)
	}
	b.saw(12)
	b.saw(12) // a second object of revision 12
	if got := b.next(); got != 10 {
		t.Fatalf("right after revision 12: %d, want 10", got)
	}
	if got := b.next(); got != 12 {
		t.Fatalf("an interval after revision 12: %d, want 12", got)
	}
	b.saw(13)
	b.saw(15)
	if got := b.next(); got != 13 {
		t.Fatalf("after 13 then 15: %d, want 13", got)
	}
}
