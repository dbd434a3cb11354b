package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

// checkHandovers runs on an example cluster that is Ready with 3 members,
// with a client writing to the published master all along:
//   - `converge switchover --to` another ordinal (the CLI's own code): that
//     member becomes master, the old one keeps running and replicates from
//     it, every acknowledged write is on the new master;
//   - a rolling update (a changed env): the master is handed over before its
//     task is stopped, Mesos never runs fewer than replicas - maxUnavailable
//     members, every acknowledged write is on every member at the end.
//
// It logs the write downtime of each: from the last write the old master
// acknowledged to the first the new one did.
func checkHandovers(t *testing.T, e *env, db exampleDB) {
	c := e.waitFor(db.cluster, 90*time.Second, "Ready", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && len(c.Status.Tasks) == 3
	})
	db.synced(t, c, 2, 60*time.Second)
	first := *c.Status.Master
	log := &writeLog{}
	published := &target{}
	published.set(addrOf(first))
	stopFollow := followMaster(e, db.cluster, published)
	defer stopFollow()
	stopWriter := db.writer(log, "handover", published.get)
	defer stopWriter()
	start := time.Now()
	log.waitAcks(t, addrOf(first), start, 5, 20*time.Second)

	// converge switchover cluster/NAME --to (the next ordinal) --wait
	to := (first.Ordinal + 1) % 3
	req, err := cli.RequestSwitchover(context.Background(), e.st, "default", db.cluster, &to, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	sw, err := cli.WaitSwitchover(wctx, e.st, "default", db.cluster, req)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	c = e.waitFor(db.cluster, 10*time.Second, "the new master published", func(c *v1alpha1.Cluster) bool {
		return c.Status.Master != nil && c.Status.Master.Epoch == sw.Epoch
	})
	second := *c.Status.Master
	if second.Ordinal != to {
		t.Fatalf("switchover --to %d: master %+v", to, second)
	}
	// Kept, unless its demotion outlasted its lease (a loaded machine): then
	// it was killed, and its replacement follows.
	t.Logf("%s switchover: the old master (ordinal %d) was kept: %t", db.cluster, first.Ordinal, taskOf(c, first.Ordinal).ID == first.TaskID)
	log.waitAcks(t, addrOf(second), start, 5, 30*time.Second)
	t.Logf("%s switchover --to %d (ordinal %d -> %d, epoch %d): write downtime %s",
		db.cluster, to, first.Ordinal, second.Ordinal, second.Epoch, log.downtime(addrOf(first), addrOf(second), start))
	log.checkOn(t, addrOf(second), db.ids)
	logHandover(t, e.events(db.cluster), req.At)
	// The old master follows: both others replicate from the new one.
	db.synced(t, c, 2, 60*time.Second)

	// A rolling update: a changed setting.
	minRunning, stopWatch := watchRunning(e, db.cluster)
	rolled := time.Now()
	e.update(db.cluster, func(c *v1alpha1.Cluster) {
		if c.Spec.Task.Env == nil {
			c.Spec.Task.Env = map[string]string{}
		}
		c.Spec.Task.Env["ROLL"] = "2" // a changed setting: a new task template
	})
	c = e.waitFor(db.cluster, 120*time.Second, "the rolling update", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.UpdatedReplicas == 3 && c.Status.Master != nil && c.Status.Master.Epoch > second.Epoch
	})
	stopWatch()
	third := *c.Status.Master
	db.synced(t, c, 2, 60*time.Second)
	log.waitAcks(t, addrOf(third), rolled, 5, 30*time.Second)
	stopWriter()
	if n := minRunning(); n < 2 {
		t.Errorf("Mesos ran %d members of %s at one point of the rolling update, want at least 3 - maxUnavailable = 2", n, db.cluster)
	}
	checkHandedOverFirst(t, e.events(db.cluster), second.TaskID)
	longest, at := log.longestGap(rolled, time.Time{})
	// Before the handover: while the members that are not master were
	// replaced (readiness checks hold each replacement until it replicates).
	others, oat := log.longestGap(rolled, handingOverAt(e.events(db.cluster), "rolling update"))
	t.Logf("%s rolling update (ordinal %d -> %d, epoch %d): write downtime of the handover %s; longest write gap of the whole update %s (at %s), of those that ended before the handover began %s (at %s)",
		db.cluster, second.Ordinal, third.Ordinal, third.Epoch, log.downtime(addrOf(second), addrOf(third), rolled), longest, at.Format("15:04:05.000"), others, oat.Format("15:04:05.000"))
	logHandover(t, e.events(db.cluster), "rolling update")
	for _, ts := range c.Status.Tasks {
		log.waitAllOn(taskAddr(ts), db.ids, 30*time.Second) // a new member may still be catching up
		log.checkOn(t, taskAddr(ts), db.ids)
	}
}

// waitAllOn waits until every acknowledged write is readable on addr, or
// the timeout passes (checkOn then says which are not).
func (l *writeLog) waitAllOn(addr string, ids func(addr string) ([]string, error), timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		want := make([]string, len(l.acks))
		for i, w := range l.acks {
			want[i] = w.id
		}
		l.mu.Unlock()
		if rows, err := ids(addr); err == nil {
			have := make(map[string]bool, len(rows))
			for _, id := range rows {
				have[id] = true
			}
			missing := 0
			for _, id := range want {
				if !have[id] {
					missing++
				}
			}
			if missing == 0 {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logHandover logs the steps of the last handover whose reason mentions
// what, each with its time from the first.
func logHandover(t *testing.T, evs []store.Event, what string) {
	t.Helper()
	from := -1
	for i, ev := range evs {
		if ev.Reason == "HandingOver" && strings.Contains(ev.Message, what) {
			from = i
		}
	}
	if from < 0 {
		return
	}
	var steps []string
	for _, ev := range evs[from:] {
		switch ev.Reason {
		case "HandingOver", "Demoted", "Elected", "SwitchedOver":
			steps = append(steps, fmt.Sprintf("+%.2fs %s", ev.Time.Sub(evs[from].Time).Seconds(), ev.Reason))
		}
		if ev.Reason == "SwitchedOver" {
			break
		}
	}
	t.Logf("handover steps (%s): %s", what, strings.Join(steps, ", "))
}

// checkHandedOverFirst checks, in the controller's event history, that the
// master handed over (SwitchedOver) before old, the old master, was stopped,
// and that the controller stopped it (Killing): a demoted master stays up,
// a standby, until then; its task ending by itself meanwhile (run.sh taking
// demote.sh's stop for a crash) fails the test.
func checkHandedOverFirst(t *testing.T, evs []store.Event, old string) {
	t.Helper()
	handed, killed := -1, -1
	for i, ev := range evs {
		if ev.Reason == "SwitchedOver" && handed < 0 && strings.Contains(ev.Message, "rolling update") {
			handed = i
		}
		if ev.Reason == "Killing" && strings.Contains(ev.Message, old) {
			killed = i
		}
	}
	if handed < 0 || killed < 0 || killed < handed {
		var lines []string
		for _, ev := range evs {
			lines = append(lines, ev.Reason+": "+ev.Message)
		}
		why := "it was killed first"
		switch {
		case handed < 0:
			why = "no handover"
		case killed < 0:
			why = "the controller never killed it: its task ended by itself"
		}
		t.Errorf("want the master handed over (SwitchedOver) before the controller kills the old master %s (%s); events:\n%s", old, why, strings.Join(lines, "\n"))
	}
}

// downtime is the time from the last write oldAddr acknowledged to the first
// newAddr did, of the writes sent since then.
func (l *writeLog) downtime(oldAddr, newAddr string, since time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lastOld, firstNew time.Time
	for _, w := range l.acks {
		if w.sent.Before(since) {
			continue
		}
		if w.addr == newAddr && (firstNew.IsZero() || w.acked.Before(firstNew)) {
			firstNew = w.acked
		}
	}
	for _, w := range l.acks {
		if !w.sent.Before(since) && w.addr == oldAddr && w.acked.Before(firstNew) && w.acked.After(lastOld) {
			lastOld = w.acked
		}
	}
	if lastOld.IsZero() || firstNew.IsZero() {
		return "unknown (no write acknowledged by the old or the new master)"
	}
	return fmt.Sprintf("%.2fs", firstNew.Sub(lastOld).Seconds())
}

// handingOverAt is when the last handover whose reason mentions what began
// (zero if none).
func handingOverAt(evs []store.Event, what string) time.Time {
	var at time.Time
	for _, ev := range evs {
		if ev.Reason == "HandingOver" && strings.Contains(ev.Message, what) {
			at = ev.Time
		}
	}
	return at
}

// longestGap is the longest time between two acknowledgements of writes
// sent since then, of the gaps that ended before until (any, if zero), and
// when it began.
func (l *writeLog) longestGap(since, until time.Time) (time.Duration, time.Time) {
	l.mu.Lock()
	var acked []time.Time
	for _, w := range l.acks {
		if !w.sent.Before(since) {
			acked = append(acked, w.acked)
		}
	}
	l.mu.Unlock()
	sort.Slice(acked, func(i, j int) bool { return acked[i].Before(acked[j]) })
	var longest time.Duration
	var at time.Time
	for i := 1; i < len(acked); i++ {
		if !until.IsZero() && !acked[i].Before(until) {
			break
		}
		if d := acked[i].Sub(acked[i-1]); d > longest {
			longest, at = d, acked[i-1]
		}
	}
	return longest.Round(10 * time.Millisecond), at
}
