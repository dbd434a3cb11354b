package controller

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
