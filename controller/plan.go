package controller

import (
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// Task states as the ledger stores them (mesos.TaskState names).
const (
	stateStaging     = "TASK_STAGING"
	stateStarting    = "TASK_STARTING"
	stateRunning     = "TASK_RUNNING"
	stateUnreachable = "TASK_UNREACHABLE"
	stateUnknown     = "TASK_UNKNOWN"
	// stateGoneByOperator: the task's agent was marked gone (the operator
	// API's MARK_AGENT_GONE): removed for good, with its volumes, and shut
	// down should it ever come back.
	stateGoneByOperator = "TASK_GONE_BY_OPERATOR"
)

var terminalStates = map[string]bool{
	"TASK_FINISHED": true, "TASK_FAILED": true, "TASK_KILLED": true, "TASK_ERROR": true,
	"TASK_LOST": true, "TASK_DROPPED": true, "TASK_GONE": true, "TASK_GONE_BY_OPERATOR": true,
}

// IsTerminalState reports whether a state is terminal for Mesos.
func IsTerminalState(s string) bool { return terminalStates[s] }

// finished reports whether a ledger state ends a task's life for converge: a
// Mesos terminal state, or TASK_UNKNOWN. The master sends TASK_UNKNOWN only
// to answer a reconciliation (an explicit RECONCILE, or a KILL of a task it
// does not know) when it knows neither the task nor its agent: not registered,
// not recovering (that gets no answer), not unreachable, not gone
// (master.cpp _reconcileTasks, case 6; docs/reconciliation.md). Nothing can
// reach such a task: waiting for it, or re-sending KILL, never ends. Should
// its agent ever re-register with it, Mesos reports it again and it is killed
// as a ghost (handleUpdate): its ordinal may have been relaunched meanwhile.
func finished(s string) bool { return terminalStates[s] || s == stateUnknown }

// Condition reasons. Each names what is going on so a human knows what to do.
const (
	ReasonReady               = "Ready"
	ReasonInvalidSpec         = "InvalidSpec"
	ReasonNoOfferFits         = "NoOfferFits"
	ReasonDeleting            = "Deleting"
	ReasonWaitingReconcile    = "WaitingForReconciliation"
	ReasonLaunching           = "Launching"
	ReasonMembersNotReady     = "MembersNotReady"
	ReasonScalingDown         = "ScalingDown"
	ReasonRollingUpdate       = "RollingUpdate"
	ReasonWaitingForMembers   = "WaitingForMembers"
	ReasonElecting            = "Electing"
	ReasonPromoting           = "Promoting"
	ReasonPromoteFailed       = "PromoteFailed"
	ReasonMembersLagging      = "MembersLagging"
	ReasonWaitingForOldMaster = "WaitingForOldMaster"
	ReasonProgressing         = "Progressing"
	ReasonStalled             = "Stalled"
	ReasonConverged           = "Converged"
	defaultStallAfter         = 10 * time.Second
	terminalRecordRetention   = 10 * time.Minute
	electionResendInterval    = time.Second
	maxStatusMessageFieldErr  = 10
)

// Input is everything Plan looks at for one cluster. It is a snapshot: Plan does
// not keep it and does no I/O.
type Input struct {
	// Cluster is the object as read, defaulted (v1alpha1.SetDefaults).
	Cluster *v1alpha1.Cluster
	// SpecErrors is v1alpha1.Validate(Cluster): when not empty nothing is done to
	// the cluster's tasks and it is Stalled with reason InvalidSpec.
	SpecErrors field.ErrorList
	// Tasks is the cluster's ledger.
	Tasks []store.TaskRecord
	// Election is the persisted election record (nil: none yet).
	Election *store.ElectionRecord
	// Answers are the position messages members sent; only those of the
	// current election epoch count.
	Answers []election.Message
	// Promoted is the latest "promoted" message from the cluster's members; it
	// counts only for the current epoch and master.
	Promoted *election.Message
	// Demoted is the latest "demoted" message from the cluster's members; it
	// counts only for a demoting election's epoch and master (handover.go).
	Demoted *election.Message
	// Lease is the master lease and follow answers as the controller knows
	// them; LeaseFloor is when this controller first subscribed: a lease granted
	// before (by another) may last until it plus the lease duration.
	Lease      LeaseState
	LeaseFloor time.Time
	// Reconciled: the explicit reconciliation after the last (re)subscribe is done,
	// so the ledger reflects Mesos and missing members may be launched.
	Reconciled bool
	// Unplaced is the offer matcher's latest diagnosis for this cluster's needs.
	Unplaced *Unplaced
	Now      time.Time
	// UnreachableTimeout: an UNREACHABLE member stops counting after it (it is
	// no longer ready, master or published) and is killed; its ordinal is
	// relaunched only once Mesos reports it finished.
	UnreachableTimeout time.Duration
	// StallAfter: needs that no offer fits for this long make the cluster Stalled.
	StallAfter time.Duration
}

// Unplaced says why the latest offers could not hold a cluster's needs.
type Unplaced struct {
	Reason string
	Since  time.Time
}

// Output is what Plan decided. The shell persists (ledger kills, election,
// endpoints, events) in one transaction, then acts (kills, messages), then writes
// status if it changed.
type Output struct {
	// Needs are members to launch now, matched to offers by MatchOffers.
	Needs []Need
	// Waiting counts members that are missing but cannot be launched yet (before
	// reconciliation, or while their ordinal's previous task is still dying or
	// unreachable).
	Waiting int
	// Kills: tasks to kill. New ones must be persisted (KillRequested) before the
	// kill is sent; the others were decided before and are re-issued.
	Kills []Kill
	// Forget lists terminal ledger records old enough to delete.
	Forget []string
	// Election is the election record to persist, nil when unchanged.
	Election *store.ElectionRecord
	// Queries are position queries to send (after Election is persisted).
	Queries []Message
	// Promote is the promote message to (re)send to the master, after persisting.
	Promote *Message
	// Follows tell members the promoted master, until they confirm.
	Follows []Message
	// Demote tells a master being handed over to stop taking writes, after
	// persisting, until it confirms.
	Demote *Message
	// Endpoints is the record to publish (nil while deleting or invalid).
	Endpoints *store.Endpoints
	// Status is the cluster's new status.
	Status v1alpha1.ClusterStatus
	// Events to append to the cluster's history.
	Events []store.Event
	// AddFinalizer / RemoveFinalizer: metadata changes to write.
	AddFinalizer, RemoveFinalizer bool
	// RequeueAfter > 0: look at the cluster again after this long even if nothing
	// happens (election deadlines, unreachable timeouts, stall detection).
	RequeueAfter time.Duration
}

// Need is one member to launch.
type Need struct {
	Key         string // "namespace/name"
	Namespace   string
	Cluster     string
	Ordinal     int32
	Role        string
	CPUs        float64 // cores
	MemMB       float64
	DiskMB      float64
	Ports       int
	Spread      string
	Constraints []v1alpha1.Constraint
	// Peers are the cluster's other live members, for placement constraints.
	Peers []Peer
	// Human-readable requests for diagnoses ("64Gi").
	MemText, DiskText, CPUText string
	// TemplateHash of the spec the member is launched from (computed once per plan).
	TemplateHash string
	// Restarts: consecutive failures of the ordinal before this launch (its
	// restart back-off), persisted in the launched task's record.
	Restarts int32
	// Volume: the reservation and volumes the member holds on its agent
	// (task.volumes): it is relaunched there, on them. Nil with NewVolumes:
	// it reserves and creates new ones wherever it lands (DiskMB then
	// counts the volumes too).
	Volume      *store.VolumeRecord
	VolumeAgent string
	VolumeHost  string
	NewVolumes  bool
	// Abandoned: the record whose volumes were given up: their agent was
	// marked gone (AgentGone), or did not offer them within
	// placement.replaceAfter.
	Abandoned *store.TaskRecord
	AgentGone bool
}

// Peer is a live member's placement, for constraints.
type Peer struct {
	AgentID  string
	Hostname string
}

// Kill is a task to kill.
type Kill struct {
	TaskID  string
	AgentID string
	Ordinal int32
	Reason  string
	New     bool
	// Duplicate: a second live task of one ordinal, which the ledger must
	// never come to hold (counted: converge_controller_duplicate_members_killed_total).
	Duplicate bool
}

// Message is a framework message to one executor.
type Message struct {
	AgentID    string
	ExecutorID string
	Msg        election.Message
}

// member is one ledger record with its classification.
type member struct {
	rec *store.TaskRecord
	// occupying: not finished, so its ordinal is taken, reachable or not: an
	// ordinal is an identity (a database's server id) and never has two
	// members that may be alive. An unreachable member's ordinal is relaunched
	// only once Mesos reports it finished.
	occupying bool
	// live: occupying, counted as a member, and not being killed.
	live bool
	// expired: unreachable for longer than the timeout: no longer counted
	// (not live, not master, not published) and killed, which Mesos delivers
	// when its agent comes back.
	expired bool
}

// Plan decides the next safe step for one cluster. It is pure.
func Plan(in Input) Output {
	p := planner{in: in}
	p.run()
	return p.out
}

type planner struct {
	in      Input
	out     Output
	c       *v1alpha1.Cluster
	hash    string
	members []member
	live    []*member
	byID    map[string]*member
	// requeue candidates
	requeue time.Duration
	// status inputs
	masterOK     bool
	masterReason string
	masterMsg    string
	rollPending  bool
	// handover: the member plan wants the master handed over (a rolling
	// update reached it); planElection starts it.
	handover *handoverTo
	// crashLoops are the members whose tasks keep failing.
	crashLoops []crashLoop
}

func (p *planner) ev(typ, reason, format string, args ...any) {
	p.out.Events = append(p.out.Events, store.Event{Time: p.in.Now, Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (p *planner) requeueIn(d time.Duration) {
	if d <= 0 {
		d = 10 * time.Millisecond
	}
	if p.requeue == 0 || d < p.requeue {
		p.requeue = d
	}
}

func (p *planner) run() {
	p.c = p.in.Cluster
	if p.in.UnreachableTimeout <= 0 {
		p.in.UnreachableTimeout = DefaultUnreachableTimeout
	}
	if p.in.StallAfter <= 0 {
		p.in.StallAfter = defaultStallAfter
	}
	deleting := p.c.DeletionTimestamp != nil
	hasFinalizer := false
	for _, f := range p.c.Finalizers {
		if f == v1alpha1.Finalizer {
			hasFinalizer = true
		}
	}
	if !deleting && !hasFinalizer {
		p.out.AddFinalizer = true
	}
	p.classify()
	invalid := len(p.in.SpecErrors) > 0
	switch {
	case deleting:
		p.planDelete(hasFinalizer)
	case invalid:
		// Nothing is done to the tasks: the spec cannot be trusted.
	default:
		p.hash = v1alpha1.TemplateHash(&p.c.Spec)
		p.planMembers()
		p.planElection()
		p.out.Endpoints = p.endpoints()
		p.planForget()
	}
	p.status(deleting, invalid)
	p.out.RequeueAfter = p.requeue
}

func (p *planner) classify() {
	p.members = make([]member, len(p.in.Tasks))
	p.byID = make(map[string]*member, len(p.in.Tasks))
	for i := range p.in.Tasks {
		r := &p.in.Tasks[i]
		m := &p.members[i]
		m.rec = r
		if finished(r.State) {
			continue
		}
		m.occupying = true
		if r.State == stateUnreachable {
			since := r.UpdatedAt
			if r.UnreachableAt != nil {
				since = *r.UnreachableAt
			}
			if left := since.Add(p.in.UnreachableTimeout).Sub(p.in.Now); left <= 0 {
				m.expired = true
			} else {
				p.requeueIn(left)
			}
		}
		m.live = !m.expired && !r.KillRequested
	}
	// Order: ordinal, then task id (a stable order; duplicates are ranked by better).
	sort.SliceStable(p.members, func(i, j int) bool {
		a, b := p.members[i].rec, p.members[j].rec
		if a.Ordinal != b.Ordinal {
			return a.Ordinal < b.Ordinal
		}
		return a.ID < b.ID
	})
	for i := range p.members {
		p.byID[p.members[i].rec.ID] = &p.members[i]
	}
}

func (p *planner) kill(m *member, reason string) {
	if !m.rec.KillRequested {
		p.ev("Normal", "Killing", "killing task %s (ordinal %d): %s", m.rec.ID, m.rec.Ordinal, reason)
	}
	p.out.Kills = append(p.out.Kills, Kill{TaskID: m.rec.ID, AgentID: m.rec.AgentID, Ordinal: m.rec.Ordinal, Reason: reason, New: !m.rec.KillRequested})
	m.live = false
}

// reissueKills re-issues kills decided before (the bridge retries them, but not
// across controller restarts).
func (p *planner) reissueKills() {
	for i := range p.members {
		m := &p.members[i]
		if m.rec.KillRequested && m.occupying {
			p.out.Kills = append(p.out.Kills, Kill{TaskID: m.rec.ID, AgentID: m.rec.AgentID, Ordinal: m.rec.Ordinal, Reason: m.rec.KillReason})
		}
	}
}

func (p *planner) planDelete(hasFinalizer bool) {
	p.reissueKills()
	if p.demoteBeforeDelete() {
		return // the master stops taking writes first
	}
	remaining := 0
	for i := range p.members {
		m := &p.members[i]
		if !m.occupying {
			continue
		}
		if !m.expired {
			remaining++
		}
		if !m.rec.KillRequested {
			p.kill(m, "cluster deleted")
		}
	}
	if remaining == 0 && hasFinalizer {
		p.out.RemoveFinalizer = true
	}
}

func (p *planner) replicas() int {
	if p.c.Spec.Replicas == nil {
		return int(v1alpha1.DefaultReplicas)
	}
	return int(*p.c.Spec.Replicas)
}

func (p *planner) masterID() string {
	if e := p.in.Election; e != nil && (e.Phase == store.PhaseElected || e.Phase == store.PhasePromoted) {
		return e.MasterTaskID
	}
	return ""
}

// planMembers reconciles the live members with the spec, in the order that
// keeps an ordinal's identity safe: write off the unreachable, drop
// duplicates, scale down, launch the missing, then roll the outdated. Each
// phase sees the members the previous ones left live.
func (p *planner) planMembers() {
	p.reissueKills()
	desired := p.replicas()
	masterID := p.masterID()
	p.writeOffUnreachable()
	p.killDuplicates(masterID)
	p.collectLive()
	p.scaleDown(desired, masterID)
	p.launchMissing(desired)
	if !p.in.Reconciled {
		return // no rolling update before the ledger reflects Mesos
	}
	p.rollingUpdate(desired, masterID)
}

// writeOffUnreachable kills members unreachable for too long. Mesos delivers
// the KILL when the agent comes back; the ordinal stays taken until then, so
// the member never runs beside a replacement (StatefulSet's rule; see doc.go).
func (p *planner) writeOffUnreachable() {
	for i := range p.members {
		m := &p.members[i]
		if m.expired && !m.rec.KillRequested && p.in.Reconciled {
			p.kill(m, fmt.Sprintf("unreachable for more than %s", p.in.UnreachableTimeout))
		}
	}
}

// killDuplicates keeps at most one live task per ordinal, the most advanced
// (better): two live members of one ordinal would be two servers with one
// identity.
func (p *planner) killDuplicates(masterID string) {
	byOrd := map[int32]*member{}
	for i := range p.members {
		m := &p.members[i]
		if !m.live {
			continue
		}
		cur, ok := byOrd[m.rec.Ordinal]
		if !ok {
			byOrd[m.rec.Ordinal] = m
			continue
		}
		keep, drop := cur, m
		if better(m, cur, masterID) {
			keep, drop = m, cur
		}
		byOrd[m.rec.Ordinal] = keep
		p.kill(drop, fmt.Sprintf("duplicate of ordinal %d", drop.rec.Ordinal))
		p.out.Kills[len(p.out.Kills)-1].Duplicate = true
	}
}

// scaleDown kills the live members beyond desired: the highest ordinals go
// first, the master last.
func (p *planner) scaleDown(desired int, masterID string) {
	excess := len(p.live) - desired
	if excess <= 0 {
		return
	}
	victims := masterLast(append([]*member(nil), p.live...), masterID)
	for _, m := range victims[:excess] {
		p.kill(m, fmt.Sprintf("scale down to %d replicas", desired))
	}
	p.collectLive()
}

// masterLast orders members for removal, in place: non-masters first, the
// highest ordinal first among them, the master last (its loss costs an
// election).
func masterLast(ms []*member, masterID string) []*member {
	sort.SliceStable(ms, func(i, j int) bool {
		mi, mj := ms[i].rec.ID == masterID, ms[j].rec.ID == masterID
		if mi != mj {
			return !mi
		}
		return ms[i].rec.Ordinal > ms[j].rec.Ordinal
	})
	return ms
}

// launchMissing asks for the members missing below desired, at the lowest
// free ordinals. An ordinal whose previous task is still dying, or
// unreachable, waits for it, as do all before reconciliation and those in
// restart back-off (counted in Waiting).
func (p *planner) launchMissing(desired int) {
	missing := desired - len(p.live)
	if missing <= 0 {
		return
	}
	liveOrd := map[int32]bool{}
	var peers []Peer
	for _, m := range p.live {
		liveOrd[m.rec.Ordinal] = true
		peers = append(peers, Peer{AgentID: m.rec.AgentID, Hostname: m.rec.Hostname})
	}
	occupied := map[int32]bool{}
	for i := range p.members {
		if p.members[i].occupying {
			occupied[p.members[i].rec.Ordinal] = true
		}
	}
	newest := p.newestByOrdinal() // each ordinal's last task: its restart back-off
	for ord := int32(0); missing > 0; ord++ {
		if liveOrd[ord] {
			continue
		}
		missing--
		if occupied[ord] || !p.in.Reconciled {
			p.out.Waiting++
			continue
		}
		n, ok := p.relaunch(ord, newest[ord], peers)
		if !ok {
			p.out.Waiting++ // in restart back-off
			continue
		}
		p.out.Needs = append(p.out.Needs, n)
	}
}

// rollingUpdate kills out-of-date live members within maxUnavailable,
// non-masters first (highest ordinal first), the master last and alone:
// handed over first where it can be, so that writes move before it stops.
func (p *planner) rollingUpdate(desired int, masterID string) {
	outdated, ready := p.outdated()
	if len(outdated) == 0 {
		return
	}
	p.rollPending = true
	if e := p.in.Election; p.electionWanted() && e != nil && (e.Phase == store.PhaseElecting || e.Phase == store.PhaseDemoting ||
		(e.Phase == store.PhaseElected && masterID != "")) {
		return // no rolling while a handover, an election or a promotion is under way
	}
	budget := p.maxUnavailable() - (desired - min(ready, desired))
	for _, m := range masterLast(outdated, masterID) {
		if budget <= 0 {
			break
		}
		if m.rec.ID == masterID && len(outdated) > 1 {
			break // the master goes last, alone
		}
		if possible, now := p.canHandOver(); m.rec.ID == masterID && possible {
			// Handed over first, once the others follow it; stopped once
			// another is promoted, as a member of the old template.
			if now {
				p.handover = &handoverTo{reason: "rolling update to the new task template"}
			}
			break
		}
		p.kill(m, "rolling update to the new task template")
		budget--
	}
	p.collectLive()
}

// outdated returns the live members of an older template, and how many
// live members are ready.
func (p *planner) outdated() (outdated []*member, ready int) {
	for _, m := range p.live {
		if m.rec.TemplateHash != p.hash {
			outdated = append(outdated, m)
		}
		if p.isReady(m.rec) {
			ready++
		}
	}
	return outdated, ready
}

// maxUnavailable is update.maxUnavailable, 1 when unset or not positive.
func (p *planner) maxUnavailable() int {
	if mu := p.c.Spec.Update.MaxUnavailable; mu != nil && *mu > 0 {
		return int(*mu)
	}
	return 1
}

// better reports whether a should be kept over b (same ordinal).
func better(a, b *member, masterID string) bool {
	if (a.rec.ID == masterID) != (b.rec.ID == masterID) {
		return a.rec.ID == masterID
	}
	ra, rb := stateRank(a.rec.State), stateRank(b.rec.State)
	if ra != rb {
		return ra > rb
	}
	return a.rec.LaunchedAt.After(b.rec.LaunchedAt)
}

func stateRank(s string) int {
	switch s {
	case stateRunning:
		return 3
	case stateStarting:
		return 2
	case stateStaging:
		return 1
	}
	return 0
}

func (p *planner) collectLive() {
	p.live = p.live[:0]
	for i := range p.members {
		if p.members[i].live {
			p.live = append(p.live, &p.members[i])
		}
	}
}

func (p *planner) need(ord int32, peers []Peer) Need {
	s := &p.c.Spec
	cpus, mem, disk := v1alpha1.ResourceScalars(s.Task.Resources)
	n := Need{
		Key: p.c.Namespace + "/" + p.c.Name, Namespace: p.c.Namespace, Cluster: p.c.Name,
		Ordinal: ord, Role: s.Role, CPUs: cpus, MemMB: mem, DiskMB: disk,
		Ports: int(s.Task.Resources.Ports), Spread: s.Placement.Spread,
		Constraints: s.Placement.Constraints, Peers: peers, TemplateHash: p.hash,
	}
	if n.Role == "" {
		n.Role = v1alpha1.DefaultRole
	}
	if q := s.Task.Resources.Mem; q != nil {
		n.MemText = q.String()
	}
	if q := s.Task.Resources.Disk; q != nil {
		n.DiskText = q.String()
	}
	if q := s.Task.Resources.CPUs; q != nil {
		n.CPUText = q.String()
	}
	return n
}

// planForget deletes terminal records nobody needs any more.
func (p *planner) planForget() {
	for i := range p.members {
		r := p.members[i].rec
		if !p.members[i].occupying && p.in.Now.Sub(r.UpdatedAt) > terminalRecordRetention && r.ID != p.masterID() && !p.holdsBackoff(r) && !p.holdsVolume(r) {
			p.out.Forget = append(p.out.Forget, r.ID)
		}
	}
}

// electionAfter is the election record as it will be once Output is persisted.
func (p *planner) electionAfter() *store.ElectionRecord {
	if p.out.Election != nil {
		return p.out.Election
	}
	return p.in.Election
}

// master returns the current master member, if any, after this plan.
func (p *planner) master() (*store.ElectionRecord, *member) {
	e := p.electionAfter()
	// Only a confirmed promotion makes a master: clients must never be sent
	// to a member that does not take writes yet (or failed to).
	if !p.electionWanted() || e == nil || e.Phase != store.PhasePromoted {
		return nil, nil
	}
	m := p.byID[e.MasterTaskID]
	if m == nil || !m.live {
		return nil, nil
	}
	return e, m
}

func firstPort(r *store.TaskRecord) int32 {
	if len(r.Ports) > 0 {
		return r.Ports[0]
	}
	return 0
}

func (p *planner) endpoints() *store.Endpoints {
	ep := &store.Endpoints{Namespace: p.c.Namespace, Cluster: p.c.Name, Members: []store.Endpoint{}}
	for _, m := range p.live {
		if isRunning(m.rec) {
			ep.Members = append(ep.Members, store.Endpoint{TaskID: m.rec.ID, Ordinal: m.rec.Ordinal, Hostname: m.rec.Hostname, Port: firstPort(m.rec)})
		}
	}
	if e := p.electionAfter(); e != nil && p.electionWanted() {
		ep.Epoch = e.Epoch
	}
	if _, m := p.master(); m != nil {
		ep.Master = &store.Endpoint{TaskID: m.rec.ID, Ordinal: m.rec.Ordinal, Hostname: m.rec.Hostname, Port: firstPort(m.rec)}
	}
	return ep
}
