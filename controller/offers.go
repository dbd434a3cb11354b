package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/store"
)

// Environment variables of the executor contract (doc.go).
const (
	EnvNamespace        = "CONVERGE_NAMESPACE"
	EnvCluster          = "CONVERGE_CLUSTER"
	EnvOrdinal          = "CONVERGE_ORDINAL"
	EnvTaskID           = "CONVERGE_TASK_ID"
	EnvTaskCommand      = "CONVERGE_TASK_COMMAND"
	EnvPositionCommand  = "CONVERGE_POSITION_COMMAND"
	EnvPromoteCommand   = "CONVERGE_PROMOTE_COMMAND"
	EnvElectionStrategy = "CONVERGE_ELECTION_STRATEGY"
	EnvFollowCommand    = "CONVERGE_FOLLOW_COMMAND"
	EnvDemoteCommand    = "CONVERGE_DEMOTE_COMMAND"
	// The published master when the member is launched (empty while none is),
	// so a member starts as a replica of the current master.
	EnvMasterHost = "CONVERGE_MASTER_HOST"
	EnvMasterPort = "CONVERGE_MASTER_PORT"
	EnvEpoch      = "CONVERGE_EPOCH"
	// EnvTaskUser is spec.task.user for a custom executor: one that runs as
	// another user (an agent with --switch_user=false) switches to it itself.
	EnvTaskUser = "CONVERGE_TASK_USER"
)

// executorGraceMargin is added to a task's kill grace period for its
// executor's shutdown grace period, so that the agent does not kill the
// executor before it has stopped its task and sent the update.
const executorGraceMargin = 2 * time.Second

// Task labels.
const (
	LabelNamespace = "converge.io/namespace"
	LabelCluster   = "converge.io/cluster"
	LabelOrdinal   = "converge.io/ordinal"
)

func (c *Controller) runOffers(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case offers := <-c.offersCh:
			c.handleOffers(ctx, offers)
		}
	}
}

// handleOffers matches offers against the clusters that need members (only
// those: the needy set), checkpoints the ledger records of each used offer,
// then accepts each offer whose records are durable with all its tasks and
// declines the rest.
func (c *Controller) handleOffers(ctx context.Context, offers []mesos.Offer) {
	c.m.offers.Add(float64(len(offers)))
	ready, snapshot := c.noteOffers(offers)
	// Needs are planned afresh from the current ledger, never from an older
	// plan: a member launched a moment ago is not needed again. (Only this
	// goroutine launches, so the snapshot cannot miss a launch.)
	needs, inputs, roleless, satisfied := c.planNeeds(snapshot)
	c.dropSatisfied(satisfied)

	// Reservations nothing keeps are released first; their offers launch
	// nothing this round.
	byOffer := map[int]*offerLaunch{}
	for i, ops := range c.releaseOffers(offers) {
		byOffer[i] = &offerLaunch{offer: &offers[i], op: &writeOp{}, ops: ops}
	}
	if len(needs) == 0 && len(roleless) == 0 {
		c.acceptReleases(ctx, byOffer)
		c.declineUnneeded(ctx, unusedOffers(offers, byOffer), ready)
		return
	}

	now := c.now()
	placed := map[string]bool{}
	rest, stickyWhy := c.placeSticky(needs, offers, inputs, byOffer, placed, now)
	avail, index := offersExcept(offers, byOffer)
	res := MatchOffers(rest, avail, c.agents)
	for key, why := range roleless {
		res.Unplaced[key] = why
	}
	for key, why := range stickyWhy {
		if !placed[key] {
			res.Unplaced[key] = why
		}
	}
	c.assign(res.Assignments, rest, offers, index, inputs, byOffer, placed, now)
	// Checkpoint before ACCEPT: a crash after this leaves STAGING records that
	// reconciliation resolves (the task runs, or Mesos says it never existed).
	if c.failpoint(FailpointLaunchBeforeCheckpoint) {
		return
	}
	if !c.checkpointLaunches(ctx, byOffer) || c.failpoint(FailpointLaunchAfterCheckpoint) {
		return
	}
	c.acceptLaunches(ctx, offers, byOffer, len(res.Unplaced) > 0)
	if c.failpoint(FailpointLaunchAfterAccept) {
		return
	}
	c.noteUnplaced(inputs, res.Unplaced, placed, now)
	for k := range inputs {
		c.queue.Add(k)
	}
}

// needyInput is a needy cluster's planner input and the count of its
// demand (room.demand) when it was taken.
type needyInput struct {
	key    string
	in     *Input
	demand uint64
}

// noteOffers remembers the offering agents' attributes and when offers last
// came, and snapshots the planner inputs of the needy clusters (none until
// the framework is subscribed and reconciled).
func (c *Controller) noteOffers(offers []mesos.Offer) (ready bool, snapshot []needyInput) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastOffers = c.now()
	for i := range offers {
		c.agents[offers[i].AgentID.Value] = offers[i].Attributes
	}
	ready = c.subscribed && c.reconciled
	if !ready {
		return false, nil
	}
	keys := make([]string, 0, len(c.needy))
	for k := range c.needy {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if in := c.inputLocked(k); in != nil && len(in.SpecErrors) == 0 && in.Cluster.DeletionTimestamp == nil {
			snapshot = append(snapshot, needyInput{key: k, in: in, demand: c.rooms[k].demand})
		}
	}
	return true, snapshot
}

// planNeeds plans each snapshot cluster and returns the members to launch,
// the inputs of the clusters that need any, why clusters whose role the
// framework lacks cannot have offers, and the clusters that need nothing
// any more.
func (c *Controller) planNeeds(snapshot []needyInput) (needs []Need, inputs map[string]*Input, roleless map[string]string, satisfied []needyInput) {
	inputs, roleless = map[string]*Input{}, map[string]string{}
	for _, ni := range snapshot {
		out := Plan(*ni.in)
		if len(out.Needs) == 0 {
			satisfied = append(satisfied, ni)
			continue
		}
		key := ni.key
		inputs[key] = ni.in
		if role := out.Needs[0].Role; len(c.cfg.Roles) > 0 && !slices.Contains(c.cfg.Roles, role) {
			roleless[key] = fmt.Sprintf("role %q is not a role of this framework (%s): Mesos offers it nothing; change spec.role or run converge with that role",
				role, strings.Join(c.cfg.Roles, ", "))
			continue
		}
		needs = append(needs, out.Needs...)
	}
	return needs, inputs, roleless, satisfied
}

// dropSatisfied takes out of the needy index the clusters the round found
// needing nothing (their members were launched by an earlier round), unless
// a reconcile found new demand since the snapshot. Left in until their next
// reconcile, every round planned them again: at 10,000 clusters, most of an
// offer round's work during a launch burst.
func (c *Controller) dropSatisfied(satisfied []needyInput) {
	if len(satisfied) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ni := range satisfied {
		if rm := c.rooms[ni.key]; rm != nil && rm.demand == ni.demand {
			delete(c.needy, ni.key)
			rm.needySince, rm.unplaced = time.Time{}, nil
		}
	}
}

// declineUnneeded declines offers no cluster needed. Under offerMu, as
// Suppress/Revive: a long refusal must not reach Mesos after a REVIVE for
// demand that came meanwhile (the filter would outlive the REVIVE: no offers
// for refuseUnneeded). Demand seen now gets a short refusal; demand after it
// revives after it.
func (c *Controller) declineUnneeded(ctx context.Context, unused []mesos.OfferID, ready bool) {
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	c.mu.Lock()
	demand := len(c.needy) > 0 || len(c.pendingReleases()) > 0
	c.mu.Unlock()
	refuse := float64(refuseUnneeded)
	if !ready || demand {
		refuse = refuseShort
	}
	c.decline(ctx, unused, refuse)
}

// assign turns the matcher's assignments into each offer's launch: the task,
// its ledger record and, for new volumes, the operations that make them.
func (c *Controller) assign(as []Assignment, needs []Need, offers []mesos.Offer, index []int, inputs map[string]*Input, byOffer map[int]*offerLaunch, placed map[string]bool, now time.Time) {
	for _, a := range as {
		n := needs[a.Need]
		a.Offer = index[a.Offer]
		id := NewTaskID(n.Namespace, n.Cluster, n.Ordinal)
		ti, rec := c.buildTask(inputs[n.Key].Cluster, n, a, id)
		ol := byOffer[a.Offer]
		if ol == nil {
			ol = &offerLaunch{offer: &offers[a.Offer], op: &writeOp{}}
			byOffer[a.Offer] = ol
		}
		if n.NewVolumes {
			// Checkpointed with the record before the ACCEPT that makes it.
			v := newVolumeRecord(&inputs[n.Key].Cluster.Spec, id)
			rec.Volume = v
			ti.Resources = append(c.taskResources(v), portsOf(a.Resources)...)
			ol.ops = append(ol.ops, c.createOps(v)...)
			c.volumeEvents(ol.op, n, a.Hostname, now)
		}
		ol.add(n, ti, rec, a.Hostname, now)
		placed[n.Key] = true
	}
}

// acceptLaunches accepts each offer whose launch records are durable, with
// its operations and tasks, and declines the others: shortly when launches
// or needs still wait for resources (a long refusal would keep this agent's
// resources from them).
func (c *Controller) acceptLaunches(ctx context.Context, offers []mesos.Offer, byOffer map[int]*offerLaunch, unplaced bool) {
	var unused []mesos.OfferID
	var wg sync.WaitGroup
	refuse := float64(refuseUnneeded)
	if unplaced {
		refuse = refuseShort
	}
	for i := range offers {
		ol := byOffer[i]
		if ol == nil || ol.err != nil {
			unused = append(unused, offers[i].ID)
			if ol != nil {
				refuse = refuseShort // its launches are still needed
			}
			continue
		}
		c.m.launches.Add(float64(len(ol.tasks)))
		for _, r := range ol.records {
			c.log.V(1).Info("launching", "taskID", r.ID, "agent", r.Hostname, "ports", r.Ports)
		}
		wg.Add(1)
		go func(ol *offerLaunch) {
			defer wg.Done()
			c.accept(ctx, ol)
		}(ol)
	}
	c.decline(ctx, unused, refuse)
	wg.Wait()
}

// accept sends one offer's ACCEPT. When it fails the master may not have
// the launch: the tasks are reconciled, so they resolve (GONE/LOST for a
// launch it never saw) and get replaced.
func (c *Controller) accept(ctx context.Context, ol *offerLaunch) {
	o, ops := ol.offer, ol.ops
	if len(ol.tasks) > 0 {
		ops = append(ops[:len(ops):len(ops)], calls.OpLaunch(ol.tasks...))
	}
	if err := c.bridge.Accept(ctx, []mesos.OfferID{o.ID}, ops, refuseAfterUse); err != nil {
		c.log.Error(err, "accept failed; reconciling the tasks", "offerID", o.ID.Value, "agent", o.Hostname)
		var rt []mesosbridge.ReconcileTask
		for _, t := range ol.tasks {
			rt = append(rt, mesosbridge.ReconcileTask{TaskID: t.TaskID.Value, AgentID: o.AgentID.Value})
		}
		if rerr := c.bridge.Reconcile(ctx, rt); rerr != nil {
			c.log.Error(rerr, "reconcile after a failed accept")
		}
	}
}

// noteUnplaced records, in each planned cluster's room, why its needs found
// no offer and since when: progress (or a first miss) restarts the stall
// clock.
func (c *Controller) noteUnplaced(inputs map[string]*Input, unplacedWhy map[string]string, placed map[string]bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range inputs {
		rm := c.rooms[k]
		if rm == nil {
			continue // deleted meanwhile
		}
		why, unplaced := unplacedWhy[k]
		switch {
		case !unplaced:
			rm.unplaced = nil
		case placed[k] || rm.unplaced == nil:
			rm.unplaced = &Unplaced{Reason: why, Since: now}
		default:
			rm.unplaced = &Unplaced{Reason: why, Since: rm.unplaced.Since}
		}
	}
}

// offerLaunch is what one offer launches: its tasks, their ledger records and
// the op that checkpoints them. An offer is the unit of a launch, so it is the
// unit of its checkpoint: offers whose records were not written are declined,
// the others launch.
type offerLaunch struct {
	offer *mesos.Offer
	// ops go before the LAUNCH of tasks in the ACCEPT: RESERVE and CREATE of
	// new volumes, or the DESTROY and UNRESERVE of released reservations.
	ops     []mesos.Offer_Operation
	tasks   []mesos.TaskInfo
	records []store.TaskRecord
	op      *writeOp
	err     error // the checkpoint's outcome
}

// checkpointLaunches writes every offer's launch records, each offer's as one
// op, and waits for all of them; false if ctx ended first.
func (c *Controller) checkpointLaunches(ctx context.Context, byOffer map[int]*offerLaunch) bool {
	type result struct {
		ol  *offerLaunch
		err error
	}
	results := make(chan result, len(byOffer))
	n := 0
	for _, ol := range byOffer {
		if ol.op.empty() {
			continue // a release: nothing to checkpoint
		}
		n++
		ol.op.after = func(err error) { results <- result{ol, err} }
		c.submit(ctx, ol.op)
	}
	for ; n > 0; n-- {
		select {
		case r := <-results:
			r.ol.err = r.err
			if r.err != nil {
				c.log.Error(r.err, "launch records not written; declining the offer", "offerID", r.ol.offer.ID.Value, "tasks", len(r.ol.tasks))
			}
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (c *Controller) decline(ctx context.Context, ids []mesos.OfferID, refuse float64) {
	if len(ids) == 0 {
		return
	}
	if err := c.bridge.Decline(ctx, ids, refuse); err != nil {
		c.log.V(1).Info("decline failed", "offers", len(ids), "error", err.Error())
	}
}

// executorFor reports whether members of spec run under a custom executor, and
// which command (and URIs) start it.
func (c *Controller) executorFor(spec *v1alpha1.ClusterSpec) (cmd string, uris []v1alpha1.URI, name string, ok bool) {
	if e := spec.Task.Executor; e != nil {
		return e.Command, e.URIs, "custom executor", true
	}
	if spec.Election.Strategy == v1alpha1.ElectionPosition {
		var u []v1alpha1.URI
		if c.cfg.ExecutorURI != "" {
			// Cached: agents fetch the (large) binary once, not once per
			// task and sandbox.
			u = []v1alpha1.URI{{Value: c.cfg.ExecutorURI, Executable: true, Cache: true}}
		}
		return c.cfg.ExecutorCommand, u, "converge executor", true
	}
	return "", nil, "", false
}

func envVar(name, value string) mesos.Environment_Variable {
	v := value
	return mesos.Environment_Variable{Name: name, Value: &v}
}

func commandURIs(uris []v1alpha1.URI) []mesos.CommandInfo_URI {
	var out []mesos.CommandInfo_URI
	for _, u := range uris {
		executable, extract, cache := u.Executable, u.Extract, u.Cache
		out = append(out, mesos.CommandInfo_URI{Value: u.Value, Executable: &executable, Extract: &extract, Cache: &cache})
	}
	return out
}

// buildTask makes the TaskInfo for an assignment and its ledger record.
func (c *Controller) buildTask(cl *v1alpha1.Cluster, n Need, a Assignment, id string) (mesos.TaskInfo, store.TaskRecord) {
	spec := &cl.Spec
	ports := make([]int32, len(a.Ports))
	portStrs := make([]string, len(a.Ports))
	for i, p := range a.Ports {
		ports[i] = int32(p)
		portStrs[i] = strconv.FormatUint(p, 10)
	}
	ours := []mesos.Environment_Variable{
		envVar(EnvNamespace, n.Namespace),
		envVar(EnvCluster, n.Cluster),
		envVar(EnvOrdinal, strconv.Itoa(int(n.Ordinal))),
		envVar(EnvTaskID, id),
	}
	for i, p := range portStrs {
		ours = append(ours, envVar("PORT"+strconv.Itoa(i), p))
	}
	if len(portStrs) > 0 {
		ours = append(ours, envVar("PORTS", strings.Join(portStrs, ",")))
	}
	ours = append(ours, c.masterEnv(n.Key)...)
	taken := map[string]bool{}
	for _, v := range ours {
		taken[v.Name] = true
	}
	userKeys := make([]string, 0, len(spec.Task.Env))
	for k := range spec.Task.Env {
		if !taken[k] {
			userKeys = append(userKeys, k)
		}
	}
	sort.Strings(userKeys)
	var env []mesos.Environment_Variable
	for _, k := range userKeys {
		env = append(env, envVar(k, spec.Task.Env[k]))
	}
	env = append(env, ours...)

	shell := true
	ti := mesos.TaskInfo{
		Name:      TaskName(n.Namespace, n.Cluster, n.Ordinal),
		TaskID:    mesos.TaskID{Value: id},
		AgentID:   mesos.AgentID{Value: a.AgentID},
		Resources: a.Resources,
		Labels: &mesos.Labels{Labels: []mesos.Label{
			{Key: LabelNamespace, Value: strPtr(n.Namespace)},
			{Key: LabelCluster, Value: strPtr(n.Cluster)},
			{Key: LabelOrdinal, Value: strPtr(strconv.Itoa(int(n.Ordinal)))},
		}},
	}
	rec := store.TaskRecord{
		ID: id, Namespace: n.Namespace, Cluster: n.Cluster, Ordinal: n.Ordinal,
		TemplateHash: n.TemplateHash, Generation: cl.Generation,
		AgentID: a.AgentID, Hostname: a.Hostname, Ports: ports,
		State: stateStaging, LaunchedAt: c.now(), UpdatedAt: c.now(),
		Restarts: n.Restarts,
	}
	if cmd, uris, name, ok := c.executorFor(spec); ok {
		xenv := append(append([]mesos.Environment_Variable(nil), env...),
			envVar(EnvTaskCommand, spec.Task.Command),
			envVar(EnvPositionCommand, spec.Election.PositionCommand),
			envVar(EnvPromoteCommand, spec.Election.PromoteCommand),
			envVar(EnvFollowCommand, spec.Election.FollowCommand),
			envVar(EnvDemoteCommand, spec.Election.DemoteCommand),
			envVar(EnvElectionStrategy, spec.Election.Strategy),
		)
		if spec.Task.User != "" {
			xenv = append(xenv, envVar(EnvTaskUser, spec.Task.User))
		}
		value := cmd
		ex := &mesos.ExecutorInfo{
			Type:       mesos.ExecutorInfo_CUSTOM,
			ExecutorID: mesos.ExecutorID{Value: id},
			Name:       strPtr(name + " for " + ti.Name),
			Command: &mesos.CommandInfo{
				Shell: &shell, Value: &value,
				URIs:        append(commandURIs(uris), commandURIs(spec.Task.URIs)...),
				Environment: &mesos.Environment{Variables: xenv},
			},
		}
		if c.bridge != nil {
			if fid := c.bridge.FrameworkID(); fid != "" {
				ex.FrameworkID = &mesos.FrameworkID{Value: fid}
			}
		}
		if g := spec.Task.KillGracePeriod; g != nil {
			ex.ShutdownGracePeriod = &mesos.DurationInfo{Nanoseconds: (g.Duration + executorGraceMargin).Nanoseconds()}
		}
		ti.Executor = ex
		rec.ExecutorID = id
	} else {
		value := spec.Task.Command
		ti.Command = &mesos.CommandInfo{
			Shell: &shell, Value: &value,
			URIs:        commandURIs(spec.Task.URIs),
			Environment: &mesos.Environment{Variables: env},
		}
	}
	setUserAndKillPolicy(&ti, &spec.Task)
	ti.HealthCheck, ti.Check = healthCheckInfo(spec.Task.HealthCheck, a.Ports, env), checkInfo(spec.Task.ReadinessCheck, a.Ports, env)
	rec.HealthChecked, rec.ReadinessChecked = ti.HealthCheck != nil, ti.Check != nil
	return ti, rec
}

// setUserAndKillPolicy puts task.user on the command the agent runs (the
// task's, or its executor's: the agent runs the executor, and so its tasks
// and hooks, as that user) and task.killGracePeriod in the kill policy,
// which executors read on every kill.
func setUserAndKillPolicy(ti *mesos.TaskInfo, t *v1alpha1.TaskSpec) {
	if t.User != "" {
		u := t.User
		if ti.Executor != nil {
			ti.Executor.Command.User = &u
		} else {
			ti.Command.User = &u
		}
	}
	if g := t.KillGracePeriod; g != nil {
		ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: g.Duration.Nanoseconds()}}
	}
}

func strPtr(s string) *string { return &s }

// masterEnv is the published master of a cluster, as a member's environment.
func (c *Controller) masterEnv(key string) []mesos.Environment_Variable {
	host, port, epoch := "", "", ""
	c.mu.Lock()
	if rm := c.rooms[key]; rm != nil && rm.endpoints != nil && rm.endpoints.Master != nil {
		ep := rm.endpoints
		host, port, epoch = ep.Master.Hostname, strconv.Itoa(int(ep.Master.Port)), strconv.FormatInt(ep.Epoch, 10)
	}
	c.mu.Unlock()
	return []mesos.Environment_Variable{envVar(EnvMasterHost, host), envVar(EnvMasterPort, port), envVar(EnvEpoch, epoch)}
}
