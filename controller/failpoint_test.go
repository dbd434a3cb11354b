package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// masterWatch records, from every revision of the election records, the
// endpoints and the clusters' status (an etcd watch from revision 1 misses
// none), which master each epoch had. Two masters in one epoch is the
// split brain the epoch exists to prevent.
type masterWatch struct {
	mu      sync.Mutex
	masters map[string]map[int64]map[string]bool // cluster -> epoch -> master task ids
	cancel  context.CancelFunc
	done    chan struct{}
}

func watchMasters(t *testing.T, cli *clientv3.Client, prefix string) *masterWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &masterWatch{masters: map[string]map[int64]map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(1))
	go func() {
		defer close(w.done)
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				w.observe(strings.TrimPrefix(string(ev.Kv.Key), prefix+"/"), ev.Kv.Value)
			}
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *masterWatch) stop() { w.cancel(); <-w.done }

func (w *masterWatch) observe(key string, val []byte) {
	kind, rest, _ := strings.Cut(key, "/")
	switch kind {
	case "elections":
		var e store.ElectionRecord
		if json.Unmarshal(val, &e) == nil && e.MasterTaskID != "" {
			w.add(rest, e.Epoch, e.MasterTaskID)
		}
	case "endpoints":
		var e store.Endpoints
		if json.Unmarshal(val, &e) == nil && e.Master != nil {
			w.add(rest, e.Epoch, e.Master.TaskID)
		}
	case "clusters":
		var c v1alpha1.Cluster
		if json.Unmarshal(val, &c) == nil && c.Status.Master != nil {
			w.add(rest, c.Status.Master.Epoch, c.Status.Master.TaskID)
		}
	}
}

func (w *masterWatch) add(cluster string, epoch int64, master string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.masters[cluster] == nil {
		w.masters[cluster] = map[int64]map[string]bool{}
	}
	if w.masters[cluster][epoch] == nil {
		w.masters[cluster][epoch] = map[string]bool{}
	}
	w.masters[cluster][epoch][master] = true
}

// splitBrain describes every epoch that had more than one master.
func (w *masterWatch) splitBrain() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for cl, epochs := range w.masters {
		for ep, ms := range epochs {
			if len(ms) > 1 {
				out = append(out, fmt.Sprintf("%s epoch %d: masters %v", cl, ep, ms))
			}
		}
	}
	return out
}

func (w *masterWatch) epochs(cluster string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.masters[cluster])
}

var errCrash = errors.New("crash injected")

// crashAtFailpoint arms Config.Failpoint so that the controller crashes (its
// context is cancelled and the failpoint returns an error, so the step in
// progress goes no further) at the skip+1-th time name is reached once armed.
func (e *env) crashAtFailpoint(name string, skip int32, armed *atomic.Bool) *atomic.Bool {
	fired := &atomic.Bool{}
	var hits atomic.Int32
	e.cfg.Failpoint = func(n string) error {
		if n != name || !armed.Load() || fired.Load() {
			return nil
		}
		if hits.Add(1) <= skip {
			return nil
		}
		if !fired.CompareAndSwap(false, true) {
			return nil
		}
		e.mu.Lock()
		cancel := e.cancel
		e.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		return errCrash
	}
	return fired
}

// TestFailpoints kills the controller at each checkpoint boundary (issue 7)
// and restarts a fresh one on the same etcd and Mesos. Whatever the point,
// the cluster converges to Ready with exactly one task per ordinal, no task
// the ledger does not know, and never two masters in one epoch.
func TestFailpoints(t *testing.T) {
	type tc struct {
		point string
		skip  int32
		// reelect arms the failpoint only once the cluster is Ready, then
		// fails the master so the point is reached during a re-election and
		// the replacement's launch.
		reelect bool
	}
	cases := []tc{
		{FailpointLaunchBeforeCheckpoint, 0, false},
		{FailpointLaunchAfterCheckpoint, 0, false},
		{FailpointLaunchAfterAccept, 0, false},
		{FailpointAckBefore, 0, false},
		{FailpointAckBefore, 3, false},
		{FailpointAckAfter, 0, false},
		{FailpointAckAfter, 3, false},
		{FailpointElectionBeforePersist, 0, false},
		{FailpointElectionAfterPersist, 0, false},
		{FailpointElectionAfterPersist, 1, false},
		{FailpointPublishBefore, 0, false},
		{FailpointPublishAfter, 0, false},
		{FailpointStatusBefore, 0, false},
		{FailpointElectionBeforePersist, 0, true},
		{FailpointElectionAfterPersist, 0, true},
		{FailpointElectionAfterPersist, 1, true},
		{FailpointPublishAfter, 0, true},
		{FailpointLaunchAfterCheckpoint, 0, true},
		{FailpointAckAfter, 0, true},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s#%d", c.point, c.skip+1)
		if c.reelect {
			name += "/reelection"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, localmesos.Options{Simulate: true})
			masters := watchMasters(t, e.etcd.Client(), "/converge")
			armed := &atomic.Bool{}
			armed.Store(!c.reelect)
			fired := e.crashAtFailpoint(c.point, c.skip, armed)
			e.start()
			e.create(newCluster("db", 3, positional))

			if c.reelect {
				cl := e.waitReady("db")
				armed.Store(true)
				if cl.Status.Master == nil {
					t.Fatal("Ready without a master")
				}
				if err := e.mesos.FailTask(cl.Status.Master.TaskID); err != nil {
					t.Fatalf("fail the master: %v", err)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for !fired.Load() {
				if time.Now().After(deadline) {
					t.Fatalf("failpoint %s was never reached", c.point)
				}
				time.Sleep(10 * time.Millisecond)
			}
			e.waitStopped()

			// A fresh controller on the same etcd and Mesos.
			e.cfg.Failpoint = nil
			e.start()
			e.waitReady("db")
			e.checkConverged("db", 3)
			cl := e.waitFor("db", 10*time.Second, "a master", func(cl *v1alpha1.Cluster) bool {
				return cl != nil && cl.Status.Master != nil
			})
			if _, ok := e.activeTasks()[cl.Status.Master.TaskID]; !ok {
				t.Errorf("master %s is not a running task", cl.Status.Master.TaskID)
			}
			if sb := masters.splitBrain(); len(sb) > 0 {
				t.Errorf("two masters in one epoch: %v", sb)
			}
			if c.reelect && masters.epochs("default/db") < 2 {
				t.Errorf("no re-election was seen")
			}
		})
	}
}
