package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// handoverCluster is a 3-member position cluster whose master, ordinal 2,
// is promoted in epoch 5; old lists the ordinals of an older template.
func handoverCluster(t *testing.T, old ...int32) (*v1alpha1.Cluster, []store.TaskRecord, *store.ElectionRecord) {
	t.Helper()
	c := testCluster(3, strategy(v1alpha1.ElectionPosition), func(c *v1alpha1.Cluster) {
		c.Spec.Election.Timeout = &metav1.Duration{Duration: 30 * time.Second}
	})
	tasks := running(c, 0, 1, 2)
	for _, o := range old {
		tasks[o].TemplateHash = "older"
	}
	return c, tasks, elected(c, tasks[2], 5, store.PhasePromoted)
}

func demotedMsg(r store.TaskRecord, epoch int64, err string) func(*Input) {
	return func(i *Input) {
		i.Demoted = &election.Message{Type: election.TypeDemoted, Epoch: epoch, TaskID: r.ID, Error: err}
	}
}

// withElection sets the election record; every member but its master has
// confirmed following the master of epoch 5 (handoverCluster's).
func withElection(e *store.ElectionRecord) func(*Input) {
	return func(i *Input) {
		i.Election = e
		followedAt(5)(i)
	}
}

// followedAt: every member but the recorded master followed epoch.
func followedAt(epoch int64) func(*Input) {
	return func(i *Input) {
		f := map[string]election.Message{}
		for _, r := range i.Tasks {
			if i.Election == nil || r.ID != i.Election.MasterTaskID {
				f[r.ID] = election.Message{Type: election.TypeFollowed, Epoch: epoch, TaskID: r.ID}
			}
		}
		i.Lease.Followed = f
	}
}

func queried(o Output) []int32 {
	var out []int32
	for _, q := range o.Queries {
		out = append(out, ordinalOf(q.Msg.TaskID))
	}
	return out
}

func ordinalOf(id string) int32 {
	_, _, ord, _ := ParseTaskID(id)
	return ord
}

// A rolling update that reaches the master hands it over: demote (the old
// master is unpublished, its lease no longer granted), then elect among the
// others, promote, and only then stop the old member.
func TestPlanRollingUpdateHandsOver(t *testing.T) {
	c, tasks, promoted := handoverCluster(t, 2) // 0 and 1 already updated

	start := Plan(in(c, tasks, withElection(promoted)))
	d := start.Election
	if len(start.Kills) != 0 || d == nil || d.Phase != store.PhaseDemoting || d.Epoch != 5 || d.Handover == nil || d.Handover.From != tasks[2].ID {
		t.Fatalf("the master of an old template is not handed over: kills %v, election %+v", killed(start, false), d)
	}
	if start.Demote == nil || start.Demote.Msg.Type != election.TypeDemote || start.Demote.Msg.TaskID != tasks[2].ID || start.Demote.Msg.Epoch != 5 {
		t.Fatalf("demote = %+v", start.Demote)
	}
	if start.Endpoints.Master != nil || start.Status.Master != nil || !hasEvent(start, "HandingOver") {
		t.Fatalf("a master being demoted is still published (%+v) or no event", start.Endpoints.Master)
	}
	if l := (LeaseState{Epoch: 5, TaskID: tasks[2].ID, GrantedAt: t0}); grantable(election.Message{Type: election.TypeLeaseRequest, Epoch: 5, TaskID: tasks[2].ID}, d, l, time.Time{}, 10*time.Second, t0) {
		t.Fatal("the lease of a master being demoted is renewed")
	}

	// Not demoted yet: demote again, nobody elected, nobody killed.
	wait := Plan(in(c, tasks, withElection(d)))
	if wait.Election != nil || wait.Demote == nil || len(wait.Queries) != 0 || len(wait.Kills) != 0 || wait.RequeueAfter <= 0 {
		t.Fatalf("while demoting: election %+v, demote %+v, queries %v, kills %v", wait.Election, wait.Demote, queried(wait), killed(wait, false))
	}
	if r := cond(wait, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse {
		t.Fatalf("Ready while no master takes writes: %+v", r)
	}

	// Demoted: epoch 6 among the others; the old master is no candidate.
	el := Plan(in(c, tasks, withElection(d), demotedMsg(tasks[2], 5, "")))
	e6 := el.Election
	if e6 == nil || e6.Epoch != 6 || e6.Phase != store.PhaseElecting || e6.Handover == nil || e6.Handover.DemotedAt == nil || !sameSet(queried(el), []int32{0, 1}) {
		t.Fatalf("after the demotion: election %+v, queries %v", e6, queried(el))
	}
	if len(el.Kills) != 0 || !hasEvent(el, "Demoted") {
		t.Fatalf("after the demotion: kills %v", killed(el, false))
	}

	// Both answer: the best of them wins; the old member still runs.
	dec := Plan(in(c, tasks, withElection(e6), func(i *Input) {
		i.Answers = []election.Message{answer(c, 0, 6, "10"), answer(c, 1, 6, "20")}
	}))
	e6e := dec.Election
	if e6e == nil || e6e.Phase != store.PhaseElected || e6e.MasterOrdinal != 1 || dec.Promote == nil || len(dec.Kills) != 0 {
		t.Fatalf("decision: %+v, kills %v", e6e, killed(dec, false))
	}

	// Promoted: published; the handover is done.
	prom := Plan(in(c, tasks, withElection(e6e), func(i *Input) {
		i.Promoted = &election.Message{Type: election.TypePromoted, Epoch: 6, TaskID: tasks[1].ID}
	}))
	if p := prom.Election; p == nil || p.Phase != store.PhasePromoted || p.Handover != nil || !hasEvent(prom, "SwitchedOver") {
		t.Fatalf("promotion: %+v", p)
	}
	if prom.Endpoints.Master == nil || prom.Endpoints.Master.Ordinal != 1 || len(prom.Kills) != 0 {
		t.Fatalf("promotion: master %+v, kills %v", prom.Endpoints.Master, killed(prom, false))
	}

	// Only now is the old member stopped, as any member of the old template.
	after := Plan(in(c, tasks, withElection(prom.Election)))
	if !sameSet(killed(after, true), []int32{2}) || after.Election != nil {
		t.Fatalf("after the handover: kills %v, election %+v", killed(after, true), after.Election)
	}
}

// The master is handed over only once every other member follows it (a
// member still copying it would fail, a fresh one hold nothing); members
// that did not follow the old master cannot win the handover's election.
func TestPlanHandoverWaitsForFollowers(t *testing.T) {
	c, tasks, promoted := handoverCluster(t, 2)
	notYet := Plan(in(c, tasks, withElection(promoted), func(i *Input) {
		delete(i.Lease.Followed, tasks[0].ID)
	}))
	if notYet.Election != nil || len(notYet.Kills) != 0 || notYet.Demote != nil || notYet.RequeueAfter <= 0 {
		t.Fatalf("handed over before ordinal 0 follows: %+v, kills %v", notYet.Election, killed(notYet, false))
	}
	stale := Plan(in(c, tasks, withElection(promoted), func(i *Input) {
		i.Lease.Followed[tasks[0].ID] = election.Message{Type: election.TypeFollowed, Epoch: 4, TaskID: tasks[0].ID}
	}))
	if stale.Election != nil {
		t.Fatalf("handed over while ordinal 0 followed an older master: %+v", stale.Election)
	}
	d := Plan(in(c, tasks, withElection(promoted))).Election
	fresh := append([]store.TaskRecord(nil), tasks...)
	fresh[0] = rec(c, 0, stateRunning, func(r *store.TaskRecord) { r.ID = TaskID(c.Namespace, c.Name, 0, "fresh"); r.ExecutorID = r.ID })
	el := Plan(in(c, fresh, withElection(d), demotedMsg(tasks[2], 5, ""), func(i *Input) {
		delete(i.Lease.Followed, fresh[0].ID)
	}))
	if el.Election == nil || !sameSet(queried(el), []int32{1}) {
		t.Fatalf("a member launched during the handover is a candidate: queries %v", queried(el))
	}
}

// The old master's lease decides when it cannot answer: after the lease
// surely ended, it is killed and the others elect; a failed demote is not a
// demotion, a dead process is.
func TestPlanHandoverWithoutConfirmation(t *testing.T) {
	c, tasks, promoted := handoverCluster(t, 2)
	d := Plan(in(c, tasks, withElection(promoted))).Election

	lapsed := Plan(in(c, tasks, withElection(d), func(i *Input) {
		i.Lease.Epoch, i.Lease.TaskID, i.Lease.GrantedAt = 5, tasks[2].ID, t0.Add(-12*time.Second)
	}))
	if !sameSet(killed(lapsed, true), []int32{2}) || lapsed.Election == nil || lapsed.Election.Epoch != 6 || !sameSet(queried(lapsed), []int32{0, 1}) {
		t.Fatalf("lease ended unconfirmed: kills %v, election %+v, queries %v", killed(lapsed, true), lapsed.Election, queried(lapsed))
	}
	if lapsed.Election.Handover == nil || lapsed.Election.Handover.DemotedAt != nil {
		t.Fatalf("handover = %+v, want carried, not demoted", lapsed.Election.Handover)
	}

	failed := Plan(in(c, tasks, withElection(d), demotedMsg(tasks[2], 5, "demote command failed (the task is killed): exit 1")))
	if failed.Election != nil || failed.Demote == nil {
		t.Fatalf("a failed demote counted: %+v", failed.Election)
	}
	stale := Plan(in(c, tasks, withElection(d), demotedMsg(tasks[2], 4, "")))
	if stale.Election != nil {
		t.Fatalf("a demotion of an older epoch counted: %+v", stale.Election)
	}

	dead := append([]store.TaskRecord(nil), tasks...)
	dead[2].State = "TASK_KILLED"
	gone := Plan(in(c, dead, withElection(d)))
	if gone.Election == nil || gone.Election.Epoch != 6 || !sameSet(queried(gone), []int32{0, 1}) {
		t.Fatalf("old master dead: election %+v", gone.Election)
	}
}

// A handover election that elects nobody in time becomes a plain one, where
// the old (demoted) master may win again; a requested switchover fails.
func TestPlanHandoverElectionTimesOut(t *testing.T) {
	c, tasks, promoted := handoverCluster(t)
	c.Annotations = map[string]string{v1alpha1.AnnotationSwitchoverAt: "2026-01-02T03:04:00Z"}
	d := Plan(in(c, tasks, withElection(promoted))).Election
	e6 := Plan(in(c, tasks, withElection(d), demotedMsg(tasks[2], 5, ""))).Election
	late := Plan(in(c, tasks, withElection(e6), func(i *Input) {
		i.Now = e6.Deadline.Add(time.Second)
		i.Answers = []election.Message{answer(c, 0, 6, "10")}
	}))
	e7 := late.Election
	if e7 == nil || e7.Epoch != 7 || e7.Handover != nil || !sameSet(queried(late), []int32{0, 1, 2}) {
		t.Fatalf("after a handover election timed out: %+v, queries %v", e7, queried(late))
	}
	if sw := late.Status.Switchover; sw == nil || sw.Phase != v1alpha1.SwitchoverFailed || !hasEvent(late, "SwitchoverFailed") {
		t.Fatalf("switchover status = %+v", sw)
	}
}

// With two members, the demoted master counts towards the quorum that may
// start an election, though it is no candidate.
func TestPlanHandoverOfTwo(t *testing.T) {
	c := testCluster(2, strategy(v1alpha1.ElectionPosition))
	tasks := running(c, 0, 1)
	tasks[1].TemplateHash = "older"
	d := Plan(in(c, tasks, withElection(elected(c, tasks[1], 3, store.PhasePromoted)), followedAt(3))).Election
	if d == nil || d.Phase != store.PhaseDemoting {
		t.Fatalf("not handed over: %+v", d)
	}
	el := Plan(in(c, tasks, withElection(d), demotedMsg(tasks[1], 3, ""), followedAt(3)))
	if el.Election == nil || el.Election.Epoch != 4 || !sameSet(queried(el), []int32{0}) {
		t.Fatalf("two members: election %+v, queries %v", el.Election, queried(el))
	}
}

// A one-member cluster has nobody to hand over to: the rolling update
// replaces its master as before.
func TestPlanHandoverNeedsAnotherMember(t *testing.T) {
	c := testCluster(1, strategy(v1alpha1.ElectionPosition))
	tasks := running(c, 0)
	tasks[0].TemplateHash = "older"
	out := Plan(in(c, tasks, withElection(elected(c, tasks[0], 3, store.PhasePromoted))))
	if !sameSet(killed(out, true), []int32{0}) || out.Demote != nil {
		t.Fatalf("one member: kills %v, demote %+v", killed(out, true), out.Demote)
	}
}

func switchoverReq(from string, to string) func(*v1alpha1.Cluster) {
	return func(c *v1alpha1.Cluster) {
		c.Annotations = map[string]string{v1alpha1.AnnotationSwitchoverAt: "2026-01-02T03:04:00Z", v1alpha1.AnnotationSwitchoverFrom: from}
		if to != "" {
			c.Annotations[v1alpha1.AnnotationSwitchoverTo] = to
		}
	}
}

// `converge switchover --to 0`: the request is acted on once; ordinal 0
// wins unless another member is ahead; the old master is kept and follows.
func TestPlanSwitchoverRequest(t *testing.T) {
	c, tasks, promoted := handoverCluster(t)
	switchoverReq(tasks[2].ID, "0")(c)

	start := Plan(in(c, tasks, withElection(promoted)))
	d := start.Election
	if d == nil || d.Phase != store.PhaseDemoting || d.Handover == nil || d.Handover.To == nil || *d.Handover.To != 0 || start.Demote == nil {
		t.Fatalf("request not acted on: %+v", d)
	}
	if sw := start.Status.Switchover; sw == nil || sw.Phase != v1alpha1.SwitchoverDemoting || *sw.From != 2 || *sw.To != 0 || sw.RequestedAt != "2026-01-02T03:04:00Z" {
		t.Fatalf("status.switchover = %+v", sw)
	}
	e6 := Plan(in(c, tasks, withElection(d), demotedMsg(tasks[2], 5, ""))).Election
	if e6 == nil || e6.Switchover.Phase != v1alpha1.SwitchoverElecting {
		t.Fatalf("after demotion: %+v", e6)
	}
	decide := func(p0, p1 string) Output {
		return Plan(in(c, tasks, withElection(e6), func(i *Input) {
			i.Answers = []election.Message{answer(c, 0, 6, p0), answer(c, 1, 6, p1)}
		}))
	}
	if tie := decide("0/3000148", "0/3000148"); tie.Election.MasterOrdinal != 0 {
		t.Fatalf("equal positions: ordinal %d elected, want 0 (asked for)", tie.Election.MasterOrdinal)
	}
	behind := decide("0/3000100", "0/3000148")
	if behind.Election.MasterOrdinal != 1 || !hasEvent(behind, "SwitchoverTargetBehind") {
		t.Fatalf("ordinal 0 behind: ordinal %d elected", behind.Election.MasterOrdinal)
	}
	ahead := decide("0/3000200", "0/3000148")
	prom := Plan(in(c, tasks, withElection(ahead.Election), func(i *Input) {
		i.Promoted = &election.Message{Type: election.TypePromoted, Epoch: 6, TaskID: tasks[0].ID}
	}))
	sw := prom.Status.Switchover
	if sw == nil || sw.Phase != v1alpha1.SwitchoverSucceeded || *sw.To != 0 || sw.Epoch != 6 {
		t.Fatalf("status.switchover after the promotion = %+v", sw)
	}
	// Done: the request is not acted on again; the old master follows.
	after := Plan(in(c, tasks, withElection(prom.Election)))
	if after.Election != nil || len(after.Kills) != 0 || after.Demote != nil {
		t.Fatalf("a done request acted on again: %+v", after.Election)
	}
	if len(after.Follows) != 2 {
		t.Fatalf("follows = %+v, want ordinals 1 and 2", after.Follows)
	}
}

// Requests that cannot be honoured fail with a reason, and the master stays.
func TestPlanSwitchoverRejected(t *testing.T) {
	_, tasks, promoted := handoverCluster(t)
	cases := []struct {
		name, from, to, want string
		strategy             string
	}{
		{"the master itself", tasks[2].ID, "2", "ordinal 2 is already the master", ""},
		{"no such ordinal", tasks[2].ID, "7", "ordinal 7 has no running member", ""},
		{"not an ordinal", tasks[2].ID, "x", `annotation converge.io/switchover-to: "x" is not an ordinal`, ""},
		{"another master since", tasks[1].ID, "", "the master changed since the request", ""},
		{"no position election", "", "", "a switchover needs election.strategy position (this cluster's is ordinal)", v1alpha1.ElectionOrdinal},
	}
	for _, tc := range cases {
		c, tasks, _ := handoverCluster(t)
		switchoverReq(tc.from, tc.to)(c)
		if tc.strategy != "" {
			c.Spec.Election.Strategy = tc.strategy
		}
		out := Plan(in(c, tasks, withElection(promoted)))
		sw := out.Status.Switchover
		if sw == nil || sw.Phase != v1alpha1.SwitchoverFailed || !strings.Contains(sw.Message, tc.want) || !hasEvent(out, "SwitchoverFailed") {
			t.Errorf("%s: status.switchover = %+v, want Failed: %q", tc.name, sw, tc.want)
			continue
		}
		if out.Demote != nil || out.Status.Master == nil || out.Status.Master.Ordinal != 2 || out.Election.Phase != store.PhasePromoted {
			t.Errorf("%s: the master did not stay: %+v", tc.name, out.Election)
		}
		// Recorded: the same request is not looked at again.
		again := Plan(in(c, tasks, withElection(out.Election)))
		if again.Election != nil || hasEvent(again, "SwitchoverFailed") {
			t.Errorf("%s: a rejected request was looked at again", tc.name)
		}
	}
}

// Deleting a cluster demotes its master before any member is killed.
func TestPlanDeleteDemotesFirst(t *testing.T) {
	c, tasks, promoted := handoverCluster(t)
	now := metav1.NewTime(t0)
	c.DeletionTimestamp = &now
	out := Plan(in(c, tasks, withElection(promoted)))
	if len(out.Kills) != 0 || out.Demote == nil || out.Election == nil || out.Election.Phase != store.PhaseDemoting || out.RemoveFinalizer {
		t.Fatalf("delete: kills %v, demote %+v, election %+v", killed(out, false), out.Demote, out.Election)
	}
	done := Plan(in(c, tasks, withElection(out.Election), demotedMsg(tasks[2], 5, "")))
	if !sameSet(killed(done, true), []int32{0, 1, 2}) {
		t.Fatalf("delete after the demotion: kills %v", killed(done, true))
	}
}
