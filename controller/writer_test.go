package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const writerPrefix = "/writer-test"

// newWriterController returns a controller on a real etcd at its default
// limits, knowing the given clusters (default/NAME). Its writer is not
// started: tests queue ops first when they need them in one group.
func newWriterController(t *testing.T, names ...string) (*Controller, *store.Store) {
	t.Helper()
	srv := etcdtest.Start(t)
	st := store.NewFromClient(srv.Client(), writerPrefix)
	c, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		cl := &v1alpha1.Cluster{}
		cl.Namespace, cl.Name = "default", n
		c.roomLocked("default/" + n).cluster = cl
	}
	return c, st
}

func startWriter(t *testing.T, c *Controller) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	go c.runWriter(ctx)
	return ctx
}

func launchOp(key string, n int, from int) *writeOp {
	ns, name := splitKey(key)
	op := &writeOp{}
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("%s.%s.%d.%08x", ns, name, i, i)
		r := store.TaskRecord{ID: id, Namespace: ns, Cluster: name, Ordinal: int32(i), State: stateStaging}
		op.tasks = append(op.tasks, taskWrite{key: key, id: id, create: &r})
		op.addEvents(key, store.Event{Type: "Normal", Reason: "Launching", Message: "launching " + id})
	}
	return op
}

// checkCachesMatchEtcd fails unless the ledger cache holds exactly what etcd
// holds, record for record.
func checkCachesMatchEtcd(t *testing.T, c *Controller, st *store.Store, key string) {
	t.Helper()
	ns, name := splitKey(key)
	tasks, err := st.ListTasks(context.Background(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(tasks) != len(c.tasksLocked(key)) {
		t.Fatalf("%s: etcd holds %d records, the cache %d", key, len(tasks), len(c.tasksLocked(key)))
	}
	for _, r := range tasks {
		if cr := c.taskLocked(key, r.ID); cr == nil || cr.State != r.State {
			t.Fatalf("%s: record %s in etcd (%s) differs in the cache (%+v)", key, r.ID, r.State, cr)
		}
	}
}

// A round of launches and a burst of status updates larger than a stock
// etcd's 128 operations per transaction are written in full (the first
// version sent them as one transaction: "too many operations in txn request").
func TestWriterWithinEtcdDefaultLimits(t *testing.T) {
	c, st := newWriterController(t, "a", "b")
	ctx := startWriter(t, c)
	if err := c.write(ctx, launchOp("default/a", 300, 0)); err != nil {
		t.Fatalf("300 launches: %v", err)
	}
	errs := make(chan error, 300)
	for i := range 300 {
		id := fmt.Sprintf("default.a.%d.%08x", i, i)
		op := &writeOp{tasks: []taskWrite{{key: "default/a", id: id, mut: func(r *store.TaskRecord) (bool, []store.Event) {
			r.State = stateRunning
			return true, []store.Event{{Type: "Normal", Reason: "Running", Message: id}}
		}}}}
		op.after = func(err error) { errs <- err }
		c.submit(ctx, op)
	}
	for range 300 {
		if err := <-errs; err != nil {
			t.Fatalf("status burst: %v", err)
		}
	}
	checkCachesMatchEtcd(t, c, st, "default/a")
	tasks, _ := st.ListTasks(ctx, "default", "a")
	for _, r := range tasks {
		if r.State != stateRunning {
			t.Fatalf("%s is %s after its update was reported durable", r.ID, r.State)
		}
	}
	evs, err := st.ListEvents(ctx, "default", "a")
	if err != nil || len(evs) != store.MaxEvents || evs[len(evs)-1].Reason != "Running" {
		t.Fatalf("events: %d, last %+v, %v", len(evs), evs[len(evs)-1], err)
	}
}

// An op that cannot be committed fails alone: the ops queued with it are
// committed, and the caches hold exactly what etcd holds.
func TestWriterFailedOpLeavesCachesTrue(t *testing.T) {
	c, st := newWriterController(t, "a")
	var results [3]chan error
	ops := []*writeOp{launchOp("default/a", 5, 0), launchOp("default/a", 5, 5), launchOp("default/a", 5, 10)}
	// Over etcd's 1.5 MiB request limit: this op cannot be committed.
	ops[1].events["default/a"][0].Message = strings.Repeat("x", 2<<20)
	for i, op := range ops {
		results[i] = make(chan error, 1)
		op.after = func(err error) { results[i] <- err }
		c.writes <- op // queued before the writer starts: one group
	}
	startWriter(t, c)
	for i, want := range []bool{true, false, true} {
		err := <-results[i]
		if ok := err == nil; ok != want {
			t.Fatalf("op %d: err %v, want success %t", i, err, want)
		}
		if !want && !errors.Is(err, store.ErrTxnTooLarge) {
			t.Fatalf("op %d: %v, want ErrTxnTooLarge", i, err)
		}
	}
	checkCachesMatchEtcd(t, c, st, "default/a")
	if n := len(c.tasksLocked("default/a")); n != 10 {
		t.Fatalf("%d records, want the 10 of the two good ops", n)
	}
}

// A history that cannot be read is never written over: its events wait, and
// are appended once it can be read.
func TestWriterUnreadableHistoryIsNotOverwritten(t *testing.T) {
	c, st := newWriterController(t, "a")
	ctx := startWriter(t, c)
	key := writerPrefix + "/events/default/a"
	if _, err := st.Client().Put(ctx, key, "not json"); err != nil {
		t.Fatal(err)
	}
	op := &writeOp{}
	op.addEvents("default/a", store.Event{Type: "Normal", Reason: "First"})
	if err := c.write(ctx, op); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Client().Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "not json" {
		t.Fatalf("the unreadable history was written over: %q %v", resp.Kvs, err)
	}
	// Readable again: the held event follows the stored history.
	if _, err := st.Client().Put(ctx, key, `[{"reason":"Old"}]`); err != nil {
		t.Fatal(err)
	}
	op = &writeOp{}
	op.addEvents("default/a", store.Event{Type: "Normal", Reason: "Second"})
	if err := c.write(ctx, op); err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListEvents(ctx, "default", "a")
	var got []string
	for _, e := range evs {
		got = append(got, e.Reason)
	}
	if err != nil || strings.Join(got, ",") != "Old,First,Second" {
		t.Fatalf("history %v (%v), want Old,First,Second", got, err)
	}
}

// The writer's callbacks queue acknowledgements; that must never block, or
// the writer, and every launch with it, waits on acknowledgements.
func TestAckQueueNeverBlocks(t *testing.T) {
	q := newAckQueue()
	done := make(chan struct{})
	go func() {
		for i := range 50000 { // more than the first version's bounded queue held
			q.push(pendingAck{received: time.Unix(int64(i), 0)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("push blocked with no acknowledger running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 50000 {
		p, ok := q.pop(ctx)
		if !ok || p.received.Unix() != int64(i) {
			t.Fatalf("pop %d: %v %v", i, p.received, ok)
		}
	}
}

// A status update that arrives while a launch round is being committed goes
// in between the round's transactions, not after all of them: its
// acknowledgement waits on it (behind launch bursts the ack p99 was seconds).
func TestWriterUpdatesGoBetweenLaunchTransactions(t *testing.T) {
	c, st := newWriterController(t, "a", "b")
	ctx := startWriter(t, c)
	if err := c.write(ctx, launchOp("default/a", 1, 0)); err != nil {
		t.Fatal(err)
	}
	idA := "default.a.0.00000000"
	order := make(chan string, 2)
	update := &writeOp{tasks: []taskWrite{{key: "default/a", id: idA, mut: func(r *store.TaskRecord) (bool, []store.Event) {
		r.State = stateRunning
		return true, nil
	}}}}
	update.after = func(err error) {
		if err != nil {
			t.Errorf("update: %v", err)
		}
		order <- "update"
	}
	// 600 launches take several transactions; the update arrives while the
	// first is staged.
	round := launchOp("default/b", 600, 0)
	var once sync.Once
	arrive := taskWrite{key: "default/a", id: idA, mut: func(*store.TaskRecord) (bool, []store.Event) {
		once.Do(func() { c.submitUpdate(ctx, update) })
		return false, nil
	}}
	round.tasks = append([]taskWrite{arrive}, round.tasks...)
	round.after = func(err error) {
		if err != nil {
			t.Errorf("launch round: %v", err)
		}
		order <- "launch round"
	}
	c.submit(ctx, round)
	if first := <-order; first != "update" {
		t.Fatalf("the %s was durable first: the update waited for the whole round", first)
	}
	<-order
	checkCachesMatchEtcd(t, c, st, "default/a")
	checkCachesMatchEtcd(t, c, st, "default/b")
	if r := c.taskLocked("default/a", idA); r == nil || r.State != stateRunning {
		t.Fatalf("the update is not in the ledger: %+v", r)
	}
}

// A launch round's events are written once per cluster after its
// transactions, not in each transaction that holds one of the cluster's
// launches; the events of an op that fails are not written.
func TestLateEventsOneHistoryWritePerGroup(t *testing.T) {
	const clusters, offers = 10, 40
	var keys []string
	for i := range clusters {
		keys = append(keys, fmt.Sprintf("c%d", i))
	}
	c, st := newWriterController(t, keys...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var results []chan error
	for o := range offers {
		op := &writeOp{}
		for _, name := range keys {
			id := fmt.Sprintf("default.%s.%d.%08x", name, o, o)
			r := store.TaskRecord{ID: id, Namespace: "default", Cluster: name, Ordinal: int32(o), State: stateStaging}
			if o == offers-1 && name == "c0" {
				r.Message = strings.Repeat("x", 2<<20) // over etcd's request limit: the op fails
			}
			op.tasks = append(op.tasks, taskWrite{key: "default/" + name, id: id, create: &r})
			op.addLateEvents("default/"+name, store.Event{Type: "Normal", Reason: "Launching", Message: id})
		}
		done := make(chan error, 1)
		op.after = func(err error) { done <- err }
		results = append(results, done)
		c.writes <- op // queued before the writer starts: one group
	}
	startWriter(t, c)
	for i, done := range results {
		if err := <-done; (err == nil) != (i < offers-1) {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	// The events follow the ops' completion: wait for every cluster's.
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range keys {
		for {
			evs, err := st.ListEvents(ctx, "default", name)
			if err == nil && len(evs) == offers-1 {
				break // one per committed launch
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d events (%v), want %d: one per committed launch", name, len(evs), err, offers-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A key's version counts its writes since it was created.
	resp, err := st.Client().Get(ctx, writerPrefix+"/events/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	writes := int64(0)
	for _, kv := range resp.Kvs {
		writes += kv.Version
	}
	if writes != clusters {
		t.Fatalf("%d event history writes for %d clusters in one group of %d launch rounds, want one each", writes, clusters, offers)
	}
}
