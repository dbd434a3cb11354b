package controller

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/internal/checks"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/store"
)

const (
	maxStatusMessage = 512
	// updateCoalesce delays the reconcile a status update triggers, so the
	// updates of a cluster's members arriving together are planned (and their
	// status written) once.
	updateCoalesce = 20 * time.Millisecond
)

// handleUpdate writes a status update to the ledger, then acknowledges it. An
// update for a task the ledger does not know, whose id is converge's, is an
// orphan: it is killed (unless already finished) and acknowledged. A task the
// ledger knows but must not run (finished, or written off while unreachable)
// is killed at once when Mesos reports it alive again.
func (c *Controller) handleUpdate(ctx context.Context, st mesos.TaskStatus) {
	received := time.Now()
	id := st.TaskID.Value
	ns, name, _, ours := ParseTaskID(id)
	key := ns + "/" + name
	c.mu.Lock()
	var rec *store.TaskRecord
	if ours {
		rec = c.taskLocked(key, id)
	}
	why := ""
	if rec != nil {
		why = mustNotRun(rec, st)
	}
	c.mu.Unlock()
	if rec == nil {
		if ours && !finished(st.GetState().String()) {
			c.log.Info("killing a task the ledger does not know", "taskID", id, "state", st.GetState().String())
			c.killTask(ctx, id, st.GetAgentID().GetValue())
		}
		c.terminalSeen(st)
		c.ack(ctx, st, received)
		return
	}
	if why != "" {
		c.killNow(ctx, id, st.GetAgentID().GetValue(), why)
	}
	now := c.now()
	// What the ledger already holds (durably: the cache holds only committed
	// records) needs no write: acknowledge at once, without a trip through the
	// writer. (Duplicates, and STARTING, which is not written.)
	c.mu.Lock()
	noop := false
	if r := c.taskLocked(key, id); r != nil {
		cp := *r
		changed, _ := applyStatus(&cp, st, now)
		noop = !changed
	}
	c.mu.Unlock()
	if noop {
		c.terminalSeen(st)
		c.ack(ctx, st, received)
		return
	}
	op := &writeOp{tasks: []taskWrite{{key: key, id: id, mut: func(r *store.TaskRecord) (bool, []store.Event) {
		return applyStatus(r, st, now)
	}}}}
	op.after = func(err error) {
		if err != nil {
			// Not durable: not acknowledged, so the agent resends it.
			c.log.Error(err, "status update not written; not acknowledged", "taskID", id)
			return
		}
		c.terminalSeen(st)
		c.ack(ctx, st, received)
		c.queue.AddAfter(key, updateCoalesce) // a burst of updates becomes one reconcile
	}
	c.submitUpdate(ctx, op)
}

// mustNotRun says why a task the ledger holds must be killed at once now that
// Mesos reports it alive ("" when it need not): its record is finished (a
// ghost whose agent re-registered after Mesos answered TASK_UNKNOWN), or it
// was written off while unreachable and is back. A KILL could not reach it
// before, and the bridge's next retry may be up to KillMaxRetry away; until
// it is dead its ordinal stays taken, so nothing runs beside it for long.
func mustNotRun(r *store.TaskRecord, st mesos.TaskStatus) string {
	state := st.GetState().String()
	if finished(state) || state == stateUnreachable {
		return ""
	}
	switch {
	case finished(r.State):
		return fmt.Sprintf("reported %s after the ledger finished it as %s", state, r.State)
	case r.KillRequested && r.State == stateUnreachable:
		return fmt.Sprintf("reported %s back from a partition; killed because: %s", state, r.KillReason)
	}
	return ""
}

// killNow sends KILL at once, even if one was sent before (the bridge then
// keeps retrying it until the task is finished).
func (c *Controller) killNow(ctx context.Context, id, agentID, why string) {
	c.log.Info("killing a task at once", "taskID", id, "agentID", agentID, "why", why)
	c.mu.Lock()
	c.killSent[id] = true
	c.mu.Unlock()
	if c.bridge == nil {
		return
	}
	c.m.kills.Inc()
	if err := c.bridge.Kill(ctx, id, agentID); err != nil {
		c.log.Error(err, "kill", "taskID", id)
	}
}

// terminalSeen forgets a finished task's kill: the bridge stops retrying it.
func (c *Controller) terminalSeen(st mesos.TaskStatus) {
	if finished(st.GetState().String()) {
		c.mu.Lock()
		delete(c.killSent, st.TaskID.Value)
		c.mu.Unlock()
	}
}

// pendingAck is an update whose acknowledgement is due, with the time it
// reached the controller (for the ack latency).
type pendingAck struct {
	st       mesos.TaskStatus
	received time.Time
	queued   time.Time // when the update was durable and its ack queued
}

func (c *Controller) ack(ctx context.Context, st mesos.TaskStatus, received time.Time) {
	if len(st.UUID) == 0 {
		return
	}
	c.acks.push(pendingAck{st: st, received: received, queued: time.Now()})
}

func (c *Controller) runAcks(ctx context.Context) {
	for {
		p, ok := c.acks.pop(ctx)
		if !ok || c.failpoint(FailpointAckBefore) {
			return
		}
		if err := c.bridge.Acknowledge(ctx, p.st); err != nil && ctx.Err() == nil {
			// The agent resends it; the duplicate is recognised and acknowledged.
			c.log.V(1).Info("acknowledge failed", "taskID", p.st.TaskID.Value, "error", err.Error())
			continue
		}
		if c.failpoint(FailpointAckAfter) {
			return
		}
		d := time.Since(p.received)
		c.m.acks.Inc()
		c.m.ackSeconds.Observe(d.Seconds())
		if c.cfg.AckObserver != nil {
			c.cfg.AckObserver(d, p.queued.Sub(p.received))
		}
	}
}

// applyStatus folds a status update into a ledger record. Duplicates (same
// uuid), out-of-order updates (older timestamp) and updates after a finished
// state change nothing.
func applyStatus(r *store.TaskRecord, st mesos.TaskStatus, now time.Time) (bool, []store.Event) {
	uuid := ""
	if len(st.UUID) > 0 {
		uuid = base64.StdEncoding.EncodeToString(st.UUID)
		if uuid == r.StatusUUID {
			return false, nil
		}
	}
	if finished(r.State) {
		return false, nil
	}
	state := st.GetState().String()
	// A reconciliation answer is stamped with the master's clock when it
	// answers (Master::_reconcileTasks leaves the timestamp to
	// createStatusUpdate, which takes Clock::now()), not when the state began:
	// it orders nothing, so it is not kept as the status time. Without this, a
	// RUNNING answer to a new leader's reconciliation outdated the agent's
	// TASK_FAILED still queued behind the unacknowledged RUNNING, and the
	// failure was acknowledged unwritten (chaos, seed 1796249069817271424).
	reconciled := st.Reason != nil && *st.Reason == mesos.REASON_RECONCILIATION
	ts := st.GetTimestamp()
	if reconciled {
		ts = 0
	}
	// A terminal state is final in Mesos, so it is never out of date.
	if ts != 0 && ts < r.StatusTime && !finished(state) {
		return false, nil
	}
	reason := ""
	if st.Reason != nil {
		reason = st.Reason.String()
	}
	msg := st.GetMessage()
	if len(msg) > maxStatusMessage {
		msg = msg[:maxStatusMessage]
	}
	healthChanged := st.Healthy != nil && (r.Healthy == nil || *r.Healthy != *st.Healthy)
	var passing *bool
	if st.CheckStatus != nil {
		v := checks.Passed(st.CheckStatus)
		passing = &v
	}
	checkChanged := passing != nil && (r.CheckPassing == nil || *r.CheckPassing != *passing)
	if state == r.State && reason == r.Reason && msg == r.Message && !healthChanged && !checkChanged {
		return false, nil // nothing new; the information is already durable
	}
	if state == stateStarting && r.State == stateStaging {
		// STARTING is acknowledged without a write: the planner treats STAGING
		// and STARTING alike (the member holds its ordinal and is not ready), and
		// after a restart reconciliation reports the current state anyway. This
		// saves one etcd write per launch.
		return false, nil
	}
	prev := r.State
	r.State, r.Reason, r.Message = state, reason, msg
	if uuid != "" {
		r.StatusUUID = uuid
	}
	if ts != 0 {
		r.StatusTime = ts
	}
	if a := st.GetAgentID().GetValue(); a != "" && r.AgentID == "" {
		r.AgentID = a
	}
	r.UpdatedAt = now
	if state == stateRunning && r.RunningAt == nil {
		r.RunningAt = &now // minReadySeconds and the restart back-off count from here
	}
	wasHealthy := r.Healthy == nil || *r.Healthy
	applyChecks(r, st.Healthy, passing, now)
	switch state {
	case stateUnreachable:
		if r.UnreachableAt == nil {
			t := now
			if ut := st.GetUnreachableTime(); ut != nil && ut.GetNanoseconds() > 0 {
				t = time.Unix(0, ut.GetNanoseconds())
			}
			r.UnreachableAt = &t
		}
	default:
		r.UnreachableAt = nil
	}
	var evs []store.Event
	if healthChanged && !*st.Healthy && wasHealthy {
		evs = append(evs, store.Event{Time: now, Type: "Warning", Reason: "Unhealthy",
			Message: fmt.Sprintf("task %s (ordinal %d) failed its health check", r.ID, r.Ordinal)})
	}
	if finished(state) && !r.KillRequested && state != "TASK_FINISHED" {
		detail := reason
		if msg != "" {
			detail += ": " + msg
		}
		if st.Healthy != nil && !*st.Healthy {
			detail += " (killed by its executor for failing its health check)"
		}
		evs = append(evs, store.Event{Time: now, Type: "Warning", Reason: "TaskFailed",
			Message: fmt.Sprintf("task %s (ordinal %d) %s after %s (%s)", r.ID, r.Ordinal, state, prev, detail)})
	}
	if state == stateUnreachable && prev != stateUnreachable {
		evs = append(evs, store.Event{Time: now, Type: "Warning", Reason: "TaskUnreachable",
			Message: fmt.Sprintf("task %s (ordinal %d) is unreachable", r.ID, r.Ordinal)})
	}
	return true, evs
}

// applyChecks records a status update's health and readiness check results:
// updates carry the latest of both (Mesos's executors build each from the
// previous status), so an absent one leaves the record as it is.
func applyChecks(r *store.TaskRecord, healthy, passing *bool, now time.Time) {
	if healthy != nil {
		v := *healthy
		r.Healthy = &v
	}
	if passing == nil {
		return
	}
	if *passing && (r.CheckPassing == nil || !*r.CheckPassing) {
		r.CheckPassingSince = &now // minReadySeconds counts from here
	}
	if !*passing {
		r.CheckPassingSince = nil
	}
	v := *passing
	r.CheckPassing = &v
}

// handleMessage records an executor's election answer and looks at its cluster.
func (c *Controller) handleMessage(m *mesosbridge.Message) {
	msg, err := election.Decode(m.Data)
	if err != nil {
		c.log.V(1).Info("undecodable framework message", "agentID", m.AgentID, "executorID", m.ExecutorID)
		return
	}
	ns, name, _, ok := ParseTaskID(msg.TaskID)
	if !ok {
		return
	}
	key := ns + "/" + name
	c.mu.Lock()
	rm := c.rooms[key]
	if rm == nil {
		c.mu.Unlock()
		return // not a cluster of ours (deleted, or another shard's)
	}
	e := rm.election
	switch msg.Type {
	case election.TypePosition:
		// Only answers for the current epoch count; keep them until it changes.
		if e == nil || msg.Epoch != e.Epoch {
			c.mu.Unlock()
			return
		}
		kept := make([]election.Message, 0, len(rm.answers)+1) // a fresh slice: planners hold the old one
		for _, a := range rm.answers {
			if a.Epoch == e.Epoch && a.TaskID != msg.TaskID {
				kept = append(kept, a)
			}
		}
		rm.answers = append(kept, msg)
	case election.TypePromoted:
		mm := msg
		rm.promoted = &mm
	case election.TypeDemoted:
		mm := msg
		rm.demoted = &mm
	case election.TypeLeaseRequest:
		grant := c.leaseMessageLocked(key, msg)
		persist := grant != nil && c.positionDueLocked(key)
		c.mu.Unlock()
		if grant != nil {
			// Off the event loop: a send is an HTTP round trip. A lost grant is
			// harmless: the member asks again.
			go c.sendGrant(m.AgentID, m.ExecutorID, *grant)
		}
		if persist {
			c.queue.Add(key) // the master's position is due to be recorded (lag.go)
		}
		return // otherwise a renewal changes nothing the planner needs: no reconcile
	case election.TypeFollowed:
		c.leaseMessageLocked(key, msg)
		c.mu.Unlock()
		// No reconcile: only planFollow reads the answer, and while a member
		// has not confirmed, the planner is requeued each resend interval and
		// sees it then. (A reconcile per answer was one per follower after
		// Ready: 9,000 at 1,000 x 10, most of a "one failure" window's.)
		return
	default:
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.queue.Add(key)
}
