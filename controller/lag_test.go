package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// An election excludes the members lagging the master's last reported
// position by more than election.maximumLagOnFailover (Patroni's
// maximum_lag_on_failover); with none within it nobody is elected, the
// conditions say why, and a new epoch re-reads the positions at the deadline.
func TestPlanMaximumLagOnFailover(t *testing.T) {
	limit := func(n int64) func(*v1alpha1.Cluster) {
		return func(c *v1alpha1.Cluster) { c.Spec.Election.MaximumLagOnFailover = &n }
	}
	pos := func(c *v1alpha1.Cluster) {
		c.Spec.Election.Strategy = v1alpha1.ElectionPosition
		c.Spec.Election.Timeout = &metav1.Duration{Duration: 30 * time.Second}
	}
	lim100 := testCluster(3, pos, limit(100))
	noLimit := testCluster(3, pos)
	tasks := running(lim100, 0, 1, 2)
	// Epoch 5 is electing; the master of epoch 4 last reported 1000 (persisted).
	electing := func(deadline time.Time) *store.ElectionRecord {
		at := t0.Add(-20 * time.Second)
		return &store.ElectionRecord{Epoch: 5, Phase: store.PhaseElecting, StartedAt: t0.Add(-time.Second), Deadline: deadline,
			MasterPosition: "1000", MasterPositionEpoch: 4, MasterPositionAt: &at}
	}
	answers := func(c *v1alpha1.Cluster, p0, p1, p2 string) []election.Message {
		return []election.Message{answer(c, 0, 5, p0), answer(c, 1, 5, p1), answer(c, 2, 5, p2)}
	}
	tests := []struct {
		name     string
		c        *v1alpha1.Cluster
		answers  []election.Message
		lease    LeaseState
		deadline time.Time
		winner   int32 // -1: nobody elected
		newEpoch bool  // a new election starts (epoch 6)
		reason   string
		msg      []string
	}{
		{"best within the limit wins", lim100, answers(lim100, "950", "880", "700"), LeaseState{}, t0.Add(time.Minute), 0, false, ReasonPromoting, nil},
		{"exactly the limit is within it", lim100, answers(lim100, "900", "880", "700"), LeaseState{}, t0.Add(time.Minute), 0, false, ReasonPromoting, nil},
		{"every member lags: nobody, until the deadline", lim100, answers(lim100, "850", "880", "700"), LeaseState{}, t0.Add(time.Minute), -1, false, ReasonMembersLagging,
			[]string{"no master", "epoch 5", "ordinal 1", `"880" lags by 120`, "ordinal 0", "ordinal 2", `"1000"`, "election.maximumLagOnFailover (100)", "deadline"}},
		{"every member lags at the deadline: a new epoch", lim100, answers(lim100, "850", "880", "700"), LeaseState{}, t0, -1, true, ReasonElecting, nil},
		{"a newer report in memory counts over the persisted one", lim100, answers(lim100, "950", "880", "700"),
			LeaseState{Epoch: 4, TaskID: "gone", Position: "1100", PositionEpoch: 4}, t0.Add(time.Minute), -1, false, ReasonMembersLagging, []string{`"1100"`, "lags by 150"}},
		{"a report of an older epoch does not", lim100, answers(lim100, "950", "880", "700"),
			LeaseState{Epoch: 3, TaskID: "gone", Position: "5000", PositionEpoch: 3}, t0.Add(time.Minute), 0, false, ReasonPromoting, nil},
		{"no limit: the most advanced wins however far behind", noLimit, answers(noLimit, "5", "3", "1"), LeaseState{}, t0.Add(time.Minute), 0, false, ReasonPromoting, nil},
		{"positions of another format cannot be measured: eligible", lim100, answers(lim100, "0/5", "0/3", "0/1"), LeaseState{}, t0.Add(time.Minute), 0, false, ReasonPromoting, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Plan(in(tt.c, tasks, func(i *Input) {
				i.Election, i.Answers, i.Lease = electing(tt.deadline), tt.answers, tt.lease
			}))
			r := cond(out, v1alpha1.ConditionReady)
			if r.Reason != tt.reason || !containsAll(r.Message, tt.msg...) {
				t.Errorf("Ready %s %q, want reason %s naming %q", r.Reason, r.Message, tt.reason, tt.msg)
			}
			switch {
			case tt.winner >= 0:
				if out.Election == nil || out.Election.Phase != store.PhaseElected || out.Election.MasterTaskID != tasks[tt.winner].ID || out.Promote == nil {
					t.Fatalf("election = %+v, want ordinal %d elected", out.Election, tt.winner)
				}
				if len(out.Election.Positions) != 3 {
					t.Errorf("positions recorded = %v, want every answer", out.Election.Positions)
				}
			case tt.newEpoch:
				e := out.Election
				if e == nil || e.Epoch != 6 || e.Phase != store.PhaseElecting || len(out.Queries) != 3 || !hasEvent(out, ReasonMembersLagging) {
					t.Fatalf("election = %+v, %d queries, events %+v; want epoch 6 asking everyone and a %s event", e, len(out.Queries), out.Events, ReasonMembersLagging)
				}
				if e.MasterPosition != "1000" || e.MasterPositionEpoch != 4 {
					t.Errorf("epoch 6 measures from %q (epoch %d), want the last master position carried over", e.MasterPosition, e.MasterPositionEpoch)
				}
			default:
				if out.Election != nil || out.Promote != nil || len(out.Queries) != 0 {
					t.Fatalf("election %+v, promote %+v, %d queries: want nothing until the deadline", out.Election, out.Promote, len(out.Queries))
				}
				if left := tt.deadline.Sub(t0); out.RequeueAfter <= 0 || out.RequeueAfter > left {
					t.Errorf("requeue after %s, want by the deadline (%s)", out.RequeueAfter, left)
				}
			}
			if out.Status.Master != nil || out.Endpoints.Master != nil {
				t.Errorf("a master published during the election")
			}
		})
	}
}

// The master's reported position is persisted in the election record at
// most once per lease duration, and carried into the next election; only
// for clusters with a lag limit (without one it would be a write per master
// per lease that nothing reads).
func TestPlanRecordsMasterPosition(t *testing.T) {
	c := testCluster(3, strategy(v1alpha1.ElectionPosition))
	tasks := running(c, 0, 1, 2)
	lease := LeaseState{Epoch: 4, TaskID: tasks[0].ID, GrantedAt: t0, Position: "0/3000148", PositionEpoch: 4}
	unlimited := elected(c, tasks[0], 4, store.PhasePromoted)
	if out := Plan(in(c, tasks, func(i *Input) { i.Election, i.Lease = unlimited, lease })); out.Election != nil {
		t.Errorf("no maximumLagOnFailover: wrote %+v", out.Election)
	}
	limit := int64(1 << 20)
	c.Spec.Election.MaximumLagOnFailover = &limit
	promoted := func(at *time.Time, pos string) *store.ElectionRecord {
		e := elected(c, tasks[0], 4, store.PhasePromoted)
		e.MasterPosition, e.MasterPositionEpoch, e.MasterPositionAt = pos, 4, at
		return e
	}
	recent, old := t0.Add(-time.Second), t0.Add(-10*time.Second)
	tests := []struct {
		name  string
		rec   *store.ElectionRecord
		write bool
	}{
		{"never recorded", promoted(nil, ""), true},
		{"recorded a lease duration ago", promoted(&old, "0/3000000"), true},
		{"recorded a second ago: later", promoted(&recent, "0/3000000"), false},
		{"unchanged", promoted(&old, "0/3000148"), false},
	}
	for _, tt := range tests {
		out := Plan(in(c, tasks, func(i *Input) { i.Election, i.Lease = tt.rec, lease }))
		e := out.Election
		if !tt.write {
			if e != nil {
				t.Errorf("%s: wrote %+v", tt.name, e)
			}
			continue
		}
		if e == nil || e.MasterPosition != "0/3000148" || e.MasterPositionEpoch != 4 || e.MasterPositionAt == nil || !e.MasterPositionAt.Equal(t0) ||
			e.Phase != store.PhasePromoted || e.Epoch != 4 || e.MasterTaskID != tasks[0].ID {
			t.Errorf("%s: record = %+v, want the promoted record noting 0/3000148 at t0", tt.name, e)
		}
		if out.Status.Master == nil {
			t.Errorf("%s: master not published", tt.name)
		}
	}

	// The master dies: the next election carries the latest report, even one
	// only held in memory.
	dead := append([]store.TaskRecord(nil), tasks...)
	dead[0].State = "TASK_FAILED"
	out := Plan(in(c, dead, func(i *Input) { i.Election, i.Lease = promoted(&recent, "0/3000000"), lease }))
	if e := out.Election; e == nil || e.Epoch != 5 || e.MasterPosition != "0/3000148" || e.MasterPositionEpoch != 4 {
		t.Fatalf("next election = %+v, want epoch 5 measuring from 0/3000148 of epoch 4", e)
	}
}
