package controller

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testCluster(replicas int32, mods ...func(*v1alpha1.Cluster)) *v1alpha1.Cluster {
	c := &v1alpha1.Cluster{}
	c.Name, c.Namespace, c.Generation = "db", "default", 1
	c.Finalizers = []string{v1alpha1.Finalizer}
	c.Spec.Replicas = &replicas
	c.Spec.Task.Command = "sleep 1000"
	cpu, mem := resource.MustParse("100m"), resource.MustParse("64Mi")
	c.Spec.Task.Resources = v1alpha1.Resources{CPUs: &cpu, Mem: &mem, Ports: 1}
	v1alpha1.SetDefaults(c)
	for _, m := range mods {
		m(c)
	}
	return c
}

func strategy(s string) func(*v1alpha1.Cluster) {
	return func(c *v1alpha1.Cluster) { c.Spec.Election.Strategy = s }
}

// rec is a ledger record of the cluster's current template.
func rec(c *v1alpha1.Cluster, ord int32, state string, mods ...func(*store.TaskRecord)) store.TaskRecord {
	r := store.TaskRecord{
		ID: TaskID(c.Namespace, c.Name, ord, "a"+string(rune('0'+ord))), Namespace: c.Namespace, Cluster: c.Name, Ordinal: ord,
		TemplateHash: v1alpha1.TemplateHash(&c.Spec), AgentID: "agent-" + string(rune('0'+ord)),
		Hostname: "127.0.0." + string(rune('1'+ord)), Ports: []int32{31000 + ord}, State: state,
		LaunchedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Minute),
	}
	if c.Spec.Election.Strategy == v1alpha1.ElectionPosition {
		r.ExecutorID = r.ID
	}
	for _, m := range mods {
		m(&r)
	}
	return r
}

func running(c *v1alpha1.Cluster, ords ...int32) []store.TaskRecord {
	var out []store.TaskRecord
	for _, o := range ords {
		out = append(out, rec(c, o, stateRunning))
	}
	return out
}

func in(c *v1alpha1.Cluster, tasks []store.TaskRecord, mods ...func(*Input)) Input {
	i := Input{Cluster: c, Tasks: tasks, Reconciled: true, Now: t0, UnreachableTimeout: time.Minute, StallAfter: 10 * time.Second}
	for _, m := range mods {
		m(&i)
	}
	withLease(&i)
	return i
}

// withLease gives the recorded master, unless a test says otherwise, the
// lease a healthy master holds: renewed just now, or, while its agent is
// unreachable, last renewed when it became unreachable.
func withLease(i *Input) {
	e := i.Election
	if e == nil || e.MasterTaskID == "" || i.Lease.TaskID != "" {
		return
	}
	i.Lease = LeaseState{Epoch: e.Epoch, TaskID: e.MasterTaskID, GrantedAt: i.Now, Followed: i.Lease.Followed}
	for _, r := range i.Tasks {
		if r.ID == e.MasterTaskID && r.State == stateUnreachable {
			i.Lease.GrantedAt = r.UpdatedAt
			if r.UnreachableAt != nil {
				i.Lease.GrantedAt = *r.UnreachableAt
			}
		}
	}
}

// checkNeeds checks the ordinals out launches and how many it leaves waiting.
func checkNeeds(t *testing.T, out Output, needs []int32, waiting int) {
	t.Helper()
	if got := needOrdinals(out); !reflect.DeepEqual(got, needs) {
		t.Errorf("needs = %v, want %v", got, needs)
	}
	if out.Waiting != waiting {
		t.Errorf("waiting = %d, want %d", out.Waiting, waiting)
	}
}

func needOrdinals(o Output) []int32 {
	var out []int32
	for _, n := range o.Needs {
		out = append(out, n.Ordinal)
	}
	return out
}

func killed(o Output, newOnly bool) []int32 {
	var out []int32
	for _, k := range o.Kills {
		if k.New || !newOnly {
			out = append(out, k.Ordinal)
		}
	}
	return out
}

func cond(o Output, typ string) metav1.Condition {
	c := v1alpha1.FindCondition(o.Status.Conditions, typ)
	if c == nil {
		return metav1.Condition{}
	}
	return *c
}

func elected(c *v1alpha1.Cluster, master store.TaskRecord, epoch int64, phase string) *store.ElectionRecord {
	t := t0.Add(-time.Hour)
	return &store.ElectionRecord{Epoch: epoch, Phase: phase, MasterTaskID: master.ID, MasterOrdinal: master.Ordinal, ElectedAt: &t, StartedAt: t, Deadline: t}
}

func TestPlanMembers(t *testing.T) {
	c3 := testCluster(3)
	newTemplate := testCluster(3, func(c *v1alpha1.Cluster) { c.Spec.Task.Command = "sleep 2000"; c.Generation = 2 })
	ord := testCluster(3, strategy(v1alpha1.ElectionOrdinal))
	ordNew := testCluster(3, strategy(v1alpha1.ElectionOrdinal), func(c *v1alpha1.Cluster) { c.Spec.Task.Command = "sleep 2000" })
	ordNew2 := testCluster(3, strategy(v1alpha1.ElectionOrdinal), func(c *v1alpha1.Cluster) {
		c.Spec.Task.Command = "sleep 2000"
		two := int32(2)
		c.Spec.Update.MaxUnavailable = &two
	})
	old := func(ords ...int32) []store.TaskRecord { return running(ord, ords...) } // old template of ordNew
	ordOf := func(c *v1alpha1.Cluster, n int32) *v1alpha1.Cluster {
		cc := c.DeepCopy()
		cc.Spec.Replicas = &n
		return cc
	}

	tests := []struct {
		name      string
		in        Input
		needs     []int32
		waiting   int
		newKills  []int32
		allKills  []int32
		ready     metav1.ConditionStatus
		reason    string
		finalizer string // "add", "remove", ""
	}{
		{name: "fresh cluster launches every ordinal and adds the finalizer",
			in:    in(testCluster(3, func(c *v1alpha1.Cluster) { c.Finalizers = nil }), nil),
			needs: []int32{0, 1, 2}, ready: metav1.ConditionFalse, reason: ReasonLaunching, finalizer: "add"},
		{name: "before reconciliation nothing missing is launched",
			in:      in(c3, running(c3, 0), func(i *Input) { i.Reconciled = false }),
			waiting: 2, ready: metav1.ConditionFalse, reason: ReasonWaitingReconcile},
		{name: "all running is ready",
			in: in(c3, running(c3, 0, 1, 2)), ready: metav1.ConditionTrue, reason: ReasonReady},
		{name: "failed member is replaced with its ordinal",
			in:    in(c3, append(running(c3, 0, 2), rec(c3, 1, "TASK_FAILED"))),
			needs: []int32{1}, ready: metav1.ConditionFalse, reason: ReasonLaunching},
		{name: "lost, gone, dropped and error are replaced",
			in: in(testCluster(5), []store.TaskRecord{
				rec(c3, 0, "TASK_LOST"), rec(c3, 1, "TASK_GONE"), rec(c3, 2, "TASK_DROPPED"), rec(c3, 3, "TASK_ERROR"), rec(c3, 4, stateRunning)}),
			needs: []int32{0, 1, 2, 3}, ready: metav1.ConditionFalse, reason: ReasonLaunching},
		{name: "unreachable within the timeout is not missing",
			in: in(c3, append(running(c3, 0, 2), rec(c3, 1, stateUnreachable, func(r *store.TaskRecord) {
				u := t0.Add(-30 * time.Second)
				r.UnreachableAt = &u
			}))),
			ready: metav1.ConditionFalse, reason: ReasonMembersNotReady},
		{name: "unknown to Mesos (reconciliation answered TASK_UNKNOWN) is finished and relaunched at once",
			in: in(c3, append(running(c3, 0, 2), rec(c3, 1, stateUnknown, func(r *store.TaskRecord) {
				r.Reason, r.UpdatedAt = "REASON_RECONCILIATION", t0
			}))),
			needs: []int32{1}, ready: metav1.ConditionFalse, reason: ReasonLaunching},
		{name: "unreachable past the timeout is killed, its ordinal not relaunched while it may be alive",
			in: in(c3, append(running(c3, 0, 2), rec(c3, 1, stateUnreachable, func(r *store.TaskRecord) {
				u := t0.Add(-2 * time.Minute)
				r.UnreachableAt = &u
			}))),
			waiting: 1, newKills: []int32{1}, allKills: []int32{1}, ready: metav1.ConditionFalse, reason: ReasonLaunching},
		{name: "a staging member is not missing",
			in: in(c3, append(running(c3, 0, 2), rec(c3, 1, stateStaging))), ready: metav1.ConditionFalse, reason: ReasonMembersNotReady},
		{name: "scale up launches the next ordinals",
			in: in(testCluster(5), running(c3, 0, 1, 2)), needs: []int32{3, 4}, ready: metav1.ConditionFalse, reason: ReasonLaunching},
		{name: "scale down kills the highest ordinals",
			in: in(testCluster(1), running(c3, 0, 1, 2)), newKills: []int32{2, 1}, allKills: []int32{2, 1}, ready: metav1.ConditionFalse, reason: ReasonScalingDown},
		{name: "scale down spares the master",
			in: in(ordOf(ord, 1), running(ord, 0, 1, 2), func(i *Input) {
				i.Election = elected(ord, rec(ord, 2, stateRunning), 3, store.PhasePromoted)
			}), newKills: []int32{1, 0}, allKills: []int32{1, 0}, ready: metav1.ConditionFalse, reason: ReasonScalingDown},
		{name: "scale to zero kills the master too",
			in: in(ordOf(ord, 0), running(ord, 0, 1), func(i *Input) {
				i.Election = elected(ord, rec(ord, 0, stateRunning), 3, store.PhasePromoted)
			}), newKills: []int32{1, 0}, allKills: []int32{1, 0}, ready: metav1.ConditionFalse, reason: ReasonScalingDown},
		{name: "a killed ordinal waits for its task to die before relaunch",
			in:      in(c3, append(running(newTemplate, 0, 1), rec(c3, 2, stateRunning, func(r *store.TaskRecord) { r.KillRequested = true; r.KillReason = "rolling update" }))),
			waiting: 1, allKills: []int32{2}, ready: metav1.ConditionFalse, reason: ReasonRollingUpdate},
		{name: "decided kills are re-issued",
			in:       in(c3, append(running(c3, 0, 1, 2), rec(c3, 3, stateRunning, func(r *store.TaskRecord) { r.KillRequested = true }))),
			allKills: []int32{3}, ready: metav1.ConditionFalse, reason: ReasonScalingDown},
		{name: "rolling update: one non-master at a time, highest ordinal first",
			in: in(ordNew, old(0, 1, 2), func(i *Input) {
				i.Election = elected(ord, rec(ord, 0, stateRunning), 1, store.PhasePromoted)
			}), newKills: []int32{2}, allKills: []int32{2}, ready: metav1.ConditionFalse, reason: ReasonRollingUpdate},
		{name: "rolling update waits while a member is unavailable",
			in: in(ordNew, append(old(0, 1), rec(ordNew, 2, stateStaging)), func(i *Input) {
				i.Election = elected(ord, rec(ord, 0, stateRunning), 1, store.PhasePromoted)
			}), ready: metav1.ConditionFalse, reason: ReasonRollingUpdate},
		{name: "rolling update: master last",
			in: in(ordNew, append(old(0), running(ordNew, 1, 2)...), func(i *Input) {
				i.Election = elected(ord, rec(ord, 0, stateRunning), 1, store.PhasePromoted)
			}), newKills: []int32{0}, allKills: []int32{0}, ready: metav1.ConditionFalse, reason: ReasonRollingUpdate},
		{name: "rolling update within maxUnavailable 2 still keeps the master",
			in: in(ordNew2, old(0, 1, 2), func(i *Input) {
				i.Election = elected(ord, rec(ord, 1, stateRunning), 1, store.PhasePromoted)
			}), newKills: []int32{2, 0}, allKills: []int32{2, 0}, ready: metav1.ConditionFalse, reason: ReasonRollingUpdate},
		{name: "duplicate live ordinal: the running one stays",
			in:       in(c3, append(running(c3, 0, 1, 2), rec(c3, 1, stateStaging, func(r *store.TaskRecord) { r.ID = TaskID("default", "db", 1, "dup") }))),
			newKills: []int32{1}, allKills: []int32{1}, ready: metav1.ConditionFalse, reason: ReasonScalingDown},
		{name: "invalid spec: nothing done to the tasks",
			in: in(testCluster(1), running(c3, 0, 1, 2), func(i *Input) {
				i.SpecErrors = field.ErrorList{field.Invalid(field.NewPath("spec", "task", "resources", "mem"), "-1", "must be positive")}
			}), ready: metav1.ConditionFalse, reason: ReasonInvalidSpec},
		{name: "delete kills every task",
			in: in(testCluster(3, func(c *v1alpha1.Cluster) { now := metav1.NewTime(t0); c.DeletionTimestamp = &now }),
				append(running(c3, 0, 1), rec(c3, 2, "TASK_FINISHED"))),
			newKills: []int32{0, 1}, allKills: []int32{0, 1}, ready: metav1.ConditionFalse, reason: ReasonDeleting},
		{name: "delete removes the finalizer when all are terminal",
			in: in(testCluster(3, func(c *v1alpha1.Cluster) { now := metav1.NewTime(t0); c.DeletionTimestamp = &now }),
				[]store.TaskRecord{rec(c3, 0, "TASK_KILLED"), rec(c3, 1, "TASK_LOST")}),
			ready: metav1.ConditionFalse, reason: ReasonDeleting, finalizer: "remove"},
		{name: "delete of an invalid cluster still kills",
			in: in(testCluster(3, func(c *v1alpha1.Cluster) { now := metav1.NewTime(t0); c.DeletionTimestamp = &now }), running(c3, 0), func(i *Input) {
				i.SpecErrors = field.ErrorList{field.Required(field.NewPath("spec", "task", "command"), "")}
			}),
			newKills: []int32{0}, allKills: []int32{0}, ready: metav1.ConditionFalse, reason: ReasonDeleting},
		{name: "no offer fits for long: stalled",
			in: in(c3, running(c3, 0), func(i *Input) {
				i.Unplaced = &Unplaced{Reason: "needs mem 64Gi, the largest offer has 8Gi", Since: t0.Add(-time.Minute)}
			}), needs: []int32{1, 2}, ready: metav1.ConditionFalse, reason: ReasonNoOfferFits},
		{name: "no offer fits just now: still launching",
			in: in(c3, running(c3, 0), func(i *Input) {
				i.Unplaced = &Unplaced{Reason: "needs mem 64Gi, the largest offer has 8Gi", Since: t0.Add(-time.Second)}
			}), needs: []int32{1, 2}, ready: metav1.ConditionFalse, reason: ReasonLaunching},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := Plan(tc.in)
			checkNeeds(t, out, tc.needs, tc.waiting)
			if got := killed(out, true); !reflect.DeepEqual(got, tc.newKills) {
				t.Errorf("new kills = %v, want %v", got, tc.newKills)
			}
			if got := killed(out, false); !sameSet(got, tc.allKills) {
				t.Errorf("kills = %v, want %v", got, tc.allKills)
			}
			r := cond(out, v1alpha1.ConditionReady)
			if r.Status != tc.ready || r.Reason != tc.reason {
				t.Errorf("Ready = %s/%s (%s), want %s/%s", r.Status, r.Reason, r.Message, tc.ready, tc.reason)
			}
			if r.ObservedGeneration != tc.in.Cluster.Generation || out.Status.ObservedGeneration != tc.in.Cluster.Generation {
				t.Errorf("observedGeneration not set")
			}
			fin := ""
			if out.AddFinalizer {
				fin = "add"
			}
			if out.RemoveFinalizer {
				fin = "remove"
			}
			if fin != tc.finalizer {
				t.Errorf("finalizer change %q, want %q", fin, tc.finalizer)
			}
			if len(tc.in.SpecErrors) > 0 && tc.in.Cluster.DeletionTimestamp == nil {
				s := cond(out, v1alpha1.ConditionStalled)
				if s.Status != metav1.ConditionTrue || !strings.Contains(s.Message, "spec.task.resources.mem") {
					t.Errorf("Stalled = %+v", s)
				}
				if out.Election != nil || len(out.Queries) > 0 || out.Endpoints != nil {
					t.Errorf("invalid spec acted: %+v", out)
				}
			}
			if tc.reason == ReasonNoOfferFits {
				s := cond(out, v1alpha1.ConditionStalled)
				if s.Status != metav1.ConditionTrue || !strings.Contains(s.Message, "64Gi") {
					t.Errorf("Stalled = %+v", s)
				}
			}
		})
	}
}

func sameSet(a, b []int32) bool {
	a, b = append([]int32(nil), a...), append([]int32(nil), b...)
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func TestPlanStatusIsStable(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionOrdinal))
	tasks := running(c, 0, 1, 2)
	e := elected(c, tasks[0], 1, store.PhasePromoted)
	out := Plan(in(c, tasks, func(i *Input) { i.Election = e }))
	if r := cond(out, v1alpha1.ConditionReady); r.Status != metav1.ConditionTrue {
		t.Fatalf("not ready: %+v", r)
	}
	if out.Status.Master == nil || out.Status.Master.Ordinal != 0 || out.Status.Master.Port != 31000 || out.Status.Master.Epoch != 1 {
		t.Fatalf("master = %+v", out.Status.Master)
	}
	c.Status = out.Status
	later := Plan(in(c, tasks, func(i *Input) { i.Election = e; i.Now = t0.Add(time.Hour) }))
	if !reflect.DeepEqual(later.Status, c.Status) {
		t.Fatalf("status changed on a quiet re-plan:\n%+v\n%+v", later.Status, c.Status)
	}
	if len(later.Events) != 0 || later.Election != nil || len(later.Kills) != 0 {
		t.Fatalf("quiet re-plan acted: %+v", later)
	}
}

func TestPlanOrdinalElection(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionOrdinal))
	// Ordinal 0 still staging: the lowest running ordinal wins.
	tasks := append([]store.TaskRecord{rec(c, 0, stateStaging)}, running(c, 1, 2)...)
	out := Plan(in(c, tasks))
	if out.Election == nil || out.Election.MasterOrdinal != 1 || out.Election.Epoch != 1 || out.Election.Phase != store.PhasePromoted {
		t.Fatalf("election = %+v", out.Election)
	}
	if out.Endpoints == nil || out.Endpoints.Master == nil || out.Endpoints.Master.Ordinal != 1 || out.Endpoints.Master.Port != 31001 {
		t.Fatalf("endpoints = %+v", out.Endpoints)
	}
	if len(out.Queries) != 0 || out.Promote != nil {
		t.Fatalf("ordinal strategy sent messages")
	}
	// Ordinal 0 comes up: it joins as a replica, no new election.
	tasks[0].State = stateRunning
	out2 := Plan(in(c, tasks, func(i *Input) { i.Election = out.Election }))
	if out2.Election != nil {
		t.Fatalf("re-elected with a live master: %+v", out2.Election)
	}
	if r := cond(out2, v1alpha1.ConditionReady); r.Status != metav1.ConditionTrue {
		t.Fatalf("not ready: %+v", r)
	}
	// The master fails: new epoch, lowest running ordinal.
	tasks[1].State = "TASK_FAILED"
	out3 := Plan(in(c, tasks, func(i *Input) { i.Election = out.Election }))
	if out3.Election == nil || out3.Election.Epoch != 2 || out3.Election.MasterOrdinal != 0 {
		t.Fatalf("re-election = %+v", out3.Election)
	}
	if !hasEvent(out3, "MasterLost") || !hasEvent(out3, "Elected") {
		t.Fatalf("events = %+v", out3.Events)
	}
	if got := needOrdinals(out3); !reflect.DeepEqual(got, []int32{1}) {
		t.Fatalf("needs = %v", got)
	}
	// Not reconciled: no election on a stale view.
	out4 := Plan(in(c, tasks, func(i *Input) { i.Election = out.Election; i.Reconciled = false }))
	if out4.Election != nil {
		t.Fatalf("elected before reconciliation")
	}
}

func hasEvent(o Output, reason string) bool {
	for _, e := range o.Events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func answer(c *v1alpha1.Cluster, ord int32, epoch int64, pos string) election.Message {
	return election.Message{Type: election.TypePosition, Epoch: epoch, TaskID: rec(c, ord, stateRunning).ID, Position: pos}
}

// failedAnswer is the answer of a member whose positionCommand failed.
func failedAnswer(c *v1alpha1.Cluster, ord int32, epoch int64, why string) election.Message {
	return election.Message{Type: election.TypePosition, Epoch: epoch, TaskID: rec(c, ord, stateRunning).ID, Error: why}
}

const (
	u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u2 = "4b2c0d8e-71ca-11e1-9e33-c80aa9429562"
)

func TestPlanPositionElection(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionPosition), func(c *v1alpha1.Cluster) {
		c.Spec.Election.Timeout = &metav1.Duration{Duration: 30 * time.Second}
	})
	tasks := running(c, 0, 1, 2)

	// No record: epoch 1 starts, every running member is asked.
	start := Plan(in(c, tasks))
	e := start.Election
	if e == nil || e.Epoch != 1 || e.Phase != store.PhaseElecting || !e.Deadline.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("start = %+v", e)
	}
	if len(start.Queries) != 3 || start.Queries[0].Msg.Type != election.TypePositionQuery || start.Queries[0].ExecutorID != tasks[0].ID {
		t.Fatalf("queries = %+v", start.Queries)
	}
	if start.Endpoints.Master != nil || start.Status.Master != nil {
		t.Fatalf("master before the election ended")
	}
	if start.RequeueAfter <= 0 || start.RequeueAfter > time.Second {
		t.Fatalf("requeue = %s", start.RequeueAfter)
	}

	// A previous epoch existed: epoch+1.
	prev := elected(c, rec(c, 9, "TASK_FAILED"), 6, store.PhasePromoted)
	restart := Plan(in(c, append(tasks, rec(c, 9, "TASK_FAILED")), func(i *Input) { i.Election = prev }))
	if restart.Election == nil || restart.Election.Epoch != 7 || restart.Election.Phase != store.PhaseElecting || !hasEvent(restart, "MasterLost") {
		t.Fatalf("restart = %+v", restart.Election)
	}

	cases := []struct {
		name    string
		answers []election.Message
		now     time.Time
		winner  int32 // -1: none yet
		epoch   int64
		queries int
	}{
		{"partial answers keep asking the rest", []election.Message{answer(c, 0, 1, "10")}, t0.Add(time.Second), -1, 1, 2},
		{"highest position wins", []election.Message{answer(c, 0, 1, "10"), answer(c, 1, 1, "30"), answer(c, 2, 1, "20")}, t0.Add(time.Second), 1, 1, 0},
		{"ties go to the lowest ordinal", []election.Message{answer(c, 0, 1, "10"), answer(c, 1, 1, "30"), answer(c, 2, 1, "30")}, t0.Add(time.Second), 1, 1, 0},
		{"gtid sets compare by count", []election.Message{answer(c, 0, 1, u1+":1-100"), answer(c, 1, 1, u1+":1-5,"+u2+":1-3"), answer(c, 2, 1, u2+":1-2")}, t0.Add(time.Second), 0, 1, 0},
		{"postgres LSNs compare as WAL offsets", []election.Message{answer(c, 0, 1, "0/3000148"), answer(c, 1, 1, "1/0"), answer(c, 2, 1, "0/FFFFFFFF")}, t0.Add(time.Second), 1, 1, 0},
		{"a failed or empty answer is not a position: the rest are asked again", []election.Message{answer(c, 0, 1, "10"), failedAnswer(c, 1, 1, "mysql: connection refused"), answer(c, 2, 1, "")}, t0.Add(time.Second), -1, 1, 2},
		{"every answer failed: nobody is crowned, epoch+1 at the timeout", []election.Message{failedAnswer(c, 0, 1, "x"), failedAnswer(c, 1, 1, "y"), failedAnswer(c, 2, 1, "z")}, t0.Add(31 * time.Second), -1, 2, 3},
		{"at the timeout a majority of valid answers decides", []election.Message{answer(c, 0, 1, "10"), failedAnswer(c, 1, 1, "x"), answer(c, 2, 1, "20")}, t0.Add(31 * time.Second), 2, 1, 0},
		{"at the timeout a minority of valid answers decides nothing", []election.Message{answer(c, 2, 1, "5"), failedAnswer(c, 1, 1, "x")}, t0.Add(31 * time.Second), -1, 2, 3},
		{"stale answers are ignored", []election.Message{answer(c, 0, 0, "99"), answer(c, 1, 1, "1"), answer(c, 2, 1, "2"), answer(c, 0, 1, "0")}, t0.Add(time.Second), 2, 1, 0},
		{"stale answers alone decide nothing", []election.Message{answer(c, 0, 0, "99"), answer(c, 1, 2, "1")}, t0.Add(time.Second), -1, 1, 3},
		{"timeout decides among a majority's answers", []election.Message{answer(c, 2, 1, "5"), answer(c, 0, 1, "4")}, t0.Add(31 * time.Second), 2, 1, 0},
		{"timeout with no answer restarts under epoch+1", nil, t0.Add(31 * time.Second), -1, 2, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := Plan(in(c, tasks, func(i *Input) { i.Election = e; i.Answers = tc.answers; i.Now = tc.now }))
			if len(out.Queries) != tc.queries {
				t.Errorf("queries = %d, want %d", len(out.Queries), tc.queries)
			}
			if tc.winner < 0 {
				if out.Promote != nil || (out.Election != nil && out.Election.Phase != store.PhaseElecting) {
					t.Fatalf("decided too early: %+v", out.Election)
				}
				if tc.epoch != 1 && (out.Election == nil || out.Election.Epoch != tc.epoch) {
					t.Fatalf("election = %+v, want epoch %d", out.Election, tc.epoch)
				}
				return
			}
			ne := out.Election
			if ne == nil || ne.Phase != store.PhaseElected || ne.MasterOrdinal != tc.winner || ne.Epoch != tc.epoch {
				t.Fatalf("election = %+v, want winner %d epoch %d", ne, tc.winner, tc.epoch)
			}
			if out.Promote == nil || out.Promote.Msg.Type != election.TypePromote || out.Promote.Msg.Epoch != tc.epoch || out.Promote.Msg.TaskID != ne.MasterTaskID {
				t.Fatalf("promote = %+v", out.Promote)
			}
			// Elected is not promoted: nothing is published before the
			// winner confirms its promotion.
			if out.Endpoints.Master != nil || out.Status.Master != nil {
				t.Fatalf("master published before its promotion: %+v, %+v", out.Endpoints.Master, out.Status.Master)
			}
			if r := cond(out, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse || r.Reason != ReasonPromoting {
				t.Fatalf("ready = %+v", r)
			}
		})
	}

	// Elected: promote is re-sent until the executor confirms for this epoch.
	el := Plan(in(c, tasks, func(i *Input) {
		i.Election = e
		i.Answers = []election.Message{answer(c, 0, 1, "1"), answer(c, 1, 1, "2"), answer(c, 2, 1, "3")}
	})).Election
	again := Plan(in(c, tasks, func(i *Input) { i.Election = el }))
	if again.Election != nil || again.Promote == nil {
		t.Fatalf("promote not re-sent: %+v", again)
	}
	stale := Plan(in(c, tasks, func(i *Input) {
		i.Election = el
		i.Promoted = &election.Message{Type: election.TypePromoted, Epoch: el.Epoch - 1, TaskID: el.MasterTaskID}
	}))
	if stale.Election != nil || stale.Promote == nil {
		t.Fatalf("a stale promoted counted")
	}
	done := Plan(in(c, tasks, func(i *Input) {
		i.Election = el
		i.Promoted = &election.Message{Type: election.TypePromoted, Epoch: el.Epoch, TaskID: el.MasterTaskID}
	}))
	if done.Election == nil || done.Election.Phase != store.PhasePromoted || done.Promote != nil {
		t.Fatalf("promoted = %+v", done.Election)
	}
	if r := cond(done, v1alpha1.ConditionReady); r.Status != metav1.ConditionTrue {
		t.Fatalf("ready = %+v", r)
	}
	if done.Endpoints.Master == nil || done.Endpoints.Master.TaskID != el.MasterTaskID || done.Status.Master == nil {
		t.Fatalf("promoted master not published: %+v", done.Endpoints)
	}
	// A member starting while a master exists joins as a replica.
	grown := testCluster(4, strategy(v1alpha1.ElectionPosition))
	joined := Plan(in(grown, append(tasks, rec(c, 3, stateRunning)), func(i *Input) { i.Election = done.Election }))
	if joined.Election != nil || len(joined.Queries) != 0 {
		t.Fatalf("a new member caused an election: %+v", joined.Election)
	}
	// The master dies: epoch+1, never the same epoch twice.
	dead := append([]store.TaskRecord(nil), tasks...)
	for i := range dead {
		if dead[i].ID == done.Election.MasterTaskID {
			dead[i].State = "TASK_KILLED"
		}
	}
	re := Plan(in(c, dead, func(i *Input) { i.Election = done.Election }))
	if re.Election == nil || re.Election.Epoch != done.Election.Epoch+1 || re.Election.Phase != store.PhaseElecting || len(re.Queries) != 2 {
		t.Fatalf("re-election = %+v, %d queries", re.Election, len(re.Queries))
	}
	if re.Endpoints.Master != nil {
		t.Fatalf("dead master still published")
	}
}

func TestPlanElectionWaitsForQuorum(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionPosition))
	out := Plan(in(c, append(running(c, 0), rec(c, 1, stateStaging), rec(c, 2, stateStaging))))
	if out.Election != nil {
		t.Fatalf("elected with 1 of 3 running")
	}
	if r := cond(out, v1alpha1.ConditionReady); r.Reason != ReasonMembersNotReady {
		t.Fatalf("ready = %+v", r)
	}
}

func TestPlanForgetsOldTerminalRecords(t *testing.T) {
	c := testCluster(1)
	tasks := append(running(c, 0),
		rec(c, 0, "TASK_FAILED", func(r *store.TaskRecord) { r.ID = "old"; r.UpdatedAt = t0.Add(-time.Hour) }),
		rec(c, 0, "TASK_FAILED", func(r *store.TaskRecord) { r.ID = "recent"; r.UpdatedAt = t0.Add(-time.Minute) }))
	out := Plan(in(c, tasks))
	if !reflect.DeepEqual(out.Forget, []string{"old"}) {
		t.Fatalf("forget = %v", out.Forget)
	}
}

func TestPlanNeedCarriesSpec(t *testing.T) {
	c := testCluster(2, func(c *v1alpha1.Cluster) {
		c.Spec.Role = "db"
		c.Spec.Placement.Spread = v1alpha1.SpreadHostname
	})
	out := Plan(in(c, running(c, 0)))
	if len(out.Needs) != 1 {
		t.Fatalf("needs = %+v", out.Needs)
	}
	n := out.Needs[0]
	if n.Key != "default/db" || n.Role != "db" || n.CPUs != 0.1 || n.MemMB != 64 || n.Ports != 1 || n.Spread != "hostname" || len(n.Peers) != 1 || n.Peers[0].Hostname != "127.0.0.1" || n.MemText != "64Mi" {
		t.Fatalf("need = %+v", n)
	}
	// The launched record's hash is the spec's: a member launched now is up to date.
	if n.TemplateHash != v1alpha1.TemplateHash(&c.Spec) {
		t.Fatalf("need template hash %q, want the spec's %q", n.TemplateHash, v1alpha1.TemplateHash(&c.Spec))
	}
}

// A cluster switched to the position strategy rolls its command-executor
// members (which cannot answer position queries) although it has no master.
func TestPlanRollsIntoPositionStrategy(t *testing.T) {
	old := testCluster(3)
	c := testCluster(3, strategy(v1alpha1.ElectionPosition), func(c *v1alpha1.Cluster) { c.Spec.Election.PositionCommand = "echo 1" })
	out := Plan(in(c, running(old, 0, 1, 2)))
	if got := killed(out, true); !reflect.DeepEqual(got, []int32{2}) {
		t.Fatalf("kills = %v, want [2]", got)
	}
	if out.Election != nil || len(out.Queries) != 0 {
		t.Fatalf("an election among members that cannot answer: %+v", out.Election)
	}
}

func TestPlanFirstElectionWaitsForStartingMembers(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionPosition))
	tasks := append(running(c, 0, 1), rec(c, 2, stateStarting))
	for _, epoch := range []int64{1, 2} {
		e := &store.ElectionRecord{Epoch: epoch, Phase: store.PhaseElecting, StartedAt: t0, Deadline: t0.Add(time.Minute)}
		answers := []election.Message{answer(c, 0, epoch, "5"), answer(c, 1, epoch, "6")}
		out := Plan(in(c, tasks, func(i *Input) { i.Election = e; i.Answers = answers; i.Now = t0.Add(time.Second) }))
		decided := out.Election != nil && out.Election.Phase == store.PhaseElected
		if decided != (epoch > 1) {
			t.Fatalf("epoch %d: decided=%v with a member still starting", epoch, decided)
		}
		late := Plan(in(c, tasks, func(i *Input) { i.Election = e; i.Answers = answers; i.Now = t0.Add(2 * time.Minute) }))
		if late.Election == nil || late.Election.Phase != store.PhaseElected || late.Election.MasterOrdinal != 1 {
			t.Fatalf("epoch %d at the deadline: %+v", epoch, late.Election)
		}
	}
}

// TestPlanGhostsAndOrdinals pins issue 11 §3 and §4: a task Mesos reports
// unknown is finished (not killed again, not listed, its ordinal relaunched
// at once, a master unpublished at once), and an ordinal never has two
// members that may be alive: an unreachable member's ordinal waits until
// Mesos reports it finished, and one back from a partition after it was
// written off is killed before its ordinal is relaunched.
func TestPlanGhostsAndOrdinals(t *testing.T) {
	c3 := testCluster(3)
	ord := testCluster(3, strategy(v1alpha1.ElectionOrdinal))
	deleting := testCluster(3, func(c *v1alpha1.Cluster) { now := metav1.NewTime(t0); c.DeletionTimestamp = &now })
	reconciled := func(state string, killed bool) func(*store.TaskRecord) {
		return func(r *store.TaskRecord) {
			r.State, r.Reason, r.UpdatedAt = state, "REASON_RECONCILIATION", t0
			r.KillRequested, r.KillReason = killed, "unreachable for more than 10s"
		}
	}
	unreachableFor := func(d time.Duration, killed bool) func(*store.TaskRecord) {
		return func(r *store.TaskRecord) {
			u := t0.Add(-d)
			r.State, r.UnreachableAt, r.KillRequested = stateUnreachable, &u, killed
		}
	}
	withMaster := func(c *v1alpha1.Cluster, ord int32) func(*Input) {
		return func(i *Input) { i.Election = elected(c, rec(c, ord, stateRunning), 4, store.PhasePromoted) }
	}
	tests := []struct {
		name         string
		in           Input
		needs        []int32
		waiting      int
		kills        []int32 // every kill, new or re-issued
		listed       []int32 // ordinals in status.tasks
		master       int32   // -1: none published
		forget       int
		removesFinal bool
		readyMsg     string // in the Ready condition's message
	}{
		{name: "TASK_UNKNOWN with its kill decided: not killed again, not listed, relaunched",
			in:    in(c3, append(running(c3, 0, 2), rec(c3, 1, stateRunning, reconciled(stateUnknown, true)))),
			needs: []int32{1}, listed: []int32{0, 2}, master: -1},
		{name: "TASK_GONE and TASK_LOST answers with kills decided: not killed again",
			in: in(c3, append(running(c3, 0), rec(c3, 1, stateRunning, reconciled("TASK_GONE", true)),
				rec(c3, 2, stateRunning, reconciled("TASK_LOST", true)))),
			needs: []int32{1, 2}, listed: []int32{0}, master: -1},
		{name: "every member unknown after a restart: all relaunched at once, none killed",
			in: in(c3, []store.TaskRecord{rec(c3, 0, stateRunning, reconciled(stateUnknown, false)),
				rec(c3, 1, stateRunning, reconciled(stateUnknown, false)), rec(c3, 2, stateRunning, reconciled(stateUnknown, false))}),
			needs: []int32{0, 1, 2}, master: -1},
		{name: "an unknown master is unpublished at once: the lowest running ordinal takes over",
			in:     in(ord, append(running(ord, 1, 2), rec(ord, 0, stateRunning, reconciled(stateUnknown, false))), withMaster(ord, 0)),
			needs:  []int32{0},
			listed: []int32{1, 2}, master: 1},
		{name: "an unknown record is forgotten after the retention",
			in: in(c3, append(running(c3, 0, 1, 2), rec(c3, 1, stateRunning, reconciled(stateUnknown, true), func(r *store.TaskRecord) {
				r.ID, r.UpdatedAt = TaskID("default", "db", 1, "old"), t0.Add(-time.Hour)
			}))),
			listed: []int32{0, 1, 2}, master: -1, forget: 1},
		{name: "deleting: unknown tasks are not waited for nor killed",
			in:           in(deleting, []store.TaskRecord{rec(c3, 0, stateRunning, reconciled(stateUnknown, true))}),
			master:       -1,
			removesFinal: true},
		{name: "unreachable past the timeout, kill decided: its ordinal still waits",
			in:      in(c3, append(running(c3, 0, 2), rec(c3, 1, stateRunning, unreachableFor(2*time.Minute, true)))),
			waiting: 1, kills: []int32{1}, listed: []int32{0, 1, 2}, master: -1,
			readyMsg: "ordinal 1 waits until its unreachable member is killed"},
		{name: "unreachable master past the timeout: re-elected among the reachable, its ordinal waits",
			in:      in(ord, append(running(ord, 1, 2), rec(ord, 0, stateRunning, unreachableFor(2*time.Minute, false))), withMaster(ord, 0)),
			waiting: 1, kills: []int32{0}, listed: []int32{0, 1, 2}, master: 1},
		{name: "unreachable master within the timeout stays master, nothing relaunched",
			in:     in(ord, append(running(ord, 1, 2), rec(ord, 0, stateRunning, unreachableFor(time.Second, false))), withMaster(ord, 0)),
			listed: []int32{0, 1, 2}, master: 0},
		// Still the recorded master and running: no other is elected until
		// its kill is confirmed (never two masters).
		{name: "written-off former master back from the partition: killed first, not counted, not master",
			in: in(ord, append(running(ord, 0, 2), rec(ord, 1, stateRunning, func(r *store.TaskRecord) {
				r.KillRequested, r.KillReason = true, "unreachable for more than 10s"
			})), withMaster(ord, 1)),
			waiting: 1, kills: []int32{1}, listed: []int32{0, 1, 2}, master: -1},
		{name: "deleting: an unreachable task past the timeout does not hold the finalizer",
			in:           in(deleting, []store.TaskRecord{rec(c3, 0, stateRunning, unreachableFor(2*time.Minute, true))}),
			kills:        []int32{0},
			listed:       []int32{0},
			master:       -1,
			removesFinal: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := Plan(tc.in)
			checkNeeds(t, out, tc.needs, tc.waiting)
			if got := killed(out, false); !sameSet(got, tc.kills) {
				t.Errorf("kills = %v, want %v", got, tc.kills)
			}
			var listed []int32
			for _, ts := range out.Status.Tasks {
				listed = append(listed, ts.Ordinal)
			}
			if !sameSet(listed, tc.listed) {
				t.Errorf("status lists ordinals %v, want %v (%+v)", listed, tc.listed, out.Status.Tasks)
			}
			master := int32(-1)
			if out.Endpoints != nil && out.Endpoints.Master != nil {
				master = out.Endpoints.Master.Ordinal
			}
			if master != tc.master {
				t.Errorf("published master ordinal %d, want %d", master, tc.master)
			}
			if (out.Status.Master != nil) != (tc.master >= 0) || out.Status.Master != nil && out.Status.Master.Ordinal != tc.master {
				t.Errorf("status master = %+v, want ordinal %d", out.Status.Master, tc.master)
			}
			if len(out.Forget) != tc.forget {
				t.Errorf("forget = %v, want %d records", out.Forget, tc.forget)
			}
			if out.RemoveFinalizer != tc.removesFinal {
				t.Errorf("RemoveFinalizer = %v, want %v", out.RemoveFinalizer, tc.removesFinal)
			}
			if r := cond(out, v1alpha1.ConditionReady); !strings.Contains(r.Message, tc.readyMsg) {
				t.Errorf("Ready message %q, want it to say %q", r.Message, tc.readyMsg)
			}
			assertOneLivePerOrdinal(t, tc.in, out)
		})
	}
}

// assertOneLivePerOrdinal checks the plan never has two members that may be
// alive for one ordinal: every ordinal it launches is held by no unfinished
// task, and it launches none twice.
func assertOneLivePerOrdinal(t *testing.T, in Input, out Output) {
	t.Helper()
	held := map[int32]string{}
	for _, r := range in.Tasks {
		if !finished(r.State) {
			held[r.Ordinal] = r.ID
		}
	}
	for _, n := range out.Needs {
		if id, ok := held[n.Ordinal]; ok {
			t.Errorf("launches ordinal %d while task %s may be alive", n.Ordinal, id)
		}
		held[n.Ordinal] = "a launch of this plan"
	}
}

// failedRec is ordinal ord's task that ran for ranFor and exited with status 3
// endedAgo before t0, after restarts consecutive failures.
func failedRec(c *v1alpha1.Cluster, ord, restarts int32, ranFor, endedAgo time.Duration, mods ...func(*store.TaskRecord)) store.TaskRecord {
	return rec(c, ord, "TASK_FAILED", append([]func(*store.TaskRecord){func(r *store.TaskRecord) {
		end := t0.Add(-endedAgo)
		started := end.Add(-ranFor)
		r.ID = TaskID(c.Namespace, c.Name, ord, fmt.Sprintf("f%d", restarts))
		r.Reason, r.Message = "REASON_COMMAND_EXECUTOR_FAILED", "Command exited with status 3"
		r.LaunchedAt, r.RunningAt, r.UpdatedAt, r.Restarts = started.Add(-100*time.Millisecond), &started, end, restarts
	}}, mods...)...)
}

func needRestarts(o Output, ord int32) (int32, bool) {
	for _, n := range o.Needs {
		if n.Ordinal == ord {
			return n.Restarts, true
		}
	}
	return 0, false
}

func TestPlanRestartBackoff(t *testing.T) {
	c := testCluster(2) // defaults: back-off 1s, factor 2, at most 5m, reset after 10m
	marathon := testCluster(2, func(c *v1alpha1.Cluster) { f := 1.15; c.Spec.Restart.BackoffFactor = &f })
	noBackoff := testCluster(2, func(c *v1alpha1.Cluster) { c.Spec.Restart.Backoff = &metav1.Duration{} })
	otherTemplate := testCluster(2, func(c *v1alpha1.Cluster) { c.Spec.Task.Command = "exit 3" })
	ms := time.Millisecond
	tests := []struct {
		name     string
		in       Input
		launch   bool          // ordinal 1 is launched now
		restarts int32         // ... with this many failures behind it
		requeue  time.Duration // else: the back-off ends after this long
	}{
		{"first failure waits the initial back-off", in(c, append(running(c, 0), failedRec(c, 1, 0, 20*ms, 400*ms))), false, 0, 600 * ms},
		{"first failure relaunches once the back-off is over", in(c, append(running(c, 0), failedRec(c, 1, 0, 20*ms, time.Second))), true, 1, 0},
		{"third failure in a row waits 4s", in(c, append(running(c, 0), failedRec(c, 1, 2, 20*ms, 3*time.Second))), false, 0, time.Second},
		{"third failure in a row relaunches after 4s", in(c, append(running(c, 0), failedRec(c, 1, 2, 20*ms, 4*time.Second))), true, 3, 0},
		{"the delay is capped at maxBackoff", in(c, append(running(c, 0), failedRec(c, 1, 40, 20*ms, 5*time.Minute-time.Second))), false, 0, time.Second},
		{"relaunch after maxBackoff", in(c, append(running(c, 0), failedRec(c, 1, 40, 20*ms, 5*time.Minute))), true, 41, 0},
		{"a failure after a stable run counts as the first", in(c, append(running(c, 0), failedRec(c, 1, 7, 10*time.Minute, 400*ms))), false, 0, 600 * ms},
		{"... and relaunches after the initial back-off", in(c, append(running(c, 0), failedRec(c, 1, 7, 10*time.Minute, time.Second))), true, 1, 0},
		{"Marathon's factor 1.15", in(marathon, append(running(marathon, 0), failedRec(marathon, 1, 1, 20*ms, time.Second))), false, 0, 150 * ms},
		{"backoff 0s relaunches at once", in(noBackoff, append(running(noBackoff, 0), failedRec(noBackoff, 1, 9, 20*ms, 0))), true, 10, 0},
		{"a task converge killed is relaunched at once", in(c, append(running(c, 0), failedRec(c, 1, 2, 20*ms, 0, func(r *store.TaskRecord) {
			r.State, r.KillRequested = "TASK_KILLED", true
		}))), true, 2, 0},
		{"a task Mesos lost is relaunched at once", in(c, append(running(c, 0), failedRec(c, 1, 2, 20*ms, 0, func(r *store.TaskRecord) { r.State = "TASK_LOST" }))), true, 2, 0},
		{"a new template starts over at once", in(otherTemplate, append(running(otherTemplate, 0), failedRec(c, 1, 5, 20*ms, 0))), true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Plan(tt.in)
			restarts, launched := needRestarts(out, 1)
			if launched != tt.launch || restarts != tt.restarts {
				t.Fatalf("launch ordinal 1 = %v with %d restarts, want %v with %d (needs %v)", launched, restarts, tt.launch, tt.restarts, needOrdinals(out))
			}
			if tt.launch {
				return
			}
			if out.RequeueAfter != tt.requeue || out.Waiting != 1 {
				t.Errorf("requeue after %s with %d waiting, want %s with 1", out.RequeueAfter, out.Waiting, tt.requeue)
			}
			r := cond(out, v1alpha1.ConditionReady)
			failed := tt.in.Tasks[1]
			want := []string{"member 1", failed.ID, "TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED: Command exited with status 3)", "relaunch at"}
			if r.Status != metav1.ConditionFalse || r.Reason != ReasonCrashLoopBackOff || !containsAll(r.Message, want...) {
				t.Errorf("Ready = %s %s %q, want False %s naming %q", r.Status, r.Reason, r.Message, ReasonCrashLoopBackOff, want)
			}
		})
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// The record a back-off is computed from outlives the ledger's retention of
// finished tasks, or the back-off would start over.
func TestPlanKeepsTheBackoffRecord(t *testing.T) {
	c := testCluster(1, func(c *v1alpha1.Cluster) {
		c.Spec.Restart.MaxBackoff = &metav1.Duration{Duration: time.Hour}
		c.Spec.Restart.Backoff = &metav1.Duration{Duration: time.Hour}
	})
	failed := failedRec(c, 0, 3, 20*time.Millisecond, terminalRecordRetention+time.Minute)
	older := failedRec(c, 0, 2, 20*time.Millisecond, terminalRecordRetention+2*time.Minute)
	out := Plan(in(c, []store.TaskRecord{failed, older}))
	if len(out.Needs) != 0 || !reflect.DeepEqual(out.Forget, []string{older.ID}) {
		t.Fatalf("needs %v, forget %v; want no launch and only %s forgotten", needOrdinals(out), out.Forget, older.ID)
	}
}

func TestPlanMinReadySeconds(t *testing.T) {
	c := testCluster(2) // minReadySeconds 10
	zero := testCluster(2, func(c *v1alpha1.Cluster) { var z int32; c.Spec.Update.MinReadySeconds = &z })
	runningFor := func(c *v1alpha1.Cluster, ord int32, d time.Duration, mods ...func(*store.TaskRecord)) store.TaskRecord {
		return rec(c, ord, stateRunning, append([]func(*store.TaskRecord){func(r *store.TaskRecord) {
			since := t0.Add(-d)
			r.RunningAt, r.UpdatedAt = &since, since
		}}, mods...)...)
	}
	tests := []struct {
		name    string
		in      Input
		ready   int32
		reason  string
		requeue time.Duration
		message []string
	}{
		{"running 5s of 10 is not ready yet", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute), runningFor(c, 1, 5*time.Second)}),
			1, ReasonMembersNotReady, 5 * time.Second, []string{"1/2 members ready"}},
		{"running 10s is ready", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute), runningFor(c, 1, 10*time.Second)}), 2, ReasonReady, 0, nil},
		{"a later update (reconciliation) does not restart the clock", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute), runningFor(c, 1, time.Minute, func(r *store.TaskRecord) {
			r.UpdatedAt, r.Reason = t0, "REASON_RECONCILIATION"
		})}), 2, ReasonReady, 0, nil},
		{"minReadySeconds 0: ready when running", in(zero, []store.TaskRecord{runningFor(zero, 0, 0), runningFor(zero, 1, 0)}), 2, ReasonReady, 0, nil},
		{"minReadySeconds counts from when the readiness check started passing", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute),
			runningFor(c, 1, time.Minute, checkPassing(true, 4*time.Second))}),
			1, ReasonMembersNotReady, 6 * time.Second, []string{"1/2 members ready"}},
		{"a failing readiness check holds a member whatever its age", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute),
			runningFor(c, 1, time.Hour, checkPassing(false, 0))}),
			1, ReasonMembersNotReady, 0, []string{"1/2 members ready; not ready: ordinal 1 (readiness check failing)"}},
		{"no readiness result yet", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute),
			runningFor(c, 1, time.Hour, func(r *store.TaskRecord) { r.ReadinessChecked = true })}),
			1, ReasonMembersNotReady, 0, []string{"ordinal 1 (no readiness check result yet)"}},
		{"an unhealthy member is not ready", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute),
			runningFor(c, 1, time.Hour, func(r *store.TaskRecord) { no := false; r.HealthChecked, r.Healthy = true, &no })}),
			1, ReasonMembersNotReady, 0, []string{"ordinal 1 (failing its health check)"}},
		{"healthy and passing for minReadySeconds is ready", in(c, []store.TaskRecord{runningFor(c, 0, time.Minute),
			runningFor(c, 1, time.Hour, checkPassing(true, 10*time.Second), func(r *store.TaskRecord) { yes := true; r.HealthChecked, r.Healthy = true, &yes })}),
			2, ReasonReady, 0, nil},
		{"a relaunch after failures is crash-looping until ready", in(c, []store.TaskRecord{
			runningFor(c, 0, time.Minute),
			failedRec(c, 1, 2, 20*time.Millisecond, 5*time.Second),
			runningFor(c, 1, 3*time.Second, func(r *store.TaskRecord) {
				r.ID, r.Restarts, r.LaunchedAt = TaskID("default", "db", 1, "new"), 3, t0.Add(-4*time.Second)
			}),
		}), 1, ReasonCrashLoopBackOff, 7 * time.Second, []string{"member 1 (task default.db.1.f2) failed 3 time(s) in a row", "last exit TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED: Command exited with status 3)", "not ready yet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Plan(tt.in)
			r := cond(out, v1alpha1.ConditionReady)
			if out.Status.ReadyReplicas != tt.ready || r.Reason != tt.reason || !containsAll(r.Message, tt.message...) {
				t.Fatalf("readyReplicas %d, Ready %s %q; want %d, %s with %q", out.Status.ReadyReplicas, r.Reason, r.Message, tt.ready, tt.reason, tt.message)
			}
			if tt.requeue > 0 && out.RequeueAfter != tt.requeue {
				t.Errorf("requeue after %s, want %s (when the member becomes ready)", out.RequeueAfter, tt.requeue)
			}
		})
	}
}

// checkPassing marks a record launched with a readiness check whose result
// is passing (since d ago) or failing.
func checkPassing(passing bool, d time.Duration) func(*store.TaskRecord) {
	return func(r *store.TaskRecord) {
		r.ReadinessChecked, r.CheckPassing = true, &passing
		if passing {
			since := t0.Add(-d)
			r.CheckPassingSince = &since
		}
	}
}

func TestPlanProgressDeadline(t *testing.T) {
	c := testCluster(2) // progressDeadline 10m
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(t0.Add(-d)); return &t }
	// prev is the status last written: Ready False (or True) since readySince.
	prev := func(readyStatus metav1.ConditionStatus, readySince, lastProgress time.Duration, readyReplicas int32) func(*Input) {
		return func(i *Input) {
			cl := i.Cluster.DeepCopy()
			cl.Status = v1alpha1.ClusterStatus{ObservedGeneration: cl.Generation, Replicas: 2, ReadyReplicas: readyReplicas, LastProgressTime: at(lastProgress),
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: readyStatus, Reason: "x", ObservedGeneration: cl.Generation, LastTransitionTime: *at(readySince)}}}
			i.Cluster = cl
		}
	}
	crashLoop := append(running(c, 0), failedRec(c, 1, 6, 20*time.Millisecond, 10*time.Second))
	tests := []struct {
		name     string
		in       Input
		stalled  bool
		progress time.Duration // lastProgressTime written, before t0
	}{
		// Status times are truncated to the second: the deadline allows one more.
		{"crash-looping for 10m1s without progress is stalled", in(c, crashLoop, prev(metav1.ConditionFalse, 10*time.Minute+time.Second, 10*time.Minute+time.Second, 1)), true, 10*time.Minute + time.Second},
		{"10m is not yet (the times lost their fraction of a second)", in(c, crashLoop, prev(metav1.ConditionFalse, 10*time.Minute, 10*time.Minute, 1)), false, 10 * time.Minute},
		{"9m is not yet", in(c, crashLoop, prev(metav1.ConditionFalse, 9*time.Minute, 20*time.Minute, 1)), false, 20 * time.Minute},
		{"Ready until now: the clock starts now", in(c, crashLoop, prev(metav1.ConditionTrue, time.Hour, time.Hour, 2)), false, time.Hour},
		{"a member became ready: progress", in(c, crashLoop, prev(metav1.ConditionFalse, time.Hour, time.Hour, 0)), false, 0},
		{"a new generation: progress", in(c, crashLoop, prev(metav1.ConditionFalse, time.Hour, time.Hour, 1), func(i *Input) { i.Cluster.Generation++ }), false, 0},
		{"waiting for reconciliation is not the cluster's fault", in(c, running(c, 0), prev(metav1.ConditionFalse, time.Hour, time.Hour, 1), func(i *Input) { i.Reconciled = false }), false, time.Hour},
		{"a Ready cluster never stalls", in(c, running(c, 0, 1), prev(metav1.ConditionTrue, time.Hour, time.Hour, 2)), false, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Plan(tt.in)
			s, rc, r := cond(out, v1alpha1.ConditionStalled), cond(out, v1alpha1.ConditionReconciling), cond(out, v1alpha1.ConditionReady)
			if got := s.Status == metav1.ConditionTrue; got != tt.stalled {
				t.Fatalf("Stalled = %s %s %q, want stalled %v", s.Status, s.Reason, s.Message, tt.stalled)
			}
			if lp := out.Status.LastProgressTime; lp == nil || !lp.Time.Equal(t0.Add(-tt.progress)) {
				t.Errorf("lastProgressTime = %v, want %v", lp, t0.Add(-tt.progress))
			}
			if !tt.stalled {
				return
			}
			if s.Reason != ReasonProgressDeadlineExceeded || !containsAll(s.Message, "no progress for 10m0s", ReasonCrashLoopBackOff, "member 1") ||
				rc.Status != metav1.ConditionFalse || r.Status != metav1.ConditionFalse || r.Reason != ReasonCrashLoopBackOff {
				t.Errorf("Stalled %s %q, Reconciling %s, Ready %s %s; want ProgressDeadlineExceeded naming the crash loop, Reconciling False (kstatus Failed), Ready False CrashLoopBackOff",
					s.Reason, s.Message, rc.Status, r.Status, r.Reason)
			}
			if !hasEvent(out, ReasonProgressDeadlineExceeded) {
				t.Errorf("no %s event: %+v", ReasonProgressDeadlineExceeded, out.Events)
			}
		})
	}
}

// A failed promotion never makes a master: the member is fenced (killed),
// nothing is published, and the next election waits for the kill to be
// confirmed, so two members never both take writes.
func TestPlanPromoteFailed(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionPosition))
	tasks := running(c, 0, 1, 2)
	el := elected(c, tasks[1], 3, store.PhaseElected)
	out := Plan(in(c, tasks, func(i *Input) {
		i.Election = el
		i.Promoted = &election.Message{Type: election.TypePromoted, Epoch: 3, TaskID: tasks[1].ID, Error: "pg_ctl: server did not promote in time"}
	}))
	if out.Election != nil && out.Election.Phase == store.PhasePromoted {
		t.Fatalf("a failed promotion was recorded as promoted: %+v", out.Election)
	}
	if got := killed(out, true); !sameSet(got, []int32{1}) {
		t.Fatalf("kills = %v, want the member whose promotion failed", got)
	}
	if out.Endpoints != nil && out.Endpoints.Master != nil || out.Status.Master != nil {
		t.Fatalf("master published after a failed promotion")
	}
	if r := cond(out, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse || !hasEvent(out, ReasonPromoteFailed) {
		t.Fatalf("ready = %+v, events %+v", r, out.Events)
	}

	// Its kill is not confirmed yet: no election.
	fencing := append([]store.TaskRecord(nil), tasks...)
	fencing[1].KillRequested = true
	wait := Plan(in(c, fencing, func(i *Input) { i.Election = el }))
	if wait.Election != nil || len(wait.Queries) != 0 || wait.Promote != nil {
		t.Fatalf("elected while the old master may still run: %+v", wait.Election)
	}
	if r := cond(wait, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse {
		t.Fatalf("ready = %+v", r)
	}

	// Confirmed dead: epoch+1 among the others.
	fencing[1].State = "TASK_KILLED"
	next := Plan(in(c, fencing, func(i *Input) { i.Election = el }))
	if next.Election == nil || next.Election.Epoch != 4 || next.Election.Phase != store.PhaseElecting || len(next.Queries) != 2 {
		t.Fatalf("re-election = %+v, %d queries", next.Election, len(next.Queries))
	}
}

// The master lease: renewals are granted while the lease holds; a master not
// heard from for the lease duration (plus the drift margin) is replaced at
// once, without waiting for Mesos to call its agent unreachable; after a
// controller start, any master is assumed to hold a lease until the
// subscription plus the duration.
func TestPlanMasterLease(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionPosition))
	tasks := running(c, 0, 1, 2)
	for i := range tasks {
		tasks[i].ExecutorID = tasks[i].ID
	}
	promoted := elected(c, tasks[0], 5, store.PhasePromoted)
	lease := func(granted time.Duration) func(*Input) {
		return func(i *Input) {
			i.Election = promoted
			i.Lease = LeaseState{Epoch: 5, TaskID: tasks[0].ID, GrantedAt: t0.Add(granted)}
		}
	}
	held := Plan(in(c, tasks, lease(-2*time.Second)))
	if held.Election != nil || len(held.Kills) != 0 || held.Status.Master == nil {
		t.Fatalf("a master holding its lease: election %+v, kills %v", held.Election, held.Kills)
	}

	// Last granted 12s ago (10s lease + 1s margin passed): replaced now.
	lapsed := Plan(in(c, tasks, lease(-12*time.Second)))
	if !sameSet(killed(lapsed, true), []int32{0}) || !hasEvent(lapsed, "MasterLeaseExpired") {
		t.Fatalf("lapsed lease: kills %v", killed(lapsed, true))
	}
	if e := lapsed.Election; e == nil || e.Epoch != 6 || e.Phase != store.PhaseElecting || len(lapsed.Queries) != 2 {
		t.Fatalf("no re-election after the lease lapsed: %+v, queries %+v", e, lapsed.Queries)
	}
	if lapsed.Endpoints.Master != nil || lapsed.Status.Master != nil {
		t.Fatalf("a master whose lease lapsed is still published")
	}

	// The master's agent is partitioned and its task written off: no election
	// before its lease surely ended, then at once.
	gone := append([]store.TaskRecord(nil), tasks...)
	gone[0] = rec(c, 0, stateUnreachable, func(r *store.TaskRecord) {
		u := t0.Add(-2 * time.Minute)
		r.UnreachableAt, r.KillRequested, r.ExecutorID = &u, true, r.ID
	})
	wait := Plan(in(c, gone, lease(-3*time.Second)))
	if wait.Election != nil || len(wait.Queries) != 0 || wait.RequeueAfter <= 0 || wait.RequeueAfter > 8*time.Second {
		t.Fatalf("elected while the old master's lease may hold: %+v, requeue %s", wait.Election, wait.RequeueAfter)
	}
	after := Plan(in(c, gone, lease(-11*time.Second)))
	if after.Election == nil || after.Election.Epoch != 6 {
		t.Fatalf("no election after the old lease ended: %+v", after.Election)
	}

	// A controller that just subscribed knows no lease: it waits a duration.
	fresh := Plan(in(c, gone, func(i *Input) {
		i.Election = promoted
		i.Lease = LeaseState{Epoch: 5, TaskID: "someone-else"}
		i.LeaseFloor = t0.Add(-2 * time.Second)
	}))
	if fresh.Election != nil {
		t.Fatalf("a new controller elected before any old lease surely ended: %+v", fresh.Election)
	}
}

// Other members follow the promoted master until each confirms for its epoch.
func TestPlanFollow(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionPosition))
	tasks := running(c, 0, 1, 2)
	for i := range tasks {
		tasks[i].ExecutorID = tasks[i].ID
	}
	promoted := elected(c, tasks[1], 4, store.PhasePromoted)
	out := Plan(in(c, tasks, func(i *Input) {
		i.Election = promoted
		i.Lease = LeaseState{Epoch: 4, TaskID: tasks[1].ID, GrantedAt: t0, Followed: map[string]election.Message{
			tasks[0].ID: {Type: election.TypeFollowed, Epoch: 4, TaskID: tasks[0].ID},
			tasks[2].ID: {Type: election.TypeFollowed, Epoch: 4, TaskID: tasks[2].ID, Error: "pg_basebackup failed"},
		}}
	}))
	if len(out.Follows) != 1 {
		t.Fatalf("follows = %+v, want one, to ordinal 2 (its follow failed)", out.Follows)
	}
	f := out.Follows[0].Msg
	if f.Type != election.TypeFollow || f.TaskID != tasks[2].ID || f.Epoch != 4 || f.MasterHost != tasks[1].Hostname || f.MasterPort != tasks[1].Ports[0] {
		t.Fatalf("follow = %+v", f)
	}
	// An answer of an older epoch does not count for a new master.
	stale := Plan(in(c, tasks, func(i *Input) {
		i.Election = elected(c, tasks[1], 5, store.PhasePromoted)
		i.Lease = LeaseState{Epoch: 5, TaskID: tasks[1].ID, GrantedAt: t0, Followed: map[string]election.Message{
			tasks[0].ID: {Type: election.TypeFollowed, Epoch: 4, TaskID: tasks[0].ID}}}
	}))
	if len(stale.Follows) != 2 {
		t.Fatalf("follows = %d, want 2 (an epoch-4 answer for epoch 5)", len(stale.Follows))
	}
	// Elected, not promoted: nobody is told to follow yet.
	el := Plan(in(c, tasks, func(i *Input) { i.Election = elected(c, tasks[1], 4, store.PhaseElected) }))
	if len(el.Follows) != 0 {
		t.Fatalf("follow before the promotion: %+v", el.Follows)
	}
}

// Grants: only to the recorded master of the epoch, and only while the lease
// it holds has not run out, so a planner that saw the lease end never sees it
// renewed, and a master that fenced itself is never revived.
func TestLeaseGrantable(t *testing.T) {
	el := t0.Add(-time.Minute)
	rec := &store.ElectionRecord{Epoch: 5, Phase: store.PhasePromoted, MasterTaskID: "m", ElectedAt: &el}
	req := election.Message{Type: election.TypeLeaseRequest, Epoch: 5, TaskID: "m", Seq: 3}
	held := LeaseState{Epoch: 5, TaskID: "m", GrantedAt: t0.Add(-9 * time.Second)}
	d := 10 * time.Second
	cases := []struct {
		name string
		req  election.Message
		rec  *store.ElectionRecord
		l    LeaseState
		now  time.Time
		want bool
	}{
		{"renewal while the lease holds", req, rec, held, t0, true},
		{"renewal after it ran out", req, rec, held, t0.Add(1500 * time.Millisecond), false},
		{"first request of a new master, soon after its election", req, &store.ElectionRecord{Epoch: 5, Phase: store.PhaseElected, MasterTaskID: "m", ElectedAt: &t0}, LeaseState{}, t0.Add(time.Second), true},
		{"another member", election.Message{Type: election.TypeLeaseRequest, Epoch: 5, TaskID: "x"}, rec, held, t0, false},
		{"an old epoch", election.Message{Type: election.TypeLeaseRequest, Epoch: 4, TaskID: "m"}, rec, held, t0, false},
		{"while electing", req, &store.ElectionRecord{Epoch: 5, Phase: store.PhaseElecting, MasterTaskID: "m"}, held, t0, false},
		{"no record", req, nil, held, t0, false},
	}
	for _, tc := range cases {
		if got := grantable(tc.req, tc.rec, tc.l, time.Time{}, d, tc.now); got != tc.want {
			t.Errorf("%s: grantable = %t, want %t", tc.name, got, tc.want)
		}
	}
}
