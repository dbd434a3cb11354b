package mesosbridge

import (
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// IsTerminal reports whether a task state is terminal (Mesos's list: FINISHED,
// FAILED, KILLED, ERROR, LOST, DROPPED, GONE, GONE_BY_OPERATOR). UNREACHABLE and
// UNKNOWN are not terminal.
func IsTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// reconcileRound runs the explicit reconciliation algorithm of Mesos's
// docs/reconciliation.md: remember the start, ask for the remaining tasks, wait with
// truncated exponential backoff, drop the tasks that answered since the start, ask
// again, until none remain. It is owned by one goroutine (the session loop).
type reconcileRound struct {
	active    bool
	started   time.Time
	remaining map[string]string // task id -> agent id ("" if unknown)
	wait      time.Duration     // the wait before the next retry
	next      time.Time         // when to retry
	base, max time.Duration
}

func newReconcileRound(base, max time.Duration) *reconcileRound {
	return &reconcileRound{base: base, max: max}
}

// begin starts a round for tasks at now; it returns the tasks to ask for at once
// (nil when there is nothing to reconcile: the round is then already complete).
func (r *reconcileRound) begin(now time.Time, tasks []ReconcileTask) []ReconcileTask {
	r.remaining = make(map[string]string, len(tasks))
	for _, t := range tasks {
		if t.TaskID == "" {
			continue
		}
		if a, ok := r.remaining[t.TaskID]; !ok || a == "" {
			r.remaining[t.TaskID] = t.AgentID
		}
	}
	r.started = now
	if len(r.remaining) == 0 {
		r.active = false
		return nil
	}
	r.active = true
	r.wait = r.base
	r.next = now.Add(r.wait)
	return r.pending()
}

// observe notes an update for taskID; it reports whether that completed the round.
func (r *reconcileRound) observe(taskID string) bool {
	if !r.active {
		return false
	}
	if _, ok := r.remaining[taskID]; !ok {
		return false
	}
	delete(r.remaining, taskID)
	if len(r.remaining) == 0 {
		r.active = false
		return true
	}
	return false
}

// due returns the tasks to ask for again if the retry time has come (and moves the
// next retry out, doubling the wait up to max), else nil.
func (r *reconcileRound) due(now time.Time) []ReconcileTask {
	if !r.active || now.Before(r.next) {
		return nil
	}
	r.wait *= 2
	if r.wait > r.max {
		r.wait = r.max
	}
	r.next = now.Add(r.wait)
	return r.pending()
}

// until returns the time to the next retry (ok false when no round is active).
func (r *reconcileRound) until(now time.Time) (time.Duration, bool) {
	if !r.active {
		return 0, false
	}
	d := r.next.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

func (r *reconcileRound) pending() []ReconcileTask {
	out := make([]ReconcileTask, 0, len(r.remaining))
	for id, agent := range r.remaining {
		out = append(out, ReconcileTask{TaskID: id, AgentID: agent})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

// killTracker remembers tasks being killed; KILL is re-issued with backoff until
// the task reports a terminal state. Safe for concurrent use.
type killTracker struct {
	mu        sync.Mutex
	base, max time.Duration
	tasks     map[string]*pendingKill
}

type pendingKill struct {
	TaskID, AgentID string
	wait            time.Duration
	next            time.Time
}

func newKillTracker(base, max time.Duration) *killTracker {
	return &killTracker{base: base, max: max, tasks: map[string]*pendingKill{}}
}

// add tracks a kill issued at now; a repeated add keeps the backoff going.
func (k *killTracker) add(taskID, agentID string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p, ok := k.tasks[taskID]; ok {
		if agentID != "" {
			p.AgentID = agentID
		}
		return
	}
	k.tasks[taskID] = &pendingKill{TaskID: taskID, AgentID: agentID, wait: k.base, next: now.Add(k.base)}
}

// done forgets taskID (it reached a terminal state); it reports whether it was tracked.
func (k *killTracker) done(taskID string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.tasks[taskID]
	delete(k.tasks, taskID)
	return ok
}

// due returns the kills to re-issue at now and schedules their next retry.
func (k *killTracker) due(now time.Time) []pendingKill {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []pendingKill
	for _, p := range k.tasks {
		if now.Before(p.next) {
			continue
		}
		out = append(out, *p)
		p.wait *= 2
		if p.wait > k.max {
			p.wait = k.max
		}
		p.next = now.Add(p.wait)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

// restart returns every tracked kill and restarts their backoff: after a
// (re)subscribe they are all re-issued at once.
func (k *killTracker) restart(now time.Time) []pendingKill {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]pendingKill, 0, len(k.tasks))
	for _, p := range k.tasks {
		p.wait = k.base
		p.next = now.Add(k.base)
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

func (k *killTracker) tracked(taskID string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.tasks[taskID]
	return ok
}

func (k *killTracker) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.tasks)
}
