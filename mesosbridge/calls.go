package mesosbridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// send issues call to the leading master over the current subscription. On a 307
// it moves to the master named by Location, waits (up to CallTimeout) for the
// subscription there, and retries the call once.
func (c *Client) send(ctx context.Context, call *scheduler.Call) error {
	typ := call.GetType().String()
	c.mu.Lock()
	sess := c.sess
	fid := c.frameworkID
	c.mu.Unlock()
	if sess == nil {
		c.m.calls.WithLabelValues(typ, "not_subscribed").Inc()
		return fmt.Errorf("%s: %w", typ, ErrNotSubscribed)
	}
	err := c.sendOn(ctx, sess, fid, call)
	var redir *redirectError
	if !errors.As(err, &redir) {
		return err
	}
	c.log.Info("call redirected: the master lost leadership; moving to the new leader", "call", typ, "from", sess.endpoint, "to", redir.leader)
	c.moveLeader(sess, redir.leader)
	next, werr := c.waitNewSession(ctx, sess)
	if werr != nil {
		return fmt.Errorf("%s: redirected to %s, no subscription there within %s: %w", typ, redir.leader, c.cfg.CallTimeout, werr)
	}
	c.mu.Lock()
	fid = c.frameworkID
	c.mu.Unlock()
	if err := c.sendOn(ctx, next, fid, call); err != nil {
		if errors.As(err, &redir) {
			return fmt.Errorf("%s: redirected twice (last to %s)", typ, redir.leader)
		}
		return err
	}
	return nil
}

func (c *Client) sendOn(ctx context.Context, sess *session, fid string, call *scheduler.Call) error {
	typ := call.GetType().String()
	call.FrameworkID = &mesos.FrameworkID{Value: fid}
	note := &callNote{}
	cctx, cancel := context.WithTimeout(withNote(ctx, note), c.cfg.CallTimeout)
	defer cancel()
	resp, err := sess.caller.Call(cctx, call)
	if resp != nil {
		resp.Close()
	}
	if loc := note.get(); loc != "" {
		c.m.calls.WithLabelValues(typ, "redirect").Inc()
		leader, lerr := leaderFromLocation(loc, sess.endpoint)
		if lerr != nil {
			return fmt.Errorf("%s to %s: bad redirect: %w", typ, sess.endpoint, lerr)
		}
		return &redirectError{leader: leader}
	}
	if err != nil {
		c.m.calls.WithLabelValues(typ, "error").Inc()
		return fmt.Errorf("%s to %s: %w", typ, sess.endpoint, err)
	}
	c.m.calls.WithLabelValues(typ, "ok").Inc()
	return nil
}

// moveLeader records leader as the leading master and drops sess's stream, so Run
// subscribes there next.
func (c *Client) moveLeader(sess *session, leader string) {
	c.mu.Lock()
	if c.leader != leader {
		c.leader = leader
		c.m.leaderChanges.Inc()
	}
	c.mu.Unlock()
	sess.abort()
}

// waitNewSession waits for a subscription other than old.
func (c *Client) waitNewSession(ctx context.Context, old *session) (*session, error) {
	t := time.NewTimer(c.cfg.CallTimeout)
	defer t.Stop()
	for {
		c.mu.Lock()
		s, ch := c.sess, c.sessChanged
		c.mu.Unlock()
		if s != nil && s != old {
			return s, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil, ErrNotSubscribed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func refuseFilter(refuseSeconds float64) scheduler.CallOpt {
	if refuseSeconds < 0 {
		return nil // the master's default (5 s)
	}
	return calls.Filters(func(f *mesos.Filters) {
		s := refuseSeconds
		f.RefuseSeconds = &s
	})
}

// Launch accepts offers (all on one agent) with one LAUNCH of tasks; unused
// resources are declined for refuseSeconds (negative: the master's default).
func (c *Client) Launch(ctx context.Context, offerIDs []mesos.OfferID, tasks []mesos.TaskInfo, refuseSeconds float64) error {
	if len(offerIDs) == 0 {
		return errors.New("launch: no offer")
	}
	if len(tasks) == 0 {
		return c.Decline(ctx, offerIDs, refuseSeconds)
	}
	call := calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(offerIDs...)).With(refuseFilter(refuseSeconds))
	if err := c.send(ctx, call); err != nil {
		return fmt.Errorf("launch %d task(s) (first %s): %w", len(tasks), tasks[0].TaskID.Value, err)
	}
	c.m.offersAccepted.Add(float64(len(offerIDs)))
	return nil
}

// Accept accepts offers (all on one agent) with ops, applied in order by the
// master: a RESERVE and a CREATE make resources that a LAUNCH after them in
// the same ACCEPT uses. An operation the master finds invalid is dropped
// (tasks of a dropped LAUNCH get TASK_ERROR or TASK_DROPPED updates).
func (c *Client) Accept(ctx context.Context, offerIDs []mesos.OfferID, ops []mesos.Offer_Operation, refuseSeconds float64) error {
	if len(offerIDs) == 0 {
		return errors.New("accept: no offer")
	}
	if len(ops) == 0 {
		return c.Decline(ctx, offerIDs, refuseSeconds)
	}
	call := calls.Accept(calls.OfferOperations(ops).WithOffers(offerIDs...)).With(refuseFilter(refuseSeconds))
	if err := c.send(ctx, call); err != nil {
		kinds := make([]string, len(ops))
		for i, op := range ops {
			kinds[i] = op.Type.String()
		}
		return fmt.Errorf("accept with %s: %w", strings.Join(kinds, ", "), err)
	}
	c.m.offersAccepted.Add(float64(len(offerIDs)))
	return nil
}

// LaunchGroup accepts offers (all on one agent) with one LAUNCH_GROUP: the tasks
// start together under executor, or none does. The executor's framework id is
// filled in when unset. Mesos requires the executor to have at least 0.01 cpus,
// 32 MB of mem and some disk.
func (c *Client) LaunchGroup(ctx context.Context, offerIDs []mesos.OfferID, executor mesos.ExecutorInfo, tasks []mesos.TaskInfo, refuseSeconds float64) error {
	if len(offerIDs) == 0 {
		return errors.New("launch group: no offer")
	}
	if len(tasks) == 0 {
		return errors.New("launch group: no task")
	}
	if executor.FrameworkID == nil {
		// A master requires it for LAUNCH_GROUP ("'ExecutorInfo.framework_id'
		// must be set"); it fills it in only for LAUNCH.
		if id := c.FrameworkID(); id != "" {
			executor.FrameworkID = &mesos.FrameworkID{Value: id}
		}
	}
	call := calls.Accept(calls.OfferOperations{calls.OpLaunchGroup(executor, tasks...)}.WithOffers(offerIDs...)).With(refuseFilter(refuseSeconds))
	if err := c.send(ctx, call); err != nil {
		return fmt.Errorf("launch group of %d task(s) (first %s): %w", len(tasks), tasks[0].TaskID.Value, err)
	}
	c.m.offersAccepted.Add(float64(len(offerIDs)))
	return nil
}

// Decline declines offers for refuseSeconds (negative: the master's default).
func (c *Client) Decline(ctx context.Context, offerIDs []mesos.OfferID, refuseSeconds float64) error {
	if len(offerIDs) == 0 {
		return nil
	}
	if err := c.send(ctx, calls.Decline(offerIDs...).With(refuseFilter(refuseSeconds))); err != nil {
		return fmt.Errorf("decline %d offer(s): %w", len(offerIDs), err)
	}
	c.m.offersDeclined.Add(float64(len(offerIDs)))
	return nil
}

// Kill kills a task and keeps re-issuing KILL (KillRetry doubling to KillMaxRetry,
// and at once after every resubscribe) until an update with a terminal state for
// it, or TASK_UNKNOWN (the master knows neither it nor its agent), passes
// through Events. While no subscription is up the kill is only queued
// (nil error); an error means the first KILL failed, and it will be retried.
func (c *Client) Kill(ctx context.Context, taskID, agentID string) error {
	if taskID == "" {
		return errors.New("kill: empty task id")
	}
	c.kills.add(taskID, agentID, time.Now())
	c.m.killsOutstanding.Set(float64(c.kills.len()))
	err := c.send(ctx, calls.Kill(taskID, agentID))
	if errors.Is(err, ErrNotSubscribed) {
		c.log.V(1).Info("kill queued until subscribed", "taskID", taskID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("kill %s (will be retried): %w", taskID, err)
	}
	return nil
}

// Acknowledge acknowledges an update. Updates without a uuid (the master's own,
// e.g. reconciliation answers) are never acknowledged: a no-op.
func (c *Client) Acknowledge(ctx context.Context, status mesos.TaskStatus) error {
	if len(status.UUID) == 0 {
		return nil
	}
	agent := status.GetAgentID().GetValue()
	if agent == "" {
		return fmt.Errorf("acknowledge %s: the update names no agent", status.TaskID.Value)
	}
	if err := c.send(inLane(ctx, laneAcks), calls.Acknowledge(agent, status.TaskID.Value, status.UUID)); err != nil {
		return fmt.Errorf("acknowledge %s (%s): %w", status.TaskID.Value, status.GetState(), err)
	}
	return nil
}

// Reconcile asks the master for the state of tasks; none means implicit
// reconciliation (every task the master knows for the framework). Answers arrive
// as EventUpdate without a uuid.
func (c *Client) Reconcile(ctx context.Context, tasks []ReconcileTask) error {
	rec := &scheduler.Call_Reconcile{}
	for _, t := range tasks {
		rt := scheduler.Call_Reconcile_Task{TaskID: mesos.TaskID{Value: t.TaskID}}
		if t.AgentID != "" {
			rt.AgentID = &mesos.AgentID{Value: t.AgentID}
		}
		rec.Tasks = append(rec.Tasks, rt)
	}
	if err := c.send(ctx, &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: rec}); err != nil {
		if len(tasks) == 0 {
			return fmt.Errorf("implicit reconciliation: %w", err)
		}
		return fmt.Errorf("reconcile %d task(s): %w", len(tasks), err)
	}
	return nil
}

// SendMessage sends a framework message to an executor (best effort).
func (c *Client) SendMessage(ctx context.Context, agentID, executorID string, data []byte) error {
	if err := c.send(ctx, calls.Message(agentID, executorID, data)); err != nil {
		return fmt.Errorf("message to executor %s on %s: %w", executorID, agentID, err)
	}
	return nil
}

// Suppress stops offers for the framework's role; a REVIVE still waiting for the
// rate limit is dropped (the later wish wins). Resubscriptions keep the role suppressed.
func (c *Client) Suppress(ctx context.Context) error {
	c.mu.Lock()
	c.suppressed = true
	if c.reviveTimer != nil {
		c.reviveTimer.Stop()
		c.reviveTimer = nil
	}
	c.mu.Unlock()
	if err := c.send(ctx, calls.Suppress()); err != nil {
		return fmt.Errorf("suppress offers: %w", err)
	}
	return nil
}

// Revive asks for offers again and clears filters. At most one REVIVE is sent
// per ReviveInterval: a request inside the interval is coalesced into one REVIVE
// sent when the interval ends (and returns nil at once).
func (c *Client) Revive(ctx context.Context) error {
	now := time.Now()
	c.mu.Lock()
	c.suppressed = false
	if c.reviveTimer != nil { // one is already scheduled
		c.mu.Unlock()
		c.m.revivesCoalesced.Inc()
		return nil
	}
	if wait := c.lastRevive.Add(c.cfg.ReviveInterval).Sub(now); !c.lastRevive.IsZero() && wait > 0 {
		c.m.revivesCoalesced.Inc()
		var t *time.Timer
		t = time.AfterFunc(wait, func() {
			c.mu.Lock()
			if c.reviveTimer != t { // cancelled by Suppress or Run's end
				c.mu.Unlock()
				return
			}
			c.reviveTimer = nil
			c.lastRevive = time.Now()
			rctx := c.runCtx
			c.mu.Unlock()
			if rctx.Err() != nil {
				return
			}
			if err := c.send(rctx, calls.Revive()); err != nil && rctx.Err() == nil {
				c.log.Info("coalesced revive failed", "error", err.Error())
			}
		})
		c.reviveTimer = t
		c.mu.Unlock()
		return nil
	}
	c.lastRevive = now
	c.mu.Unlock()
	if err := c.send(ctx, calls.Revive()); err != nil {
		return fmt.Errorf("revive offers: %w", err)
	}
	return nil
}
