package controller

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// The planner's last phase: status reports the members, the master and the
// Ready, Reconciling and Stalled conditions of what the other phases
// decided. Pure, as all of Plan.

// status writes the cluster's status: its members as the ledger has them,
// the master, and the Ready, Reconciling and Stalled conditions, decided
// together (kstatus reads them as one).
func (p *planner) status(deleting, invalid bool) {
	c := p.c
	st := v1alpha1.ClusterStatus{ObservedGeneration: c.Generation}
	if invalid || deleting {
		p.collectLive() // planMembers, which fills it, did not run
	}
	p.countReplicas(&st)
	st.Tasks = p.taskStatuses()
	if e, m := p.master(); m != nil {
		st.Master = &v1alpha1.MasterStatus{TaskID: m.rec.ID, Ordinal: m.rec.Ordinal, Hostname: m.rec.Hostname, Port: firstPort(m.rec), Epoch: e.Epoch}
	}
	if e := p.electionAfter(); e != nil && e.Switchover != nil {
		sw := *e.Switchover
		st.Switchover = &sw
	}
	p.trackProgress(&st)
	st.Conditions = append([]metav1.Condition(nil), c.Status.Conditions...)
	prevStalled := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionStalled)

	var cs conditions
	switch {
	case deleting:
		cs = p.deletingConditions()
	case invalid:
		msg := specErrorsMessage(p.in.SpecErrors)
		cs = conditions{
			ready:       p.condition(metav1.ConditionFalse, ReasonInvalidSpec, msg),
			reconciling: p.condition(metav1.ConditionFalse, ReasonInvalidSpec, "nothing is done to the cluster's tasks until the spec is fixed"),
			stalled:     p.condition(metav1.ConditionTrue, ReasonInvalidSpec, msg),
		}
		if !stalledFor(prevStalled, ReasonInvalidSpec) {
			p.ev("Warning", ReasonInvalidSpec, "%s", msg)
		}
	default:
		cs = p.progressConditions(&st, prevStalled)
	}
	cs.ready.Type, cs.reconciling.Type, cs.stalled.Type = v1alpha1.ConditionReady, v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled
	v1alpha1.SetCondition(&st.Conditions, cs.ready)
	v1alpha1.SetCondition(&st.Conditions, cs.reconciling)
	v1alpha1.SetCondition(&st.Conditions, cs.stalled)
	p.out.Status = st
}

// countReplicas counts the live members: all, ready, and of the current
// template.
func (p *planner) countReplicas(st *v1alpha1.ClusterStatus) {
	for _, m := range p.live {
		st.Replicas++
		if p.isReady(m.rec) {
			st.ReadyReplicas++
		}
		if p.hash != "" && m.rec.TemplateHash == p.hash {
			st.UpdatedReplicas++
		}
	}
}

// taskStatuses lists the tasks that hold their ordinal, with why each is
// not ready where that helps; finished ones are left out (no ghosts in the
// status).
func (p *planner) taskStatuses() []v1alpha1.TaskStatus {
	var out []v1alpha1.TaskStatus
	for i := range p.members {
		m := &p.members[i]
		if !m.occupying {
			continue
		}
		r := m.rec
		ts := v1alpha1.TaskStatus{ID: r.ID, Ordinal: r.Ordinal, State: r.State, AgentID: r.AgentID, Hostname: r.Hostname, Ports: r.Ports,
			Ready: m.live && p.isReady(r)}
		if r.HealthChecked && r.Healthy != nil {
			v := *r.Healthy
			ts.Healthy = &v
		}
		why := notReadyWhy(r)
		switch {
		case r.KillRequested:
			ts.Message = "killing: " + r.KillReason
		case r.Message != "" && r.State != stateRunning:
			ts.Message = r.Message
		case r.State == stateRunning && why != "":
			ts.Message = "not ready: " + why
		}
		out = append(out, ts)
	}
	return out
}

// conditions are the Ready, Reconciling and Stalled conditions of a status
// (their Type set when written).
type conditions struct {
	ready, reconciling, stalled metav1.Condition
}

// condition is a condition about the cluster's current generation, its
// transition time in whole seconds as the API stores it.
func (p *planner) condition(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Status: status, Reason: reason, Message: msg, ObservedGeneration: p.c.Generation, LastTransitionTime: metav1.NewTime(p.in.Now.Truncate(time.Second))}
}

// stalledFor reports whether the previous Stalled condition was already
// True for reason: the Warning event is emitted once, when it turns so.
func stalledFor(prev *metav1.Condition, reason string) bool {
	return prev != nil && prev.Status == metav1.ConditionTrue && prev.Reason == reason
}

// deletingConditions say how many tasks are still to stop; a cluster being
// deleted is never Stalled.
func (p *planner) deletingConditions() conditions {
	left := 0
	for i := range p.members {
		if p.members[i].occupying && !p.members[i].expired {
			left++
		}
	}
	msg := fmt.Sprintf("deleting: %d tasks still to stop", left)
	return conditions{
		ready:       p.condition(metav1.ConditionFalse, ReasonDeleting, msg),
		reconciling: p.condition(metav1.ConditionTrue, ReasonDeleting, msg),
		stalled:     p.condition(metav1.ConditionFalse, ReasonDeleting, ""),
	}
}

// progressConditions are a valid cluster's conditions: Ready when nothing
// is left to do; else Reconciling with the first thing in the way, or
// Stalled when no offer fits for too long or progressDeadline passed.
func (p *planner) progressConditions(st *v1alpha1.ClusterStatus, prevStalled *metav1.Condition) conditions {
	running := fmt.Sprintf("%d/%d members ready", st.ReadyReplicas, p.replicas()) + p.checksHolding()
	noFit, stallNow := p.noOfferFits()
	p.relaunchedCrashLoops()
	reason, msg := p.notConverged(st, running, noFit, stallNow)
	// Waiting for reconciliation is the controller's own pause, not the cluster's lack of progress.
	overdue := reason != "" && !stallNow && reason != ReasonWaitingReconcile && p.deadlineExceeded(st)
	switch {
	case reason == "":
		m := running
		if st.Master != nil {
			m += fmt.Sprintf("; master ordinal %d (%s:%d) in epoch %d", st.Master.Ordinal, st.Master.Hostname, st.Master.Port, st.Master.Epoch)
		}
		return conditions{
			ready:       p.condition(metav1.ConditionTrue, ReasonReady, m),
			reconciling: p.condition(metav1.ConditionFalse, ReasonConverged, ""),
			stalled:     p.condition(metav1.ConditionFalse, ReasonConverged, ""),
		}
	case stallNow, overdue:
		return p.stalledConditions(reason, msg, overdue, prevStalled)
	default:
		return conditions{
			ready:       p.condition(metav1.ConditionFalse, reason, msg),
			reconciling: p.condition(metav1.ConditionTrue, reason, msg),
			stalled:     p.condition(metav1.ConditionFalse, ReasonProgressing, ""),
		}
	}
}

// noOfferFits reports whether members are to launch that the latest
// offers could not hold (noFit), and whether that has lasted StallAfter
// (stallNow); until then it asks for a requeue at that time.
func (p *planner) noOfferFits() (noFit, stallNow bool) {
	noFit = p.in.Unplaced != nil && len(p.out.Needs) > 0
	if !noFit {
		return false, false
	}
	left := p.in.Unplaced.Since.Add(p.in.StallAfter).Sub(p.in.Now)
	if left <= 0 {
		return true, true
	}
	p.requeueIn(left)
	return true, false
}

// notConverged names the first thing that keeps a valid cluster from being
// converged, as a condition reason and message ("" reason: nothing). The
// order is what a human should look at first.
func (p *planner) notConverged(st *v1alpha1.ClusterStatus, running string, noFit, stallNow bool) (reason, msg string) {
	desired := p.replicas()
	switch {
	case !p.in.Reconciled && (p.out.Waiting > 0 || !p.masterOK):
		reason, msg = ReasonWaitingReconcile, running+"; waiting for Mesos to confirm task states after (re)subscribing"
	case stallNow:
		reason, msg = ReasonNoOfferFits, p.in.Unplaced.Reason
	case len(p.crashLoops) > 0:
		reason, msg = ReasonCrashLoopBackOff, p.crashLoopMessage()
	case p.rolling():
		reason, msg = ReasonRollingUpdate, fmt.Sprintf("%d/%d members updated; %s", st.UpdatedReplicas, desired, running)
	case len(p.out.Needs) > 0 || p.out.Waiting > 0:
		reason, msg = ReasonLaunching, fmt.Sprintf("%s; %d to launch", running, len(p.out.Needs)+p.out.Waiting)
		if noFit {
			msg += "; " + p.in.Unplaced.Reason
		}
		if held := p.writtenOff(); held != "" {
			msg += "; " + held
		}
	case int(st.Replicas) > desired || p.dying() > 0:
		reason, msg = ReasonScalingDown, fmt.Sprintf("%s; %d stopping", running, p.dying())
	case int(st.ReadyReplicas) < desired:
		reason, msg = ReasonMembersNotReady, running
	case int(st.UpdatedReplicas) < desired:
		reason, msg = ReasonRollingUpdate, fmt.Sprintf("%d/%d members updated", st.UpdatedReplicas, desired)
	case !p.masterOK:
		reason, msg = p.masterReason, p.masterMsg
	}
	if e, _ := p.master(); reason == "" && e != nil && p.in.Promoted != nil && p.in.Promoted.Epoch == e.Epoch && p.in.Promoted.TaskID == e.MasterTaskID && p.in.Promoted.Error != "" {
		reason, msg = ReasonPromoteFailed, "the promote command failed on the master: "+p.in.Promoted.Error
	}
	return reason, msg
}

// stalledConditions are those of a cluster that cannot progress: no offer
// fits, or (overdue) progressDeadline passed. Reconciling is False too, so
// kstatus reads Failed, not InProgress; the Warning event is emitted when
// Stalled turns True for this reason.
func (p *planner) stalledConditions(reason, msg string, overdue bool, prevStalled *metav1.Condition) conditions {
	why, whyMsg, fix := reason, msg, "no progress is possible until offers that fit appear or the spec changes"
	if overdue {
		why, whyMsg = ReasonProgressDeadlineExceeded, fmt.Sprintf("no progress for %s (update.progressDeadline): %s: %s", p.progressDeadline(), reason, msg)
		fix = "members are still relaunched, but the cluster needs a fix: see the Ready and Stalled conditions"
	}
	if !stalledFor(prevStalled, why) {
		p.ev("Warning", why, "%s", whyMsg)
	}
	return conditions{
		ready:       p.condition(metav1.ConditionFalse, reason, msg),
		reconciling: p.condition(metav1.ConditionFalse, ReasonStalled, fix),
		stalled:     p.condition(metav1.ConditionTrue, why, whyMsg),
	}
}

// rolling reports whether a rolling update is under way: a member of an older
// template is still live or dying.
func (p *planner) rolling() bool {
	if p.rollPending {
		return true
	}
	for i := range p.members {
		if p.members[i].occupying && p.members[i].rec.TemplateHash != p.hash {
			return true
		}
	}
	return false
}

// writtenOff names the ordinals held by members written off as unreachable
// ("" if none): they are relaunched only once Mesos reports them finished.
func (p *planner) writtenOff() string {
	var ords []string
	for i := range p.members {
		if p.members[i].expired {
			ords = append(ords, strconv.Itoa(int(p.members[i].rec.Ordinal)))
		}
	}
	if len(ords) == 0 {
		return ""
	}
	return fmt.Sprintf("ordinal %s waits until its unreachable member is killed (once its agent is back) or its agent is marked gone", strings.Join(ords, ", "))
}

// dying counts members being killed that still hold their ordinal.
func (p *planner) dying() int {
	n := 0
	for i := range p.members {
		if p.members[i].occupying && !p.members[i].live {
			n++
		}
	}
	return n
}

func specErrorsMessage(errs field.ErrorList) string {
	var parts []string
	for i, e := range errs {
		if i == maxStatusMessageFieldErr {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-i))
			break
		}
		// The bad value is shown except under env, whose values may be secrets.
		if strings.Contains(e.Field, ".env") || e.BadValue == nil {
			parts = append(parts, fmt.Sprintf("%s: %s: %s", e.Field, e.Type, e.Detail))
		} else {
			parts = append(parts, e.Error())
		}
	}
	return "invalid spec: " + strings.Join(parts, "; ")
}
