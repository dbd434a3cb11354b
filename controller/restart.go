package controller

import (
	"fmt"
	"math"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// Reasons of a member that keeps failing and of a cluster without progress.
const (
	ReasonCrashLoopBackOff         = "CrashLoopBackOff"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
)

// crashLoop is a member (ordinal) whose tasks keep failing: it waits out its
// restart back-off, or its relaunch is not ready yet.
type crashLoop struct {
	ord int32
	// failures: consecutive failures of the ordinal, the last one included.
	failures int32
	// last is the newest failed task (nil when its record is forgotten).
	last *store.TaskRecord
	// until is when the back-off ends; zero once the member is relaunched.
	until time.Time
}

// crashed reports whether a task that ended in state s failed by itself
// (exited, was refused, or killed by someone other than converge). LOST,
// DROPPED, GONE and UNKNOWN say its agent or Mesos lost it: not its fault.
func crashed(r *store.TaskRecord) bool {
	if r.KillRequested {
		return false
	}
	switch r.State {
	case "TASK_FAILED", "TASK_FINISHED", "TASK_ERROR", "TASK_KILLED":
		return true
	}
	return false
}

// runningSince is when r was first seen RUNNING (records written before
// RunningAt existed: their last update).
func runningSince(r *store.TaskRecord) (time.Time, bool) {
	if r.RunningAt != nil {
		return *r.RunningAt, true
	}
	if r.State == stateRunning {
		return r.UpdatedAt, true
	}
	return time.Time{}, false
}

func isRunning(r *store.TaskRecord) bool { return r.State == stateRunning }

// isReady reports whether a member counts as ready: running, healthy if it
// has a health check, its readiness check passing if it has one, and all
// that for minReadySeconds (from when it ran, or from when its readiness
// check started passing if later). A member that will be ready later asks
// for a requeue then.
func (p *planner) isReady(r *store.TaskRecord) bool {
	if notReadyWhy(r) != "" {
		return false
	}
	since, _ := runningSince(r)
	if s := r.CheckPassingSince; r.ReadinessChecked && s != nil && s.After(since) {
		since = *s
	}
	if left := since.Add(p.minReady()).Sub(p.in.Now); left > 0 {
		p.requeueIn(left)
		return false
	}
	return true
}

// notReadyWhy says why a member cannot count as ready whatever the time:
// "" when only minReadySeconds may still stand in the way.
func notReadyWhy(r *store.TaskRecord) string {
	switch {
	case !isRunning(r):
		return "not running"
	case r.HealthChecked && r.Healthy == nil:
		return "no health check result yet"
	case r.HealthChecked && !*r.Healthy:
		return "failing its health check"
	case r.ReadinessChecked && r.CheckPassing == nil:
		return "no readiness check result yet"
	case r.ReadinessChecked && (!*r.CheckPassing || r.CheckPassingSince == nil):
		return "readiness check failing"
	}
	return ""
}

func (p *planner) minReady() time.Duration {
	if m := p.c.Spec.Update.MinReadySeconds; m != nil {
		return time.Duration(*m) * time.Second
	}
	return time.Duration(v1alpha1.DefaultMinReadySeconds) * time.Second
}

func (p *planner) progressDeadline() time.Duration {
	if d := p.c.Spec.Update.ProgressDeadline; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return v1alpha1.DefaultProgressDeadline
}

// restartSpec is spec.restart with defaults for what is unset.
func (p *planner) restartSpec() (backoff time.Duration, factor float64, maxBackoff, resetAfter time.Duration) {
	r := p.c.Spec.Restart
	backoff, factor = v1alpha1.DefaultRestartBackoff, v1alpha1.DefaultRestartFactor
	maxBackoff, resetAfter = v1alpha1.DefaultRestartMaxBackoff, v1alpha1.DefaultRestartResetAfter
	if r.Backoff != nil {
		backoff = r.Backoff.Duration
	}
	if r.BackoffFactor != nil {
		factor = *r.BackoffFactor
	}
	if r.MaxBackoff != nil {
		maxBackoff = r.MaxBackoff.Duration
	}
	if r.ResetAfter != nil {
		resetAfter = r.ResetAfter.Duration
	}
	return backoff, factor, maxBackoff, resetAfter
}

// restartAfter decides when an ordinal whose newest task last has finished
// may be launched again, and with how many consecutive failures behind it.
// A task of an older template, or one converge killed or Mesos lost, is no
// failure of the member: relaunch at once. Otherwise the delay is backoff x
// factor^(failures-1), capped at maxBackoff; a task that ran for resetAfter
// was stable, so its failure counts as the first.
func (p *planner) restartAfter(last *store.TaskRecord) (failures int32, until time.Time) {
	if last == nil || last.TemplateHash != p.hash {
		return 0, time.Time{}
	}
	backoff, factor, maxBackoff, resetAfter := p.restartSpec()
	failures = last.Restarts
	if since, ok := runningSince(last); ok && last.UpdatedAt.Sub(since) >= resetAfter {
		failures = 0
	}
	if !crashed(last) {
		return failures, time.Time{}
	}
	failures++
	return failures, last.UpdatedAt.Add(backoffDelay(backoff, factor, maxBackoff, failures))
}

// backoffDelay is backoff x factor^(failures-1), at most maxBackoff.
func backoffDelay(backoff time.Duration, factor float64, maxBackoff time.Duration, failures int32) time.Duration {
	d := float64(backoff) * math.Pow(factor, float64(failures-1))
	if d >= float64(maxBackoff) || math.IsInf(d, 0) || math.IsNaN(d) {
		return maxBackoff
	}
	return time.Duration(d)
}

// newestByOrdinal maps each ordinal to its newest task (by launch time).
func (p *planner) newestByOrdinal() map[int32]*store.TaskRecord {
	out := map[int32]*store.TaskRecord{}
	for i := range p.members {
		r := p.members[i].rec
		if cur := out[r.Ordinal]; cur == nil || r.LaunchedAt.After(cur.LaunchedAt) {
			out[r.Ordinal] = r
		}
	}
	return out
}

// relaunch returns the Need for a missing ordinal whose newest task is last,
// or records its back-off and returns false while the back-off lasts.
func (p *planner) relaunch(ord int32, last *store.TaskRecord, peers []Peer) (Need, bool) {
	failures, until := p.restartAfter(last)
	if left := until.Sub(p.in.Now); left > 0 {
		p.crashLoops = append(p.crashLoops, crashLoop{ord: ord, failures: failures, last: last, until: until})
		p.requeueIn(left)
		return Need{}, false
	}
	n := p.need(ord, peers)
	n.Restarts = failures
	p.stickToVolume(&n, last)
	return n, true
}

// stickToVolume pins a member with volumes to the agent holding them (its
// newest record's), until that agent has offered nothing for
// placement.replaceAfter since the task ended, or at once if the agent was
// marked gone (its volumes went with it); then, and for a first launch, it
// gets new volumes wherever it fits.
func (p *planner) stickToVolume(n *Need, last *store.TaskRecord) {
	if len(p.c.Spec.Task.Volumes) == 0 {
		return
	}
	if last != nil && last.Volume != nil && p.agentGone(last.AgentID) {
		n.Abandoned, n.AgentGone = last, true
	} else if last != nil && last.Volume != nil {
		after := p.c.Spec.ReplaceAfterDuration()
		if left := last.UpdatedAt.Add(after).Sub(p.in.Now); left > 0 {
			n.Volume, n.VolumeAgent, n.VolumeHost = last.Volume, last.AgentID, last.Hostname
			n.Peers = nil // pinned: placement was decided when the volume was made
			p.requeueIn(left)
			return
		}
		n.Abandoned = last
	}
	n.NewVolumes = true
	n.DiskMB += volumesMB(&p.c.Spec)
}

// agentGone: a task of the cluster on the agent ended TASK_GONE_BY_OPERATOR,
// which Mesos sends only for an agent marked gone.
func (p *planner) agentGone(agentID string) bool {
	for i := range p.members {
		if r := p.members[i].rec; r.AgentID == agentID && r.State == stateGoneByOperator {
			return true
		}
	}
	return false
}

// holdsVolume: r is its ordinal's newest record and holds volumes the
// member is relaunched on: it is kept while the ordinal is wanted.
func (p *planner) holdsVolume(r *store.TaskRecord) bool {
	if r.Volume == nil || int(r.Ordinal) >= p.replicas() {
		return false
	}
	return p.newestByOrdinal()[r.Ordinal] == r
}

// relaunchedCrashLoops adds the live members relaunched after failures that
// are not ready yet: the loop is not over until one of them runs.
func (p *planner) relaunchedCrashLoops() {
	for _, m := range p.live {
		if m.rec.Restarts == 0 || m.rec.TemplateHash != p.hash || p.isReady(m.rec) {
			continue
		}
		var last *store.TaskRecord
		for i := range p.members {
			r := p.members[i].rec
			if r.Ordinal == m.rec.Ordinal && r != m.rec && crashed(r) && r.LaunchedAt.Before(m.rec.LaunchedAt) &&
				(last == nil || r.LaunchedAt.After(last.LaunchedAt)) {
				last = r
			}
		}
		p.crashLoops = append(p.crashLoops, crashLoop{ord: m.rec.Ordinal, failures: m.rec.Restarts, last: last})
	}
}

// holdsBackoff reports whether r is the failed task a waiting member's
// back-off is computed from: it is kept in the ledger until the relaunch.
func (p *planner) holdsBackoff(r *store.TaskRecord) bool {
	for _, cl := range p.crashLoops {
		if cl.last == r && !cl.until.IsZero() {
			return true
		}
	}
	return false
}

// crashLoopMessage names the first crash-looping member and its last exit.
func (p *planner) crashLoopMessage() string {
	cl := p.crashLoops[0]
	var b strings.Builder
	fmt.Fprintf(&b, "member %d", cl.ord)
	if cl.last != nil {
		fmt.Fprintf(&b, " (task %s)", cl.last.ID)
	}
	fmt.Fprintf(&b, " failed %d time(s) in a row", cl.failures)
	if cl.last != nil {
		fmt.Fprintf(&b, ", last exit %s", lastExit(cl.last))
	}
	if cl.until.IsZero() {
		b.WriteString("; relaunched, not ready yet")
	} else {
		// The time, not a countdown: the message, and so the status, stays
		// the same for the whole back-off.
		fmt.Fprintf(&b, "; back-off %s, relaunch at %s", cl.until.Sub(cl.last.UpdatedAt).Round(time.Millisecond), cl.until.UTC().Format(time.RFC3339))
	}
	if n := len(p.crashLoops) - 1; n > 0 {
		fmt.Fprintf(&b, " (and %d more member(s) failing)", n)
	}
	return b.String()
}

// lastExit is a finished task's state with its reason and message.
func lastExit(r *store.TaskRecord) string {
	detail := r.Reason
	if r.Message != "" {
		if detail != "" {
			detail += ": "
		}
		detail += r.Message
	}
	if detail == "" {
		return r.State
	}
	return r.State + " (" + detail + ")"
}

// trackProgress sets st.LastProgressTime: now when the cluster made progress
// since the status last written (the spec changed, more members ready,
// surplus members gone), else as it was. As a Deployment's, members being
// launched again and again are no progress.
func (p *planner) trackProgress(st *v1alpha1.ClusterStatus) {
	prev := &p.c.Status
	scaledDown := int(prev.Replicas) > p.replicas() && st.Replicas < prev.Replicas
	if prev.LastProgressTime == nil || prev.ObservedGeneration != st.ObservedGeneration ||
		st.ReadyReplicas > prev.ReadyReplicas || scaledDown {
		t := metav1.NewTime(p.in.Now.Truncate(time.Second))
		st.LastProgressTime = &t
		return
	}
	st.LastProgressTime = prev.LastProgressTime.DeepCopy()
}

// deadlineExceeded reports whether a cluster that is not Ready has made no
// progress for progressDeadline, counted from its last progress or from when
// it stopped being Ready, whichever is later; else it asks for a requeue at
// the deadline.
func (p *planner) deadlineExceeded(st *v1alpha1.ClusterStatus) bool {
	since := p.in.Now
	if st.LastProgressTime != nil {
		since = st.LastProgressTime.Time
	}
	prevReady := v1alpha1.FindCondition(p.c.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case prevReady == nil || prevReady.Status == metav1.ConditionTrue:
		since = p.in.Now // it stops being Ready now
	case prevReady.LastTransitionTime.After(since):
		since = prevReady.LastTransitionTime.Time
	}
	// Status times are whole seconds, truncated: a second more, so the
	// deadline is never early.
	left := since.Add(p.progressDeadline() + time.Second).Sub(p.in.Now)
	if left > 0 {
		p.requeueIn(left)
		return false
	}
	return true
}

// checksHolding names the live members that a health or readiness check
// keeps from being ready (at most three), for the Ready condition's
// message: "; not ready: ordinal 2 (readiness check failing)".
func (p *planner) checksHolding() string {
	var held []string
	n := 0
	for _, m := range p.live {
		r := m.rec
		if (!r.HealthChecked && !r.ReadinessChecked) || !isRunning(r) {
			continue
		}
		why := notReadyWhy(r)
		if why == "" {
			continue
		}
		if n++; n <= 3 {
			held = append(held, fmt.Sprintf("ordinal %d (%s)", r.Ordinal, why))
		}
	}
	if n == 0 {
		return ""
	}
	if n > 3 {
		held = append(held, fmt.Sprintf("%d more", n-3))
	}
	return "; not ready: " + strings.Join(held, ", ")
}
