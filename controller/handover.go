package controller

import (
	"fmt"
	"strconv"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// A handover replaces a master that must go (a rolling update, a delete, a
// switchover request) without ever having two that take writes, using the
// lease protocol (lease.go) rather than going around it:
//
//  1. Persist phase "demoting" (the election record keeps the epoch and the
//     master): from then on its lease is not renewed (grantable), it is not
//     published, and it is told to demote (demote message, re-sent each
//     second until answered).
//  2. The old master stops taking writes: its executor stops renewing and
//     runs demoteCommand (CONVERGE_DEMOTE_REASON=switchover: a clean stop
//     that lets the replicas receive everything), or ends the task when that
//     fails. The controller goes on only once the member confirms (demoted),
//     or its process is known dead, or its lease has surely ended (then it
//     is killed, as any master whose lease ran out).
//  3. A new epoch's election among the other members (the old one is no
//     candidate); a requested ordinal wins unless another member's position
//     is ahead of it (no acknowledged write is given up for a preference).
//  4. The winner takes the lease and promotes; it is published; only then
//     is the old member stopped (a rolling update) or told to follow the
//     new master (a switchover request), as every other member is.
//
// This is Patroni's switchover (ha.py: the leader demotes itself gracefully
// and releases the leader key before a candidate takes it; api.py checks the
// request's leader and candidate) with the lease as the leader key.

// ReasonSwitchingOver: the master is being handed over.
const ReasonSwitchingOver = "SwitchingOver"

// handoverTo is a handover the member plan asks for (planElection starts it).
type handoverTo struct {
	reason string
	to     *int32
}

// canHandOver reports whether the master can be handed over rather than
// killed (a position election with a promoted master and another member
// that could be elected), and whether it can be now: every other member
// has confirmed it follows the master (its followCommand succeeded: the
// examples' succeeds only once it replicates), so a member still copying
// the master, or a fresh one, is never handed the writes.
func (p *planner) canHandOver() (possible, now bool) {
	e := p.in.Election
	if !p.usesLease() || e == nil || e.Phase != store.PhasePromoted {
		return false, false
	}
	others := p.otherCandidates(e.MasterTaskID)
	for _, m := range others {
		if !p.follows(m, e.Epoch) {
			p.requeueIn(electionResendInterval)
			return true, false
		}
	}
	return len(others) > 0, len(others) > 0
}

// follows reports whether m confirmed it follows the master of epoch.
func (p *planner) follows(m *member, epoch int64) bool {
	a, ok := p.in.Lease.Followed[m.rec.ID]
	return ok && a.Epoch == epoch && a.Error == ""
}

// handoverCandidates are the members that may win a handover's election:
// those that followed the old master (a member launched meanwhile may hold
// a fresh, empty copy).
func (p *planner) handoverCandidates(h *store.Handover) []*member {
	var out []*member
	for _, m := range p.otherCandidates(h.From) {
		if p.follows(m, h.FromEpoch) {
			out = append(out, m)
		}
	}
	return out
}

// otherCandidates are the candidates other than the task id given.
func (p *planner) otherCandidates(except string) []*member {
	var out []*member
	for _, m := range p.candidates() {
		if m.rec.ID != except {
			out = append(out, m)
		}
	}
	return out
}

// startHandover persists phase demoting for the promoted master of cur and
// tells it to demote.
func (p *planner) startHandover(cur store.ElectionRecord, h handoverTo) {
	next := cur
	next.Phase = store.PhaseDemoting
	next.Handover = &store.Handover{From: cur.MasterTaskID, FromOrdinal: cur.MasterOrdinal, FromEpoch: cur.Epoch, To: h.to, Reason: h.reason, Since: p.in.Now}
	p.out.Election = &next
	to := "the member with the highest position"
	if h.to != nil {
		to = fmt.Sprintf("ordinal %d", *h.to)
	}
	p.ev("Normal", "HandingOver", "handing the master over from task %s (ordinal %d, epoch %d) to %s: %s; demoting it first",
		cur.MasterTaskID, cur.MasterOrdinal, cur.Epoch, to, h.reason)
	p.planDemote(next)
}

// planDemote tells the master of a demoting record to stop taking writes
// until that is sure; it reports whether it is (the election may go on).
func (p *planner) planDemote(cur store.ElectionRecord) bool {
	old := p.byID[cur.MasterTaskID]
	if d := p.in.Demoted; d != nil && d.Epoch == cur.Epoch && d.TaskID == cur.MasterTaskID && d.Error == "" {
		return true
	}
	if old == nil || processGone(old.rec.State) || !old.occupying {
		return true
	}
	end := p.leaseEnd(cur)
	if !p.in.Now.Before(end) {
		if !old.rec.KillRequested {
			p.kill(old, fmt.Sprintf("its lease of epoch %d ended during the handover without a confirmed demotion", cur.Epoch))
		}
		return true
	}
	if old.rec.ExecutorID != "" && isRunning(old.rec) && !old.rec.KillRequested {
		p.out.Demote = &Message{AgentID: old.rec.AgentID, ExecutorID: executorID(old.rec),
			Msg: election.Message{Type: election.TypeDemote, Epoch: cur.Epoch, TaskID: old.rec.ID}}
	}
	p.requeueIn(min(electionResendInterval, end.Sub(p.in.Now)))
	why := "no master: handing over"
	if cur.Handover != nil {
		why += " (" + cur.Handover.Reason + ")"
	}
	p.masterReason, p.masterMsg = ReasonSwitchingOver, fmt.Sprintf("%s: waiting for task %s (ordinal %d) to stop taking writes, at the latest until its lease ends at %s",
		why, old.rec.ID, old.rec.Ordinal, end.UTC().Format(time.RFC3339))
	if p.in.Demoted != nil && p.in.Demoted.Epoch == cur.Epoch && p.in.Demoted.TaskID == cur.MasterTaskID {
		p.masterMsg += "; its demote failed: " + truncateMsg(p.in.Demoted.Error, 200)
	}
	return false
}

// handoverElection is the first election record after a demoting one: the
// next epoch, the handover carried (its old master is no candidate).
func (p *planner) handoverElection(cur store.ElectionRecord, next *store.ElectionRecord) {
	h := *cur.Handover
	if d := p.in.Demoted; d != nil && d.Epoch == cur.Epoch && d.TaskID == cur.MasterTaskID && d.Error == "" {
		t := p.in.Now
		h.DemotedAt = &t
	}
	next.Handover = &h
	if sw := next.Switchover; sw != nil && sw.Phase == v1alpha1.SwitchoverDemoting {
		s := *sw
		s.Phase, s.Epoch = v1alpha1.SwitchoverElecting, next.Epoch
		next.Switchover = &s
	}
	how := "its lease ended or its task did"
	if h.DemotedAt != nil {
		how = "it demoted"
	}
	p.ev("Normal", "Demoted", "the old master, task %s (ordinal %d), stopped taking writes (%s after the handover began: %s); electing another in epoch %d",
		h.From, h.FromOrdinal, p.in.Now.Sub(h.Since).Round(time.Millisecond), how, next.Epoch)
}

// handoverFailed ends a handover that elected no one in its epoch: the next
// election is a plain one (the old master may win it again).
func (p *planner) handoverFailed(next *store.ElectionRecord, why string) {
	next.Handover = nil
	if sw := next.Switchover; sw != nil && (sw.Phase == v1alpha1.SwitchoverDemoting || sw.Phase == v1alpha1.SwitchoverElecting) {
		s := *sw
		s.Phase, s.Message = v1alpha1.SwitchoverFailed, why
		next.Switchover = &s
		p.ev("Warning", "SwitchoverFailed", "switchover requested at %s failed: %s", s.RequestedAt, why)
	}
}

// handedOver completes the handover of next, whose master is now promoted.
func (p *planner) handedOver(next *store.ElectionRecord) {
	h := next.Handover
	if h == nil {
		return
	}
	next.Handover = nil
	p.ev("Normal", "SwitchedOver", "master handed over from ordinal %d to ordinal %d (task %s) in epoch %d, %s after it began (%s)",
		h.FromOrdinal, next.MasterOrdinal, next.MasterTaskID, next.Epoch, p.in.Now.Sub(h.Since).Round(time.Millisecond), h.Reason)
	if sw := next.Switchover; sw != nil && sw.Phase == v1alpha1.SwitchoverElecting {
		s := *sw
		to := next.MasterOrdinal
		s.Phase, s.To, s.Epoch = v1alpha1.SwitchoverSucceeded, &to, next.Epoch
		s.Message = fmt.Sprintf("master ordinal %d -> ordinal %d in epoch %d", h.FromOrdinal, to, next.Epoch)
		next.Switchover = &s
	}
}

// preferred returns the winner among answered: the handover's ordinal when
// no position is ahead of its own, else the best.
func (p *planner) preferred(cur store.ElectionRecord, answered map[string]string, best string) string {
	h := cur.Handover
	if h == nil || h.To == nil {
		return best
	}
	for id, pos := range answered {
		if p.byID[id].rec.Ordinal != *h.To {
			continue
		}
		if election.Compare(pos, answered[best]) >= 0 {
			return id
		}
		p.ev("Warning", "SwitchoverTargetBehind", "ordinal %d (position %q) is behind task %s (position %q): it is elected instead, so no acknowledged write is lost",
			*h.To, pos, best, answered[best])
		return best
	}
	p.ev("Warning", "SwitchoverTargetBehind", "ordinal %d gave no position in epoch %d: the best of the others is elected", *h.To, cur.Epoch)
	return best
}

// switchoverRequest returns the cluster's switchover request if it was not
// acted on yet (nil otherwise).
func (p *planner) switchoverRequest() *v1alpha1.SwitchoverStatus {
	at := p.c.Annotations[v1alpha1.AnnotationSwitchoverAt]
	if at == "" {
		return nil
	}
	if e := p.in.Election; e != nil && e.Switchover != nil && e.Switchover.RequestedAt == at {
		return nil
	}
	return &v1alpha1.SwitchoverStatus{RequestedAt: at}
}

// planSwitchover acts on a new switchover request while cur's master is
// promoted and holds its lease: it starts the handover, or records why the
// request fails. It reports whether a handover began.
func (p *planner) planSwitchover(cur store.ElectionRecord) bool {
	req := p.switchoverRequest()
	if req == nil {
		return false
	}
	from := cur.MasterOrdinal
	req.From = &from
	to, err := p.switchoverTarget(cur)
	if err != "" {
		p.rejectSwitchover(cur, req, err)
		return false // the master stays, and serves
	}
	if _, now := p.canHandOver(); !now {
		return false // acted on once every other member follows the master
	}
	req.To, req.Phase = to, v1alpha1.SwitchoverDemoting
	cur.Switchover = req
	p.startHandover(cur, handoverTo{reason: "switchover requested at " + req.RequestedAt, to: to})
	return true
}

// switchoverTarget checks a request against cur (Patroni's
// is_failover_possible): the master it names, the ordinal it asks for.
func (p *planner) switchoverTarget(cur store.ElectionRecord) (*int32, string) {
	a := p.c.Annotations
	if from := a[v1alpha1.AnnotationSwitchoverFrom]; from != "" && from != cur.MasterTaskID {
		return nil, fmt.Sprintf("the master changed since the request: it named task %s, the master is task %s (ordinal %d)", from, cur.MasterTaskID, cur.MasterOrdinal)
	}
	others := p.otherCandidates(cur.MasterTaskID)
	text := a[v1alpha1.AnnotationSwitchoverTo]
	if text == "" {
		if len(others) == 0 {
			return nil, "no other running member to hand over to"
		}
		return nil, ""
	}
	n, err := strconv.ParseInt(text, 10, 32)
	if err != nil || n < 0 {
		return nil, fmt.Sprintf("annotation %s: %q is not an ordinal", v1alpha1.AnnotationSwitchoverTo, text)
	}
	to := int32(n)
	if to == cur.MasterOrdinal {
		return nil, fmt.Sprintf("ordinal %d is already the master", to)
	}
	for _, m := range others {
		if m.rec.Ordinal == to {
			return &to, ""
		}
	}
	return nil, fmt.Sprintf("ordinal %d has no running member that can be elected (members are ordinals 0 to %d)", to, p.replicas()-1)
}

// rejectSwitchover records that a request is not acted on, and why.
func (p *planner) rejectSwitchover(cur store.ElectionRecord, req *v1alpha1.SwitchoverStatus, why string) {
	req.Phase, req.Message = v1alpha1.SwitchoverFailed, why
	next := cur
	next.Switchover = req
	p.out.Election = &next
	p.ev("Warning", "SwitchoverFailed", "switchover requested at %s: %s", req.RequestedAt, why)
}

// rejectSwitchoverWithoutElection fails a request on a cluster whose
// strategy elects no master by position.
func (p *planner) rejectSwitchoverWithoutElection() {
	req := p.switchoverRequest()
	if req == nil {
		return
	}
	var cur store.ElectionRecord
	if p.in.Election != nil {
		cur = *p.in.Election
	}
	p.rejectSwitchover(cur, req, fmt.Sprintf("a switchover needs election.strategy position (this cluster's is %s)", p.strategy()))
}

// demoteBeforeDelete hands the master of a deleted cluster nothing, but has
// it stop taking writes before any member is killed (killing the replicas
// first would leave a synchronous master's clients hanging). It reports
// whether the kills must wait.
func (p *planner) demoteBeforeDelete() bool {
	e := p.in.Election
	if !p.usesLease() || e == nil {
		return false
	}
	switch e.Phase {
	case store.PhasePromoted:
		m := p.byID[e.MasterTaskID]
		if m == nil || !m.live || !isRunning(m.rec) || m.rec.ExecutorID == "" {
			return false
		}
		next := *e
		next.Phase = store.PhaseDemoting
		next.Handover = &store.Handover{From: e.MasterTaskID, FromOrdinal: e.MasterOrdinal, FromEpoch: e.Epoch, Reason: "cluster deleted", Since: p.in.Now}
		p.out.Election = &next
		p.ev("Normal", "Demoting", "demoting the master, task %s (ordinal %d), before its members are stopped: cluster deleted", e.MasterTaskID, e.MasterOrdinal)
		return !p.planDemote(next)
	case store.PhaseDemoting:
		return !p.planDemote(*e)
	}
	return false
}
