package controller

import (
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// The planner's election phase: planElection keeps a live master (followed,
// or handed over), confirms an elected one's promotion, or elects the next
// (the ordinal strategy at once; the position strategy by asking every
// candidate, tallying the answers and deciding). Pure, as all of Plan.

func (p *planner) strategy() string {
	if s := p.c.Spec.Election.Strategy; s != "" {
		return s
	}
	return v1alpha1.ElectionNone
}

func (p *planner) electionWanted() bool { return p.strategy() != v1alpha1.ElectionNone }

func (p *planner) electionTimeout() time.Duration {
	if t := p.c.Spec.Election.Timeout; t != nil && t.Duration > 0 {
		return t.Duration
	}
	return v1alpha1.DefaultElectionTimeout
}

// candidates are the live RUNNING members, by ordinal; for the position
// strategy only those under an executor (which can answer position queries):
// members of an older template without one are replaced by the rolling update.
func (p *planner) candidates() []*member {
	var out []*member
	for _, m := range p.live {
		// live again: a member killed in this plan (a fenced master) is none.
		if m.live && isRunning(m.rec) && (p.strategy() != v1alpha1.ElectionPosition || m.rec.ExecutorID != "") {
			out = append(out, m)
		}
	}
	return out
}

// planElection keeps the cluster's master, or elects the next one: an
// alive master is followed (or handed over), an elected one confirmed, and
// a lost one replaced once it surely takes no writes.
func (p *planner) planElection() {
	if !p.usesLease() {
		p.rejectSwitchoverWithoutElection()
	}
	if !p.electionWanted() || p.replicas() == 0 {
		p.masterOK = true // no master to elect (none wanted, or no member)
		return
	}
	var cur store.ElectionRecord
	if rec := p.in.Election; rec != nil {
		cur = *rec
	}
	if cur.Phase == store.PhaseDemoting && !p.planDemote(cur) {
		return // the old master may still take writes
	}
	position := p.strategy() == v1alpha1.ElectionPosition
	if p.masterAlive(cur, position) {
		p.keepMaster(cur, position)
		return
	}
	p.replaceMaster(cur, position)
}

// masterAlive reports whether cur's elected master still serves: live, and
// for the position strategy still holding its lease (planLease fences it
// otherwise).
func (p *planner) masterAlive(cur store.ElectionRecord, position bool) bool {
	if (cur.Phase != store.PhaseElected && cur.Phase != store.PhasePromoted) || cur.MasterTaskID == "" {
		return false
	}
	m := p.byID[cur.MasterTaskID]
	if m == nil || !m.live {
		return false
	}
	return !position || p.planLease(cur, m)
}

// keepMaster plans for a live master: once promoted, it is handed over
// when a rolling update or a switchover asks, else followed by the others;
// until then, its promotion is awaited.
func (p *planner) keepMaster(cur store.ElectionRecord, position bool) {
	if cur.Phase != store.PhasePromoted {
		p.awaitPromotion(cur)
		return
	}
	if p.handover != nil {
		p.startHandover(cur, *p.handover)
		return
	}
	if position && p.planSwitchover(cur) {
		return
	}
	p.masterOK = true
	p.planFollow(cur, p.byID[cur.MasterTaskID])
	p.recordMasterPosition(cur)
}

// awaitPromotion plans for an elected master not yet confirmed promoted:
// its confirmation promotes the election, its failure fences it, and
// meanwhile the promote message is re-sent.
func (p *planner) awaitPromotion(cur store.ElectionRecord) {
	m := p.byID[cur.MasterTaskID]
	if pm := p.in.Promoted; pm != nil && pm.Epoch == cur.Epoch && pm.TaskID == cur.MasterTaskID {
		if pm.Error != "" {
			p.promoteFailed(m, cur, pm.Error)
			return
		}
		next := cur
		t := p.in.Now
		next.Phase = store.PhasePromoted
		next.PromotedAt = &t
		p.handedOver(&next)
		p.out.Election = &next
		p.masterOK = true
		return
	}
	p.out.Promote = &Message{AgentID: m.rec.AgentID, ExecutorID: executorID(m.rec), Msg: election.Message{Type: election.TypePromote, Epoch: cur.Epoch, TaskID: cur.MasterTaskID}}
	p.requeueIn(electionResendInterval)
	p.masterReason, p.masterMsg = ReasonPromoting, fmt.Sprintf("waiting for task %s (ordinal %d) to confirm its promotion in epoch %d", cur.MasterTaskID, cur.MasterOrdinal, cur.Epoch)
}

// replaceMaster plans for a cluster without a live master: nothing before
// reconciliation or while the old master may still take writes (never two
// masters; see lease.go); then the running position election is tallied,
// or a new one started.
func (p *planner) replaceMaster(cur store.ElectionRecord, position bool) {
	if !p.in.Reconciled {
		p.masterReason, p.masterMsg = ReasonWaitingReconcile, "no master: waiting for Mesos reconciliation before electing"
		return
	}
	if ok, why := p.oldMasterFenced(cur); !ok {
		p.masterReason, p.masterMsg = ReasonWaitingForOldMaster, why
		return
	}
	cands := p.candidates()
	if h := cur.Handover; h != nil && (cur.Phase == store.PhaseDemoting || cur.Phase == store.PhaseElecting) {
		cands = p.handoverCandidates(h) // the old master is handed over, not re-elected
	}
	if cur.Phase == store.PhaseElecting && position && !p.tally(cur, cands) {
		return
	}
	p.newElection(cur, cands, position)
}

// newElection starts the election after cur, needed when there is no
// master yet, the master is gone, or it was handed over; it needs a quorum
// of the members present.
func (p *planner) newElection(cur store.ElectionRecord, cands []*member, position bool) {
	next := store.ElectionRecord{Epoch: cur.Epoch + 1, StartedAt: p.in.Now, Switchover: cur.Switchover}
	p.carryMasterPosition(cur, &next)
	if p.out.Election != nil {
		next.Switchover = p.out.Election.Switchover // a rejected request
	}
	cands, present := p.electorate(cur, &next, cands)
	quorum := p.replicas()/2 + 1
	if present < quorum || len(cands) == 0 {
		p.masterReason, p.masterMsg = ReasonWaitingForMembers, fmt.Sprintf("no master: %d of %d members running, %d needed to elect", len(cands), p.replicas(), max(quorum, 1))
		return
	}
	if cur.MasterTaskID != "" && cur.Phase != store.PhaseElecting && cur.Phase != store.PhaseDemoting {
		p.ev("Warning", "MasterLost", "master task %s (ordinal %d) of epoch %d is gone", cur.MasterTaskID, cur.MasterOrdinal, cur.Epoch)
	}
	if !position {
		p.electLowestOrdinal(next, cands[0])
		return
	}
	p.askPositions(next, cands)
}

// electorate settles who stands in the election next after a handover, and
// how many members are present for its quorum: a demoted old master, alive,
// counts though it is no candidate; a handover that failed turns into a
// plain election, which the old master may win.
func (p *planner) electorate(cur store.ElectionRecord, next *store.ElectionRecord, cands []*member) ([]*member, int) {
	present := len(cands)
	switch {
	case cur.Phase == store.PhaseDemoting && cur.Handover != nil:
		p.handoverElection(cur, next)
		if old := p.byID[cur.Handover.From]; old != nil && old.live {
			present++
		}
	case cur.Handover != nil:
		p.handoverFailed(next, fmt.Sprintf("no other member was elected and promoted in epoch %d", cur.Epoch))
		cands = p.candidates()
		present = len(cands)
	}
	return cands, present
}

// electLowestOrdinal elects w, the lowest running ordinal, at once: the
// ordinal strategy asks nobody, so the election is promoted as it is made.
func (p *planner) electLowestOrdinal(next store.ElectionRecord, w *member) {
	t := p.in.Now
	next.Phase = store.PhasePromoted
	next.MasterTaskID, next.MasterOrdinal = w.rec.ID, w.rec.Ordinal
	next.ElectedAt, next.PromotedAt = &t, &t
	next.Deadline = p.in.Now
	p.out.Election = &next
	p.masterOK = true
	p.ev("Normal", "Elected", "task %s (ordinal %d) elected master in epoch %d (lowest running ordinal)", w.rec.ID, w.rec.Ordinal, next.Epoch)
}

// askPositions starts a position election: every candidate is asked its
// position, and tally counts the answers until the election's deadline.
func (p *planner) askPositions(next store.ElectionRecord, cands []*member) {
	next.Phase = store.PhaseElecting
	next.Deadline = p.in.Now.Add(p.electionTimeout())
	p.out.Election = &next
	for _, m := range cands {
		p.out.Queries = append(p.out.Queries, positionQuery(m, next.Epoch))
	}
	p.requeueIn(electionResendInterval)
	p.masterReason, p.masterMsg = ReasonElecting, fmt.Sprintf("electing a master in epoch %d: 0 of %d members answered", next.Epoch, len(cands))
}

// positionQuery asks member m for its position in the election of epoch.
func positionQuery(m *member, epoch int64) Message {
	return Message{AgentID: m.rec.AgentID, ExecutorID: executorID(m.rec), Msg: election.Message{Type: election.TypePositionQuery, Epoch: epoch, TaskID: m.rec.ID}}
}

// tally counts the answers of the position election cur and elects, or
// re-asks the members that have not answered. It reports whether the round
// is over without a winner (timed out, or every answer lags too far): a new
// election under epoch+1 is then due.
func (p *planner) tally(cur store.ElectionRecord, cands []*member) bool {
	isCand := map[string]bool{}
	for _, m := range cands {
		isCand[m.rec.ID] = true
	}
	answered, failed := validAnswers(p.in.Answers, cur.Epoch, isCand)
	timedOut := !p.in.Now.Before(cur.Deadline)
	// A cluster's first election also waits (within its timeout) for the
	// members still starting: the best position may be among them. Later
	// elections go with the members that run: the master is gone now.
	starting := 0
	if cur.Epoch == 1 {
		for _, m := range p.live {
			if !isRunning(m.rec) {
				starting++
			}
		}
	}
	// Without a position from every member, only a majority's may elect:
	// a silent or failing member may be the one furthest ahead.
	allIn := len(cands) > 0 && len(answered) == len(cands) && starting == 0
	if allIn || (timedOut && len(answered) >= p.replicas()/2+1) {
		eligible, lagging := p.withinLag(cur, answered)
		if len(eligible) > 0 {
			p.decide(cur, answered, eligible)
			return false
		}
		// Every answer lags too far: nobody is crowned (Patroni refuses to
		// fail over too); a new epoch re-reads the positions at the deadline.
		msg := fmt.Sprintf("no member may be elected in epoch %d: %s", cur.Epoch, lagging)
		if !timedOut {
			p.requeueIn(cur.Deadline.Sub(p.in.Now))
			p.masterReason, p.masterMsg = ReasonMembersLagging, "no master: "+msg+"; asking again at the election's deadline"
			return false
		}
		p.ev("Warning", ReasonMembersLagging, "%s; starting a new election", msg)
		return true
	}
	if !timedOut {
		for _, m := range cands {
			if _, ok := answered[m.rec.ID]; !ok {
				p.out.Queries = append(p.out.Queries, positionQuery(m, cur.Epoch))
			}
		}
		p.requeueIn(min(electionResendInterval, cur.Deadline.Sub(p.in.Now)))
		p.masterReason, p.masterMsg = ReasonElecting, fmt.Sprintf("electing a master in epoch %d: %d of %d members answered%s", cur.Epoch, len(answered), len(cands), failedSuffix(failed))
		return false
	}
	p.ev("Warning", "ElectionTimeout", "%d of %d members gave a valid position in epoch %d within %s, %d needed%s; starting a new election",
		len(answered), len(cands), cur.Epoch, p.electionTimeout(), p.replicas()/2+1, failedSuffix(failed))
	return true
}

// validAnswers returns the positions of the epoch's candidates that answered
// with a valid position, and the errors of those whose positionCommand failed
// or printed no position: an error is not a position, and must never win.
func validAnswers(answers []election.Message, epoch int64, isCand map[string]bool) (valid, failed map[string]string) {
	valid, failed = map[string]string{}, map[string]string{}
	for _, a := range answers {
		if a.Type != election.TypePosition || a.Epoch != epoch || !isCand[a.TaskID] {
			continue
		}
		if _, err := election.ParsePosition(a.Position); a.Error != "" || err != nil {
			failed[a.TaskID] = a.Error
			if a.Error == "" {
				failed[a.TaskID] = err.Error()
			}
			continue
		}
		valid[a.TaskID] = a.Position
	}
	return valid, failed
}

// failedSuffix says which members' position queries failed, for messages.
func failedSuffix(failed map[string]string) string {
	if len(failed) == 0 {
		return ""
	}
	ids := make([]string, 0, len(failed))
	for id := range failed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return fmt.Sprintf(" (%d failed; %s: %s)", len(failed), ids[0], truncateMsg(failed[ids[0]], 200))
}

// promoteFailed fences a member whose promote command failed: it may be half
// promoted, so it is killed, and no other member is elected until the kill is
// confirmed (planElection). The election stays unpromoted and nothing is
// published.
func (p *planner) promoteFailed(m *member, cur store.ElectionRecord, why string) {
	p.ev("Warning", ReasonPromoteFailed, "promote command of task %s (ordinal %d) failed in epoch %d: %s; killing it before electing another",
		cur.MasterTaskID, cur.MasterOrdinal, cur.Epoch, truncateMsg(why, 300))
	p.kill(m, fmt.Sprintf("its promote command failed in epoch %d", cur.Epoch))
	p.masterReason, p.masterMsg = ReasonPromoteFailed, fmt.Sprintf("no master: the promotion of task %s (ordinal %d) failed in epoch %d", cur.MasterTaskID, cur.MasterOrdinal, cur.Epoch)
}

func truncateMsg(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // never cut a character in two: status and events are UTF-8
	}
	return s[:n] + "..."
}

// decide picks the winner among the eligible answers (highest position, ties
// to the lowest ordinal) and records it with every answer; the shell
// persists, then publishes and promotes.
func (p *planner) decide(cur store.ElectionRecord, answered, eligible map[string]string) {
	ordinals := make(map[string]int32, len(eligible))
	for id := range eligible {
		ordinals[id] = p.byID[id].rec.Ordinal
	}
	w := p.byID[p.preferred(cur, eligible, election.Winner(eligible, ordinals))].rec
	next := cur
	t := p.in.Now
	next.Phase = store.PhaseElected
	next.MasterTaskID, next.MasterOrdinal = w.ID, w.Ordinal
	next.Positions = answered
	next.ElectedAt = &t
	p.out.Election = &next
	p.ev("Normal", "Elected", "task %s (ordinal %d) elected master in epoch %d with position %q (%d members answered)", w.ID, w.Ordinal, cur.Epoch, answered[w.ID], len(answered))
	p.out.Promote = &Message{AgentID: w.AgentID, ExecutorID: executorID(w), Msg: election.Message{Type: election.TypePromote, Epoch: cur.Epoch, TaskID: w.ID}}
	p.requeueIn(electionResendInterval)
	p.masterReason, p.masterMsg = ReasonPromoting, fmt.Sprintf("waiting for task %s (ordinal %d) to confirm its promotion in epoch %d", w.ID, w.Ordinal, cur.Epoch)
}

func executorID(r *store.TaskRecord) string {
	if r.ExecutorID != "" {
		return r.ExecutorID
	}
	return r.ID
}
