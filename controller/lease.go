package controller

import (
	"context"
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
	// GrantedAt is when the last granted request was taken (zero: none).
	GrantedAt time.Time
	// Position is the latest position the master of PositionEpoch reported
	// in a granted lease request ("" if none).
	Position      string
	PositionEpoch int64
	// Followed is the latest followed answer of each member, by task id.
	Followed map[string]election.Message
	// lapse enqueues the cluster when a granted lease would end unrenewed;
	// each grant pushes it back, so a healthy master costs no reconcile.
	lapse *time.Timer
}

// leaseEnd is when the lease of rec's master has surely ended, on the
// controller's clock: the duration and the margin after the latest of the
// last granted request, the election itself and the controller's
// subscription (floor).
func leaseEnd(rec store.ElectionRecord, l LeaseState, floor time.Time, d time.Duration) time.Time {
	start := floor
	if rec.ElectedAt != nil && rec.ElectedAt.After(start) {
		start = *rec.ElectedAt
	}
	if l.Epoch == rec.Epoch && l.TaskID == rec.MasterTaskID && l.GrantedAt.After(start) {
		start = l.GrantedAt
	}
	return start.Add(d + leaseDriftMargin)
}

// grantable reports whether a lease request of the master of rec, taken now,
// may be granted: only while the lease it holds has not run out, so a master
// that fenced itself is never revived, and a planner that saw the lease end
// never sees it renewed.
func grantable(req election.Message, rec *store.ElectionRecord, l LeaseState, floor time.Time, d time.Duration, now time.Time) bool {
	if rec == nil || req.Epoch != rec.Epoch || req.TaskID != rec.MasterTaskID ||
		(rec.Phase != store.PhaseElected && rec.Phase != store.PhasePromoted) {
		return false
	}
	return now.Before(leaseEnd(*rec, l, floor, d).Add(-leaseDriftMargin))
}

func leaseDurationOf(spec *v1alpha1.ClusterSpec) time.Duration {
	if d := spec.Election.LeaseDuration; d != nil {
		return d.Duration
	}
	return v1alpha1.DefaultLeaseDuration
}

func (p *planner) usesLease() bool { return p.strategy() == v1alpha1.ElectionPosition }

func (p *planner) leaseEnd(cur store.ElectionRecord) time.Time {
	return leaseEnd(cur, p.in.Lease, p.in.LeaseFloor, leaseDurationOf(&p.c.Spec))
}

// planLease reports whether the master's lease still holds; once it has run
// out, the master has fenced itself: it is killed and replaced.
func (p *planner) planLease(cur store.ElectionRecord, m *member) bool {
	end := p.leaseEnd(cur)
	if p.in.Now.Before(end) {
		if l := p.in.Lease; l.Epoch != cur.Epoch || l.TaskID != cur.MasterTaskID || l.GrantedAt.IsZero() {
			p.requeueIn(end.Sub(p.in.Now)) // no grant yet: its timer is not set
		}
		return true
	}
	p.ev("Warning", "MasterLeaseExpired", "master task %s (ordinal %d) of epoch %d has not renewed its lease for %s; it has stopped taking writes, and is replaced",
		cur.MasterTaskID, cur.MasterOrdinal, cur.Epoch, leaseDurationOf(&p.c.Spec))
	p.kill(m, fmt.Sprintf("its master lease of epoch %d expired", cur.Epoch))
	return false
}

// oldMasterFenced reports whether cur's master, no longer live, surely takes
// no writes: its process is gone, or (position) its lease has ended. Only
// then is another elected.
func (p *planner) oldMasterFenced(cur store.ElectionRecord) (bool, string) {
	old := p.byID[cur.MasterTaskID]
	// Demoting: planDemote saw it stop taking writes before this is asked.
	if old == nil || cur.Phase == store.PhaseElecting || cur.Phase == store.PhaseDemoting || processGone(old.rec.State) {
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

// leaseMessageLocked grants a lease request at once when grantable, or keeps
// a followed answer for the planner; it returns the grant to send, if any.
// Grants are decided here, under c.mu, at the time the request is taken: a
// planner snapshot either holds the grant or was taken before it, when the
// lease had not ended. c.mu is held.
func (c *Controller) leaseMessageLocked(key string, msg election.Message) *election.Message {
	rm := c.rooms[key]
	if rm == nil || rm.cluster == nil {
		return nil
	}
	l := LeaseState{}
	if old := rm.lease; old != nil {
		l = *old
	}
	switch msg.Type {
	case election.TypeLeaseRequest:
		d, now := leaseDurationOf(&rm.cluster.Spec), c.now()
		if !grantable(msg, rm.election, l, c.leaseFloor, d, now) {
			return nil
		}
		l.Epoch, l.TaskID, l.GrantedAt = msg.Epoch, msg.TaskID, now
		if _, err := election.ParsePosition(msg.Position); err == nil {
			l.Position, l.PositionEpoch = msg.Position, msg.Epoch
		}
		// Wake the planner just after the lease would end, unless renewed.
		if wait := leaseEnd(*rm.election, l, c.leaseFloor, d).Sub(now) + 10*time.Millisecond; l.lapse == nil {
			l.lapse = time.AfterFunc(wait, func() { c.queue.Add(key) })
		} else {
			l.lapse.Reset(wait)
		}
		rm.lease = &l
		return &election.Message{Type: election.TypeLeaseGrant, Epoch: msg.Epoch, TaskID: msg.TaskID, Seq: msg.Seq, LeaseMillis: d.Milliseconds()}
	case election.TypeFollowed:
		// A fresh map: planners may hold the old one.
		f := make(map[string]election.Message, len(l.Followed)+1)
		for id, a := range l.Followed {
			f[id] = a
		}
		f[msg.TaskID] = msg
		l.Followed = f
		rm.lease = &l
	}
	return nil
}

// positionDueLocked reports whether the master position held in memory for
// key should be persisted now (see lag.go): it differs from the persisted
// one, which is at least a lease duration old. c.mu is held.
func (c *Controller) positionDueLocked(key string) bool {
	rm := c.rooms[key]
	if rm == nil {
		return false
	}
	l, rec, cl := rm.lease, rm.election, rm.cluster
	if l == nil || rec == nil || cl == nil || cl.Spec.Election.MaximumLagOnFailover == nil || l.Position == "" || l.PositionEpoch != rec.Epoch ||
		(l.Position == rec.MasterPosition && l.PositionEpoch == rec.MasterPositionEpoch) {
		return false
	}
	return positionDue(*rec, c.now(), leaseDurationOf(&cl.Spec))
}

func (c *Controller) sendGrant(agentID, executorID string, grant election.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.bridge.SendMessage(ctx, agentID, executorID, grant.Encode()); err != nil {
		c.log.V(1).Info("lease grant not sent; the master asks again", "taskID", grant.TaskID, "epoch", grant.Epoch, "error", err.Error())
	}
}
