package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// restartMesos stops the local Mesos (its tasks die with it) and starts a new
// one on the same address, as a Ctrl-C and restart of converge dev does: the
// new master knows neither the old tasks nor the old agents.
func (e *env) restartMesos(o localmesos.Options) {
	e.t.Helper()
	old := e.mesos
	o.Listen = strings.TrimPrefix(old.URL(), "http://")
	o.Log = testLogger(e.t).WithName("localmesos")
	if err := old.Close(); err != nil {
		e.t.Fatalf("close localmesos: %v", err)
	}
	m, err := localmesos.New(o)
	if err != nil {
		e.t.Fatalf("localmesos.New: %v", err)
	}
	if err := m.Start(context.Background()); err != nil {
		e.t.Fatalf("restart localmesos on %s: %v", o.Listen, err)
	}
	e.t.Cleanup(func() { _ = m.Close() })
	e.mesos = m
}

// ledgerTasks reads the cluster's ledger (nil on error: callers poll).
func (e *env) ledgerTasks(name string) []store.TaskRecord {
	rs, err := e.st.ListTasks(context.Background(), "default", name)
	if err != nil {
		return nil
	}
	return rs
}

// TestRestartLeavesNoGhosts is issue 11 §3: converge dev's Ctrl-C kills every
// task with the local Mesos; after the restart, reconciliation answers
// TASK_UNKNOWN for each. They are finished: gone from the status, never
// killed (the one whose kill was pending is not killed again and again), the
// dead master unpublished, and replacements launched at once, not after the
// unreachable timeout (an hour here).
func TestRestartLeavesNoGhosts(t *testing.T) {
	opts := localmesos.Options{Simulate: true, Agents: 3, HeartbeatInterval: 500 * time.Millisecond,
		AllocationInterval: 50 * time.Millisecond, ResendInterval: 300 * time.Millisecond}
	opts.Sim.LaunchDelay = 20 * time.Millisecond
	e := newEnv(t, opts)
	e.cfg.UnreachableTimeout = time.Hour
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) { c.Spec.Election.Strategy = v1alpha1.ElectionOrdinal }))
	c := e.waitReady("db")
	old := map[string]bool{}
	for _, ts := range c.Status.Tasks {
		old[ts.ID] = true
	}
	oldMaster := c.Status.Master.TaskID

	// A kill decided but never delivered (the network loses it), then Ctrl-C.
	for _, p := range e.proxies {
		p.setDrop(scheduler.Call_KILL, true)
	}
	e.eventually(10*time.Second, "scaled to 2 (the status writer races this update)", func() bool {
		c := e.get("db")
		n := int32(2)
		c.Spec.Replicas = &n
		_, err := e.st.Update(context.Background(), c)
		if err != nil && !store.IsConflict(err) {
			t.Fatalf("update: %v", err)
		}
		return err == nil
	})
	e.eventually(20*time.Second, "the kill of ordinal 2 decided", func() bool {
		for _, r := range e.ledgerTasks("db") {
			if r.Ordinal == 2 && r.KillRequested {
				return true
			}
		}
		return false
	})
	e.stop()
	for _, p := range e.proxies {
		p.setDrop(scheduler.Call_KILL, false)
	}
	e.restartMesos(opts)
	mark := len(e.calls(nil))
	restarted := time.Now()
	e.start()

	c = e.waitFor("db", 20*time.Second, "new members, a new master, no ghosts, no kill outstanding", func(c *v1alpha1.Cluster) bool {
		if !clusterReady(c) || c.Status.ReadyReplicas != 2 || c.Status.Master == nil || old[c.Status.Master.TaskID] {
			return false
		}
		for _, ts := range c.Status.Tasks {
			if old[ts.ID] || ts.State == stateUnknown {
				return false
			}
		}
		return e.metric("converge_mesos_kills_outstanding", nil) == 0
	})
	for _, r := range e.ledgerTasks("db") {
		if old[r.ID] && !finished(r.State) {
			t.Fatalf("old task %s is %s in the ledger", r.ID, r.State)
		}
	}
	ep, err := e.st.GetEndpoints(context.Background(), "default", "db")
	if err != nil || ep == nil || ep.Master == nil || old[ep.Master.TaskID] {
		t.Fatalf("published endpoints after the restart: %+v, %v (old master %s)", ep, err, oldMaster)
	}
	killsOfOld := func(from int) int {
		n := 0
		for _, call := range e.calls(nil)[from:] {
			if call.Type == scheduler.Call_KILL && len(call.TaskIDs) == 1 && old[call.TaskIDs[0]] {
				n++
			}
		}
		return n
	}
	t.Logf("restart to Ready with new members and master: %s; KILL calls naming a pre-restart task: %d",
		time.Since(restarted).Round(time.Millisecond), killsOfOld(mark))

	// A master failover makes the bridge re-subscribe, re-issue every kill it
	// still tracks and reconcile the ledger's unfinished tasks: none is old.
	mark = len(e.calls(nil))
	e.mesos.FailoverMaster()
	var recon seenCall
	e.eventually(20*time.Second, "the explicit reconciliation after the failover", func() bool {
		subscribed := false
		for _, call := range e.calls(nil)[mark:] {
			subscribed = subscribed || call.Type == scheduler.Call_SUBSCRIBE
			if subscribed && call.Type == scheduler.Call_RECONCILE && len(call.TaskIDs) > 0 {
				recon = call
				return true
			}
		}
		return false
	})
	for _, id := range recon.TaskIDs {
		if old[id] {
			t.Fatalf("finished task %s reconciled again after the failover: %v", id, recon.TaskIDs)
		}
	}
	e.waitReady("db")
	if n := killsOfOld(mark); n != 0 {
		t.Fatalf("%d KILL calls for pre-restart tasks after the failover", n)
	}
	e.checkConverged("db", 2)
}

// ordinalSample is what one look at Mesos and the ledger saw.
type ordinalSample struct {
	maxPerOrdinal int // tasks that may be alive for one ordinal (unreachable ones too)
	total         int // tasks that may be alive
	ledgerMax     int // unfinished ledger records for one ordinal
	counted       int32
	detail        string
}

// sampleOrdinals reads /master/state over HTTP, the ledger and the status once.
func (e *env) sampleOrdinals(name string) (ordinalSample, error) {
	var s ordinalSample
	resp, err := http.Get(e.mesos.URL() + "/master/state")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	var st localmesos.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return s, err
	}
	perOrd := map[int32][]string{}
	for _, fw := range st.Frameworks {
		for _, ts := range append(append([]localmesos.TaskState(nil), fw.Tasks...), fw.UnreachableTasks...) {
			_, cl, ord, ok := ParseTaskID(ts.ID)
			if !ok || cl != name || IsTerminalState(ts.State) {
				continue
			}
			perOrd[ord] = append(perOrd[ord], ts.ID+" "+ts.State)
			s.total++
			if n := len(perOrd[ord]); n > s.maxPerOrdinal {
				s.maxPerOrdinal, s.detail = n, fmt.Sprintf("ordinal %d: %v", ord, perOrd[ord])
			}
		}
	}
	recs, err := e.st.ListTasks(context.Background(), "default", name)
	if err != nil {
		return s, err
	}
	ledger := map[int32]int{}
	for _, r := range recs {
		if !finished(r.State) {
			ledger[r.Ordinal]++
			s.ledgerMax = max(s.ledgerMax, ledger[r.Ordinal])
		}
	}
	if c := e.get(name); c != nil {
		s.counted = c.Status.Replicas
	}
	return s, nil
}

// watchOrdinals samples until stop is called, which returns the worst seen.
func (e *env) watchOrdinals(name string) (stop func() (worst ordinalSample, samples int)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var worst ordinalSample
	n := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			s, err := e.sampleOrdinals(name)
			if err != nil {
				continue
			}
			n++
			if s.maxPerOrdinal > worst.maxPerOrdinal {
				worst.maxPerOrdinal, worst.detail = s.maxPerOrdinal, s.detail
			}
			worst.total = max(worst.total, s.total)
			worst.ledgerMax = max(worst.ledgerMax, s.ledgerMax)
			worst.counted = max(worst.counted, s.counted)
		}
	}()
	return func() (ordinalSample, int) {
		close(done)
		wg.Wait()
		return worst, n
	}
}

// TestPartitionNeverTwoPerOrdinal is issue 11 §4: the master's agent is cut
// off past the unreachable timeout (lost: its processes frozen; partitioned:
// they run on), a fourth agent could take a replacement, a new master is
// elected among the others, the agent comes back. At no sample of
// /master/state, the ledger or the status are there two members of one
// ordinal that may be alive, more than replicas, or more counted.
func TestPartitionNeverTwoPerOrdinal(t *testing.T) {
	for _, fault := range []string{"lose", "partition"} {
		t.Run(fault, func(t *testing.T) {
			e := newEnv(t, localmesos.Options{Simulate: true, Agents: 4, AgentUnreachableAfter: 300 * time.Millisecond})
			e.start()
			e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) {
				c.Spec.Election.Strategy = v1alpha1.ElectionOrdinal
				c.Spec.Placement.Spread = v1alpha1.SpreadHostname
			}))
			c := e.waitReady("db")
			master := *c.Status.Master
			lost := taskOf(c, master.Ordinal)
			stop := e.watchOrdinals("db")

			cut, heal := e.mesos.LoseAgent, e.mesos.RestoreAgent
			if fault == "partition" {
				cut = e.mesos.PartitionAgent
			}
			partitioned := time.Now()
			if err := cut(lost.AgentID); err != nil {
				t.Fatal(err)
			}
			e.waitFor("db", 20*time.Second, "a new master, the old one written off", func(c *v1alpha1.Cluster) bool {
				if c == nil || c.Status.Master == nil || c.Status.Master.TaskID == master.TaskID {
					return false
				}
				for _, r := range e.ledgerTasks("db") {
					if r.ID == lost.ID {
						return r.KillRequested
					}
				}
				return false
			})
			t.Logf("%s to a new master, the old one written off: %s", fault, time.Since(partitioned).Round(time.Millisecond))
			if err := heal(lost.AgentID); err != nil {
				t.Fatal(err)
			}
			c = e.waitFor("db", 20*time.Second, "the old member killed, its ordinal relaunched", func(c *v1alpha1.Cluster) bool {
				_, alive := e.activeTasks()[lost.ID]
				return !alive && clusterReady(c) && taskOf(c, master.Ordinal).ID != "" && taskOf(c, master.Ordinal).ID != lost.ID
			})
			worst, samples := stop()
			t.Logf("%d samples: at most %d tasks per ordinal, %d in all, %d unfinished ledger records per ordinal, %d counted",
				samples, worst.maxPerOrdinal, worst.total, worst.ledgerMax, worst.counted)
			if samples == 0 {
				t.Fatalf("no sample of /master/state was taken")
			}
			if worst.maxPerOrdinal > 1 || worst.total > 3 || worst.ledgerMax > 1 || worst.counted > 3 {
				t.Fatalf("two members of one ordinal may have been alive (%s), or more than 3: %+v", worst.detail, worst)
			}
			if c.Status.Master == nil || c.Status.Master.TaskID == master.TaskID {
				t.Fatalf("master after the partition: %+v", c.Status.Master)
			}
			e.checkConverged("db", 3)
		})
	}
}
