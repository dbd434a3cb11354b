package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// withVolume gives members a 16Mi volume at data, role db, and a command
// that appends its task id to data/history, so each launch on a volume
// leaves a line there.
func withVolume(replaceAfter time.Duration) func(*v1alpha1.Cluster) {
	return func(c *v1alpha1.Cluster) {
		c.Spec.Role = "db"
		size := resource.MustParse("16Mi")
		c.Spec.Task.Volumes = []v1alpha1.Volume{{Name: "data", ContainerPath: "data", Size: &size}}
		c.Spec.Task.Command = `echo "$MESOS_TASK_ID" >> data/history && exec sleep 1000`
		c.Spec.Placement.ReplaceAfter = &metav1.Duration{Duration: replaceAfter}
	}
}

// reservedResource is one resource of role db that /master/state shows
// reserved (reserved_resources_full) under converge's reservation label.
type reservedResource struct {
	agent, reservation, name string
	value                    float64
}

// reserved lists the resources of role db reserved under converge's
// reservation label (converge.io/reservation), agent by agent.
func (e *env) reserved() []reservedResource {
	var out []reservedResource
	for _, a := range e.mesos.State().Slaves {
		for _, raw := range a.ReservedResourcesFull["db"] {
			var r struct {
				Name   string `json:"name"`
				Scalar struct {
					Value float64 `json:"value"`
				} `json:"scalar"`
				Reservation struct {
					Labels struct {
						Labels []struct{ Key, Value string } `json:"labels"`
					} `json:"labels"`
				} `json:"reservation"`
			}
			_ = json.Unmarshal(raw, &r)
			for _, l := range r.Reservation.Labels.Labels {
				if l.Key == LabelReservation {
					out = append(out, reservedResource{agent: a.ID, reservation: l.Value, name: r.Name, value: r.Scalar.Value})
				}
			}
		}
	}
	return out
}

// reservations are converge's reservation ids per agent in /master/state.
func (e *env) reservations() map[string][]string {
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, r := range e.reserved() {
		if !seen[r.agent+"/"+r.reservation] {
			seen[r.agent+"/"+r.reservation] = true
			out[r.agent] = append(out[r.agent], r.reservation)
		}
	}
	return out
}

// reservedCPUs sums the cpus /master/state shows reserved (role db) under
// converge's reservation id.
func (e *env) reservedCPUs(id string) float64 {
	var sum float64
	for _, r := range e.reserved() {
		if r.reservation == id && r.name == "cpus" {
			sum += r.value
		}
	}
	return sum
}

// reservationOf is the reservation id of ordinal ord's newest record.
func reservationOf(e *env, name string, ord int32) string {
	var newest *store.TaskRecord
	for _, r := range e.ledgerTasks(name) {
		if r.Ordinal == ord && r.Volume != nil && (newest == nil || r.LaunchedAt.After(newest.LaunchedAt)) {
			r := r
			newest = &r
		}
	}
	if newest == nil {
		return ""
	}
	return newest.Volume.ID
}

func (e *env) countReservations() int {
	n := 0
	for _, ids := range e.reservations() {
		n += len(ids)
	}
	return n
}

// history reads the volume of the member whose task is id: its data/history.
func (e *env) history(workDir, agentID, taskID string) []string {
	e.t.Helper()
	matches, _ := filepath.Glob(filepath.Join(workDir, "agents", agentID, "volumes", "roles", "db", "*", "history"))
	for _, m := range matches {
		b, _ := os.ReadFile(m)
		if strings.Contains(string(b), taskID) {
			return strings.Fields(string(b))
		}
	}
	return nil
}

// relaunchedOnVolume waits for ordinal ord of cluster name, Ready, to run
// a task other than old, and checks that it runs on old's agent (which
// holds its volume) and that the volume's history has the given number of
// launches, old's then the new task's last. It returns the new task.
func (e *env) relaunchedOnVolume(work, name string, ord int32, old v1alpha1.TaskStatus, launches int, timeout time.Duration) v1alpha1.TaskStatus {
	e.t.Helper()
	c := e.waitFor(name, timeout, fmt.Sprintf("ordinal %d relaunched", ord), func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, ord).ID != old.ID
	})
	now := taskOf(c, ord)
	if now.AgentID != old.AgentID {
		e.t.Fatalf("ordinal %d relaunched on %s, not on %s which holds its volume", ord, now.AgentID, old.AgentID)
	}
	e.eventually(10*time.Second, fmt.Sprintf("ordinal %d's history: %d launches, %s then %s last", ord, launches, old.ID, now.ID), func() bool {
		h := e.history(work, now.AgentID, now.ID)
		return len(h) == launches && h[len(h)-2] == old.ID && h[len(h)-1] == now.ID
	})
	return now
}

// startVolumes runs cluster vol, two members with volumes (role db), under
// localmesos running real processes with their sandboxes in work, and
// waits for it to be Ready with its two reservations.
func startVolumes(t *testing.T) (e *env, work string, c *v1alpha1.Cluster) {
	t.Helper()
	work = t.TempDir()
	e = newEnv(t, localmesos.Options{WorkDir: work})
	e.cfg.Roles = []string{"*", "db"}
	e.start()
	e.create(newCluster("vol", 2, withVolume(time.Hour)))
	c = e.waitReady("vol")
	e.eventually(10*time.Second, "two reservations", func() bool { return e.countReservations() == 2 })
	return e, work, c
}

// TestVolumes: members with volumes in converge dev's setting (localmesos
// running real processes): a member that crashes is relaunched on the
// agent holding its volume and finds its data; so is one whose agent was
// lost, once the agent is back; scale-down and delete leave no reservation
// in /master/state. (Re-creation elsewhere past placement.replaceAfter:
// TestStickToVolume.)
func TestVolumes(t *testing.T) {
	e, work, c := startVolumes(t)

	// A crash: relaunched on the same agent, on the same data.
	first := taskOf(c, 0)
	e.eventually(10*time.Second, "the first line", func() bool { return len(e.history(work, first.AgentID, first.ID)) == 1 })
	if err := e.mesos.FailTask(first.ID); err != nil {
		t.Fatal(err)
	}
	again := e.relaunchedOnVolume(work, "vol", 0, first, 2, 20*time.Second)

	// Agent loss: the ordinal waits (never two live members of one
	// ordinal); when the agent is back the member returns to its volume.
	lost := taskOf(c, 1)
	if err := e.mesos.LoseAgent(lost.AgentID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("vol", 10*time.Second, "ordinal 1 unreachable", func(c *v1alpha1.Cluster) bool {
		return c != nil && taskOf(c, 1).State == stateUnreachable
	})
	if err := e.mesos.RestoreAgent(lost.AgentID); err != nil {
		t.Fatal(err)
	}
	back := e.relaunchedOnVolume(work, "vol", 1, lost, 2, 30*time.Second)
	if n := e.countReservations(); n != 2 {
		t.Fatalf("%d reservations, want 2: %v", n, e.reservations())
	}

	// A rolling update of task.resources: each member is relaunched on its
	// volume, its reservation resized (RESERVE the growth in the relaunch's
	// ACCEPT).
	e.update("vol", func(c *v1alpha1.Cluster) {
		cpu := resource.MustParse("250m")
		c.Spec.Task.Resources.CPUs = &cpu
	})
	e.eventually(30*time.Second, "both reservations hold 0.25 cpus", func() bool {
		cur := e.get("vol")
		for _, ord := range []int32{0, 1} {
			ts := taskOf(cur, ord)
			if !clusterReady(cur) || ts.ID == again.ID || ts.ID == back.ID || math.Abs(e.reservedCPUs(reservationOf(e, "vol", ord))-0.25) > 1e-9 {
				return false
			}
		}
		return true
	})
	e.relaunchedOnVolume(work, "vol", 1, back, 3, 10*time.Second)

	// Scale-down, then delete: nothing left reserved.
	e.update("vol", func(c *v1alpha1.Cluster) { one := int32(1); c.Spec.Replicas = &one })
	e.eventually(20*time.Second, "one reservation after scale-down", func() bool { return e.countReservations() == 1 })
	if _, _, err := e.st.Delete(context.Background(), "default", "vol"); err != nil {
		t.Fatal(err)
	}
	e.eventually(20*time.Second, "no reservation after delete", func() bool { return e.countReservations() == 0 })
}

// TestStickToVolume: a member whose task ended is relaunched on the
// volumes its newest record holds until placement.replaceAfter has passed
// since the task ended; then it gets new volumes wherever it fits (the
// Need counts their disk) and the old record is the one abandoned. The
// record holding a wanted ordinal's volumes is never forgotten.
func TestStickToVolume(t *testing.T) {
	c := testCluster(1, withVolume(20*time.Minute))
	vol := &store.VolumeRecord{ID: "r0", Role: "db", CPUs: 0.1, MemMB: 32, Volumes: []store.VolumeSpec{{Name: "data", ContainerPath: "data", SizeMB: 16}}}
	ended := func(ago time.Duration) store.TaskRecord {
		return rec(c, 0, "TASK_LOST", func(r *store.TaskRecord) { r.Volume, r.UpdatedAt = vol, t0.Add(-ago) })
	}
	out := Plan(in(c, []store.TaskRecord{ended(19 * time.Minute)}))
	if len(out.Needs) != 1 || out.Needs[0].Volume != vol || out.Needs[0].VolumeAgent != "agent-0" || out.Needs[0].NewVolumes {
		t.Fatalf("within replaceAfter: needs %+v, want ordinal 0 pinned to agent-0's volume", out.Needs)
	}
	if len(out.Forget) != 0 {
		t.Fatalf("the record holding the volume was forgotten: %v", out.Forget)
	}
	old := ended(21 * time.Minute)
	out = Plan(in(c, []store.TaskRecord{old}))
	n := out.Needs[0]
	if n.Volume != nil || !n.NewVolumes || n.Abandoned == nil || n.Abandoned.ID != old.ID || n.DiskMB != 16 {
		t.Fatalf("past replaceAfter: need %+v, want new volumes (16 MiB of disk) abandoning %s", n, old.ID)
	}
	first := Plan(in(c, nil)).Needs[0]
	if !first.NewVolumes || first.Volume != nil {
		t.Fatalf("first launch: need %+v, want new volumes", first)
	}

	// Its agent marked gone (TASK_GONE_BY_OPERATOR, here or for another
	// member on that agent): new volumes at once, replaceAfter or not.
	gone := rec(c, 0, stateGoneByOperator, func(r *store.TaskRecord) { r.Volume = vol })
	n = Plan(in(c, []store.TaskRecord{gone})).Needs[0]
	if n.Volume != nil || !n.NewVolumes || !n.AgentGone || n.Abandoned == nil || n.Abandoned.ID != gone.ID {
		t.Fatalf("agent marked gone: need %+v, want new volumes abandoning %s", n, gone.ID)
	}
	c2 := testCluster(2, withVolume(20*time.Minute))
	killed := rec(c2, 0, "TASK_KILLED", func(r *store.TaskRecord) { r.Volume = vol })
	other := rec(c2, 1, stateGoneByOperator, func(r *store.TaskRecord) { r.AgentID = killed.AgentID })
	for _, n := range Plan(in(c2, []store.TaskRecord{killed, other})).Needs {
		if n.Ordinal == 0 && (!n.NewVolumes || !n.AgentGone) {
			t.Fatalf("ordinal 0, whose agent another member saw gone: need %+v, want new volumes", n)
		}
	}
}

// TestReleasesSkipGoneAgents: reservations on an agent Mesos reported gone
// (a task there ended TASK_GONE_BY_OPERATOR) went with it: they are not
// pending release (offers would be wanted for ever: a gone agent never
// offers again), nor are those of a deleted cluster on it.
func TestReleasesSkipGoneAgents(t *testing.T) {
	c, err := New(Config{Store: &store.Store{}, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	cl := testCluster(1, withVolume(time.Hour))
	vol := func(id string) func(*store.TaskRecord) {
		return func(r *store.TaskRecord) { r.Volume = &store.VolumeRecord{ID: id, Role: "db"} }
	}
	old := rec(cl, 0, stateGoneByOperator, vol("r-old"))
	now := rec(cl, 0, stateRunning, vol("r-new"), func(r *store.TaskRecord) { r.ID, r.AgentID, r.LaunchedAt = "new", "agent-1", t0 })
	elsewhere := rec(cl, 1, "TASK_KILLED", vol("r-1"), func(r *store.TaskRecord) { r.AgentID = "agent-2" })
	c.roomLocked("default/db").cluster = cl
	c.roomLocked("default/db").tasks = map[string]*store.TaskRecord{old.ID: &old, now.ID: &now, elsewhere.ID: &elsewhere}
	c.releasing["agent-0/r-deleted"] = &store.VolumeRecord{ID: "r-deleted", Role: "db"}
	c.mu.Lock()
	c.noteVolumesLocked("default/db", cl, nil)
	got := c.pendingReleases()
	c.mu.Unlock()
	if len(got) != 1 || got[0] != "r-1" {
		t.Fatalf("pending releases %v, want only r-1 (r-old and r-deleted were on the gone agent-0, r-new is kept)", got)
	}
}

// TestVolumesCrash: a controller killed (as by kill -9) after checkpointing
// a launch with new volumes but before its ACCEPT, or right after the
// ACCEPT that reserved, created and launched, leaks nothing: restarted, it
// ends with one reservation per member, and after a scale to zero made
// while it was down, with none.
func TestVolumesCrash(t *testing.T) {
	for _, point := range []string{FailpointLaunchAfterCheckpoint, FailpointLaunchAfterAccept} {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t, localmesos.Options{Simulate: true})
			e.cfg.Roles = []string{"*", "db"}
			e.crashAt(point)
			e.start()
			e.create(newCluster("vol", 2, withVolume(time.Hour)))
			e.waitStopped()
			made := e.countReservations()
			if point == FailpointLaunchAfterCheckpoint && made != 0 {
				t.Fatalf("%d reservations before any ACCEPT", made)
			}
			e.cfg.Failpoint = nil
			e.start()
			e.waitReady("vol")
			e.eventually(10*time.Second, "two reservations", func() bool { return e.countReservations() == 2 })
			e.stop()
			e.update("vol", func(c *v1alpha1.Cluster) { zero := int32(0); c.Spec.Replicas = &zero })
			e.start()
			e.eventually(20*time.Second, "no reservation after the scale to zero", func() bool { return e.countReservations() == 0 })
		})
	}
}

// TestVolumesAgentGone: a member whose agent is lost stays unreachable, its
// ordinal taken, until an operator marks the agent gone over Mesos's
// operator API (MARK_AGENT_GONE); then, long before placement.replaceAfter,
// it is re-created on another agent with a new, empty volume, an event says
// so (that nothing more is waited for on the gone agent: TestReleasesSkipGoneAgents).
// At no sample
// of /master/state or the ledger are there two members of one ordinal that
// may be alive.
func TestVolumesAgentGone(t *testing.T) {
	e, work, c := startVolumes(t)
	stop := e.watchOrdinals("vol")

	lost := taskOf(c, 1)
	if err := e.mesos.LoseAgent(lost.AgentID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("vol", 10*time.Second, "ordinal 1 unreachable", func(c *v1alpha1.Cluster) bool {
		return c != nil && taskOf(c, 1).State == stateUnreachable
	})
	body := `{"type":"MARK_AGENT_GONE","mark_agent_gone":{"agent_id":{"value":"` + lost.AgentID + `"}}}`
	resp, err := http.Post(e.mesos.URL()+"/api/v1", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("MARK_AGENT_GONE: %s", resp.Status)
	}
	c = e.waitFor("vol", 30*time.Second, "ordinal 1 re-created", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, 1).ID != lost.ID
	})
	again := taskOf(c, 1)
	if again.AgentID == lost.AgentID {
		t.Fatalf("ordinal 1 re-created on the gone agent %s", lost.AgentID)
	}
	e.eventually(10*time.Second, "the new volume holds only the new member's line", func() bool {
		h := e.history(work, again.AgentID, again.ID)
		return len(h) == 1 && h[0] == again.ID
	})
	// Both members may have run on the lost agent: ordinal 1's event, then.
	var msg string
	for _, ev := range e.events("vol") {
		if ev.Reason == "VolumesReplaced" && strings.Contains(ev.Message, "of ordinal 1,") {
			msg = ev.Message
		}
	}
	if !strings.Contains(msg, "ordinal 1") || !strings.Contains(msg, lost.Hostname) || !strings.Contains(msg, "marked gone") || !strings.Contains(msg, "new, empty volumes") {
		t.Fatalf("VolumesReplaced event %q: want ordinal 1, agent %s, marked gone, new, empty volumes", msg, lost.Hostname)
	}
	e.eventually(10*time.Second, "two reservations, none on the gone agent", func() bool {
		r := e.reservations()
		return e.countReservations() == 2 && len(r[lost.AgentID]) == 0
	})
	if worst, n := stop(); worst.maxPerOrdinal > 1 || worst.ledgerMax > 1 {
		t.Fatalf("two members of one ordinal that may be alive (%d samples): %s; ledger %d", n, worst.detail, worst.ledgerMax)
	}
}

// crashStandbyKeepsData: in a database example, the server of a member that
// is not the master dies (kill -9 of the pid in db.pidFile); the member is
// relaunched on the agent holding its volume and starts on its data: the
// row 'first' written before is there and fresh, asked of the
// new task id and the time of the crash, says its data was not made anew
// (no new copy of the master).
func crashStandbyKeepsData(t *testing.T, e *env, work string, db exampleDB, fresh func(id string, crashed time.Time) bool) {
	t.Helper()
	c := e.get(db.cluster)
	var victim v1alpha1.TaskStatus
	for _, ts := range c.Status.Tasks {
		if c.Status.Master != nil && ts.ID != c.Status.Master.TaskID {
			victim = ts
			break
		}
	}
	crashed := killServer(t, work, victim.ID, db.pidFile)
	c = e.waitFor(db.cluster, 90*time.Second, "the crashed member relaunched", func(c *v1alpha1.Cluster) bool {
		ts := taskOf(c, victim.Ordinal)
		return clusterReady(c) && ts.ID != victim.ID && ts.ID != ""
	})
	again := taskOf(c, victim.Ordinal)
	if again.AgentID != victim.AgentID {
		t.Fatalf("ordinal %d relaunched on %s, not on %s which holds its volume", victim.Ordinal, again.AgentID, victim.AgentID)
	}
	db.waitRow(t, taskAddr(again), "first", 30*time.Second)
	if fresh(again.ID, crashed) {
		t.Fatalf("ordinal %d relaunched on new data, not on its volume's", victim.Ordinal)
	}
	t.Logf("ordinal %d: server killed, relaunched on its agent on its data in %.1fs", victim.Ordinal, time.Since(crashed).Seconds())
}
