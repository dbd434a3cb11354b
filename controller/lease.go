package controller

import (
	"fmt"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// The master lease fences position elections: never two masters that take
// writes, without assuming synchronised clocks.
//
//   - The master's executor asks for the lease (lease-request, numbered) and
//     counts it from when it sent the request, on its own monotonic clock; the
//     controller grants a request (lease-grant, with the duration) only while
//     the lease it last granted has not run out on its own clock.
//   - A request reaches the controller after it was sent, so a lease granted
//     for a request received at R has surely ended on the member by R plus
//     the duration. The controller waits that, plus leaseDriftMargin for the
//     two clocks' rates, before it elects anyone else.
//   - The executor renews every fifth of the duration. When it cannot (the
//     controller is gone, or its agent is partitioned), it runs demoteCommand
//     well before its lease ends, and if that fails or there is none, kills
//     the task: the master stops taking writes before the controller may
//     promote another.
//   - promoteCommand runs only once the winner holds the lease.
//   - Leases live in memory: a controller that starts (or takes over) assumes
//     any master may hold one until its own subscription plus the duration
//     (Input.LeaseFloor).
//
// Other members follow each new master: the controller sends follow messages
// (master host, port, epoch) until each member's executor reports that its
// followCommand succeeded for that epoch.

// leaseDriftMargin covers the difference in rate between the member's clock
// and the controller's over one lease.
const leaseDriftMargin = time.Second

// LeaseState is what the controller knows of one cluster's master lease and
// of its members' follow answers.
type LeaseState struct {
	// Epoch and TaskID of the master the last grant went to.
	Epoch  int64
	TaskID string
	// GrantedAt is when the last granted request was received (zero: none).
	GrantedAt time.Time
	// Request is the latest request not yet answered, received at RequestAt.
	Request   *election.Message
	RequestAt time.Time
	// Followed is the latest followed answer of each member, by task id.
	Followed map[string]election.Message
}

// LeaseGrant is a grant to send, and when the request it answers arrived.
type LeaseGrant struct {
	Message
	RequestAt time.Time
}

func (p *planner) leaseDuration() time.Duration {
	if d := p.c.Spec.Election.LeaseDuration; d != nil {
		return d.Duration
	}
	return v1alpha1.DefaultLeaseDuration
}

func (p *planner) usesLease() bool { return p.strategy() == v1alpha1.ElectionPosition }

// leaseEnd is when the lease of cur's master has surely ended, on the
// controller's clock: the duration and the margin after the latest of the
// last granted request, the election itself and the controller's
// subscription.
func (p *planner) leaseEnd(cur store.ElectionRecord) time.Time {
	start := p.in.LeaseFloor
	if cur.ElectedAt != nil && cur.ElectedAt.After(start) {
		start = *cur.ElectedAt
	}
	l := p.in.Lease
	if l.Epoch == cur.Epoch && l.TaskID == cur.MasterTaskID && l.GrantedAt.After(start) {
		start = l.GrantedAt
	}
	if g := p.out.LeaseGrant; g != nil && g.RequestAt.After(start) {
		start = g.RequestAt
	}
	return start.Add(p.leaseDuration() + leaseDriftMargin)
}

// planLease grants the master's pending lease request while its lease has
// not run out (once it has, the master has fenced itself and is replaced),
// and reports whether the lease still holds.
func (p *planner) planLease(cur store.ElectionRecord, m *member) bool {
	l := p.in.Lease
	if req := l.Request; req != nil && req.Epoch == cur.Epoch && req.TaskID == cur.MasterTaskID &&
		l.RequestAt.Before(p.leaseEnd(cur).Add(-leaseDriftMargin)) {
		p.out.LeaseGrant = &LeaseGrant{RequestAt: l.RequestAt, Message: Message{AgentID: m.rec.AgentID, ExecutorID: executorID(m.rec),
			Msg: election.Message{Type: election.TypeLeaseGrant, Epoch: cur.Epoch, TaskID: cur.MasterTaskID, Seq: req.Seq, LeaseMillis: p.leaseDuration().Milliseconds()}}}
	}
	end := p.leaseEnd(cur)
	if p.in.Now.Before(end) {
		p.requeueIn(end.Sub(p.in.Now))
		return true
	}
	p.ev("Warning", "MasterLeaseExpired", "master task %s (ordinal %d) of epoch %d has not renewed its lease for %s; it has stopped taking writes, and is replaced",
		cur.MasterTaskID, cur.MasterOrdinal, cur.Epoch, p.leaseDuration())
	p.kill(m, fmt.Sprintf("its master lease of epoch %d expired", cur.Epoch))
	return false
}

// oldMasterFenced reports whether cur's master, no longer live, surely takes
// no writes: its process is gone, or (position) its lease has ended. Only
// then is another elected.
func (p *planner) oldMasterFenced(cur store.ElectionRecord) (bool, string) {
	old := p.byID[cur.MasterTaskID]
	if old == nil || cur.Phase == store.PhaseElecting || processGone(old.rec.State) {
		return true, ""
	}
	if p.usesLease() {
		if end := p.leaseEnd(cur); p.in.Now.Before(end) {
			p.requeueIn(end.Sub(p.in.Now))
			return false, fmt.Sprintf("no master: waiting until %s, when the lease of the old master, task %s (ordinal %d), has surely ended",
				end.UTC().Format(time.RFC3339), old.rec.ID, old.rec.Ordinal)
		}
		return true, ""
	}
	if old.rec.KillRequested && old.occupying && !old.expired {
		return false, fmt.Sprintf("no master: waiting for the kill of the old master, task %s (ordinal %d), to be confirmed before electing", old.rec.ID, old.rec.Ordinal)
	}
	return true, ""
}

// processGone: states in which the task's executor saw its process end.
// (LOST, UNREACHABLE, UNKNOWN and GONE say nothing of the process.)
func processGone(state string) bool {
	switch state {
	case "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_DROPPED":
		return true
	}
	return false
}

// planFollow tells every other running member, until it confirms, to follow
// the promoted master of cur.
func (p *planner) planFollow(cur store.ElectionRecord, master *member) {
	if !p.usesLease() || cur.Phase != store.PhasePromoted || master == nil {
		return
	}
	for _, m := range p.live {
		if m == master || !m.live || !isRunning(m.rec) || m.rec.ExecutorID == "" {
			continue
		}
		if a, ok := p.in.Lease.Followed[m.rec.ID]; ok && a.Epoch == cur.Epoch && a.Error == "" {
			continue
		}
		p.out.Follows = append(p.out.Follows, Message{AgentID: m.rec.AgentID, ExecutorID: executorID(m.rec),
			Msg: election.Message{Type: election.TypeFollow, Epoch: cur.Epoch, TaskID: m.rec.ID,
				MasterHost: master.rec.Hostname, MasterPort: firstPort(master.rec)}})
	}
	if len(p.out.Follows) > 0 {
		p.requeueIn(electionResendInterval)
	}
}

// leaseMessageLocked keeps a lease request (the latest, with when it arrived)
// or a followed answer for the planner. c.mu is held.
func (c *Controller) leaseMessageLocked(key string, msg election.Message) {
	old := c.leases[key]
	l := LeaseState{}
	if old != nil {
		l = *old
	}
	switch msg.Type {
	case election.TypeLeaseRequest:
		m := msg
		l.Request, l.RequestAt = &m, c.now()
	case election.TypeFollowed:
		// A fresh map: planners may hold the old one.
		f := make(map[string]election.Message, len(l.Followed)+1)
		for id, a := range l.Followed {
			f[id] = a
		}
		f[msg.TaskID] = msg
		l.Followed = f
	}
	c.leases[key] = &l
}

// recordGrant notes a grant before it is sent: from now on the master may
// hold the lease, whether or not the message arrives.
func (c *Controller) recordGrant(key string, g *LeaseGrant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := LeaseState{}
	if old := c.leases[key]; old != nil {
		l = *old
	}
	l.Epoch, l.TaskID = g.Msg.Epoch, g.Msg.TaskID
	if g.RequestAt.After(l.GrantedAt) {
		l.GrantedAt = g.RequestAt
	}
	if l.Request != nil && l.Request.Seq <= g.Msg.Seq && l.Request.Epoch == g.Msg.Epoch {
		l.Request = nil
	}
	c.leases[key] = &l
}
