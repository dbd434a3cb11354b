package localmesos

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// accept runs an ACCEPT call (m.mu held).
func (m *Mesos) accept(fw *framework, acc *scheduler.Call_Accept) {
	var offers []*offer
	invalid := ""
	seen := map[string]bool{}
	for _, id := range acc.OfferIDs {
		if seen[id.Value] {
			invalid = "Offer " + id.Value + " is used more than once"
			continue
		}
		seen[id.Value] = true
		o := m.offers[id.Value]
		switch {
		case o == nil:
			invalid = "Offer " + id.Value + " is no longer valid"
		case o.fw != fw:
			invalid = "Offer " + id.Value + " has invalid framework"
		default:
			offers = append(offers, o)
		}
	}
	if invalid == "" && len(offers) == 0 {
		invalid = "No offers specified"
	}
	if invalid == "" {
		for _, o := range offers[1:] {
			if o.agent != offers[0].agent {
				invalid = "Aggregated offers must belong to one single agent"
			} else if o.role != offers[0].role {
				invalid = "Aggregated offers must be allocated to the same role"
			}
		}
	}
	if invalid == "" && !offers[0].agent.reachable {
		invalid = "Agent " + offers[0].agent.id + " is not reachable"
	}
	for _, o := range offers {
		m.removeOffer(o)
	}
	if invalid != "" {
		reason := mesos.REASON_INVALID_OFFERS
		for _, op := range acc.Operations {
			for _, ti := range opTasks(op) {
				m.masterStatus(fw, ti, mesos.TASK_DROPPED, reason, "Task launched with invalid offers: "+invalid)
			}
		}
		m.log.V(1).Info("accept with invalid offers", "framework", fw.id, "reason", invalid)
		return
	}
	a, role := offers[0].agent, offers[0].role
	var remaining res
	for _, o := range offers {
		remaining.add(o.res)
	}
	for _, op := range acc.Operations {
		switch op.Type {
		case mesos.Offer_Operation_LAUNCH:
			if op.Launch == nil {
				continue
			}
			if op.ID != nil {
				// Master::accept: no operation feedback for launches
				m.dropTasks(fw, op.Launch.TaskInfos, mesos.REASON_TASK_INVALID, "The `id` field cannot be set on LAUNCH operations")
				continue
			}
			for _, ti := range op.Launch.TaskInfos {
				m.launchGroup(fw, a, role, nil, []mesos.TaskInfo{ti}, &remaining)
			}
		case mesos.Offer_Operation_LAUNCH_GROUP:
			if op.LaunchGroup == nil {
				continue
			}
			if op.ID != nil {
				m.dropTasks(fw, op.LaunchGroup.TaskGroup.Tasks, mesos.REASON_TASK_GROUP_INVALID, "The `id` field cannot be set on LAUNCH_GROUP operations")
				continue
			}
			ex := op.LaunchGroup.Executor
			m.launchGroup(fw, a, role, &ex, op.LaunchGroup.TaskGroup.Tasks, &remaining)
		case mesos.Offer_Operation_RESERVE, mesos.Offer_Operation_UNRESERVE,
			mesos.Offer_Operation_CREATE, mesos.Offer_Operation_DESTROY:
			m.applyOperation(fw, a, role, op, &remaining)
		default:
			m.log.Info("unsupported offer operation ignored", "framework", fw.id, "type", op.Type.String())
		}
	}
	m.addFilter(fw, a, role, remaining, acc.Filters)
}

// dropTasks answers every task of a refused launch with TASK_ERROR.
func (m *Mesos) dropTasks(fw *framework, tasks []mesos.TaskInfo, reason mesos.TaskStatus_Reason, msg string) {
	for _, ti := range tasks {
		m.masterStatus(fw, ti, mesos.TASK_ERROR, reason, msg)
	}
}

func opTasks(op mesos.Offer_Operation) []mesos.TaskInfo {
	switch {
	case op.Type == mesos.Offer_Operation_LAUNCH && op.Launch != nil:
		return op.Launch.TaskInfos
	case op.Type == mesos.Offer_Operation_LAUNCH_GROUP && op.LaunchGroup != nil:
		return op.LaunchGroup.TaskGroup.Tasks
	}
	return nil
}

// launchGroup validates and launches tasks (one LAUNCH task, or a LAUNCH_GROUP with
// group != nil, all or nothing) out of remaining.
func (m *Mesos) launchGroup(fw *framework, a *agent, role string, group *mesos.ExecutorInfo, tasks []mesos.TaskInfo, remaining *res) {
	needs := make([]res, len(tasks))
	var msg string
	reason := mesos.REASON_TASK_INVALID
	if group != nil {
		reason = mesos.REASON_TASK_GROUP_INVALID
		msg = validateTaskGroup(fw, a, group, tasks, *remaining)
		for i := range tasks {
			needs[i], _ = fromProto(tasks[i].Resources)
		}
		if msg == "" {
			if e := a.executors[fw.id+"/"+group.ExecutorID.Value]; e == nil || e.exited {
				needs[0].add(mustRes(group.Resources))
			}
		}
	} else {
		ti := &tasks[0]
		if ti.Executor != nil && ti.Executor.FrameworkID == nil {
			// Master::accept fills in a LAUNCH executor's framework id
			// (the field came late to the API).
			ex := *ti.Executor
			ex.FrameworkID = &mesos.FrameworkID{Value: fw.id}
			ti.Executor = &ex
		}
		if msg = validateTaskFields(fw, a, ti, nil); msg == "" {
			needs[0], msg = validateLaunchExecutor(fw, a, ti, *remaining)
		}
	}
	if msg != "" {
		m.dropTasks(fw, tasks, reason, msg)
		return
	}
	var launched []*task
	var tg *taskGroup
	if group != nil && group.Type == mesos.ExecutorInfo_DEFAULT {
		tg = &taskGroup{}
	}
	for i := range tasks {
		remaining.sub(needs[i])
		t := m.launch(fw, a, tasks[i], group != nil, tg)
		launched = append(launched, t)
	}
	if group != nil && len(launched) > 0 && launched[0].exec.kind == execCustom {
		e := launched[0].exec
		var infos []mesos.TaskInfo
		for _, t := range launched {
			infos = append(infos, t.info)
		}
		m.launchGroupOnExecutor(e, infos)
	}
}

// validateTaskGroup is task::group::validate: every task as a task (its
// message prefixed "Task '<id>' is invalid: "), then the group's executor.
// Like the master (Master::accept), it then puts the group's ExecutorInfo into
// every task that has none. Tasks may carry a CommandInfo: the default
// executor runs each task's command in a nested container.
func validateTaskGroup(fw *framework, a *agent, group *mesos.ExecutorInfo, tasks []mesos.TaskInfo, avail res) string {
	if len(tasks) == 0 {
		return "Task group is empty"
	}
	batch := map[string]bool{}
	for i := range tasks {
		if msg := validateTaskFields(fw, a, &tasks[i], batch); msg != "" {
			return "Task '" + tasks[i].TaskID.Value + "' is invalid: " + msg
		}
		batch[tasks[i].TaskID.Value] = true
	}
	if _, msg := validateGroupExecutor(fw, a, group, tasks, avail); msg != "" {
		return msg
	}
	for i := range tasks {
		if tasks[i].Executor == nil {
			e := *group
			tasks[i].Executor = &e
		}
	}
	return ""
}

func mustRes(rs []mesos.Resource) res {
	r, _ := fromProto(rs)
	return r
}

func describe(r res) string {
	s := fmt.Sprintf("cpus:%g;mem:%g;disk:%g", r.cpus, r.mem, r.disk)
	if len(r.ports) > 0 {
		var ps []string
		for _, p := range r.ports {
			ps = append(ps, fmt.Sprintf("%d-%d", p.Begin, p.End))
		}
		s += ";ports:[" + strings.Join(ps, ",") + "]"
	}
	return s
}

// launch books a validated task on agent a and starts it. Tasks of a group are sent
// to a custom executor together, by the caller; tasks of a group under the default
// executor share tg.
func (m *Mesos) launch(fw *framework, a *agent, ti mesos.TaskInfo, inGroup bool, tg *taskGroup) *task {
	r, _ := fromProto(ti.Resources)
	t := &task{
		id:         ti.TaskID.Value,
		info:       ti,
		fw:         fw,
		agent:      a,
		res:        r,
		state:      mesos.TASK_STAGING,
		agentState: mesos.TASK_STAGING,
		group:      tg,
	}
	if tg != nil {
		tg.tasks = append(tg.tasks, t)
	}
	if old := fw.tasks[t.id]; old != nil {
		m.forgetTask(old)
	}
	fw.tasks[t.id] = t
	a.tasks[t] = struct{}{}
	a.used.add(r)

	execID := t.id
	kind := execCommand
	if m.opts.Simulate {
		kind = execSim
	}
	if ti.Executor != nil {
		execID = ti.Executor.ExecutorID.Value
		if !m.opts.Simulate {
			kind = execCustom
			if ti.Executor.Type == mesos.ExecutorInfo_DEFAULT {
				kind = execDefault
			}
		}
	}
	key := fw.id + "/" + execID
	e := a.executors[key]
	if e == nil || e.exited {
		e = &executor{kind: kind, fw: fw, agent: a, id: execID, tasks: map[string]*task{}}
		if ti.Executor != nil {
			e.info = *ti.Executor
			if er, err := fromProto(ti.Executor.Resources); err == nil {
				e.res = er
				a.used.add(er)
			}
		} else {
			e.info = mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: execID}, FrameworkID: &mesos.FrameworkID{Value: fw.id}}
		}
		a.executors[key] = e
		m.executors[key] = e
	}
	e.tasks[t.id] = t
	t.exec = e
	m.log.V(1).Info("task launched", "framework", fw.id, "task", t.id, "agent", a.id, "executor", execID)

	switch e.kind {
	case execSim:
		m.simLaunch(t)
	case execCommand, execDefault:
		m.startCommandTask(t)
	case execCustom:
		if e.proc == nil && e.dir == "" {
			// A new executor: its user must exist (Framework::addExecutor).
			if _, ok := m.runAsOrDrop(t, e.info.Command.GetUser()); !ok {
				m.removeExecutor(e)
				break
			}
		}
		if err := m.linkExecutorVolumes(e, t); err != nil {
			reason := mesos.REASON_CONTAINER_LAUNCH_FAILED
			m.agentStatus(t, mesos.TASK_FAILED, &reason, err.Error(), mesos.SOURCE_AGENT)
			break
		}
		if inGroup {
			m.ensureExecutor(e)
		} else {
			m.launchOnExecutor(e, t)
		}
	}
	return t
}

// masterStatus sends a master-generated update (no uuid, never acknowledged) for a
// task the master does not track. As Master::forward does for a task that failed
// validation, it is not recorded: the task never shows in /master/state.
func (m *Mesos) masterStatus(fw *framework, ti mesos.TaskInfo, state mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) {
	st := mesos.TaskStatus{
		TaskID:    ti.TaskID,
		State:     state.Enum(),
		Source:    mesos.SOURCE_MASTER.Enum(),
		Reason:    reason.Enum(),
		Message:   &msg,
		Timestamp: ptrFloat(now()),
	}
	if ti.AgentID.Value != "" {
		st.AgentID = &mesos.AgentID{Value: ti.AgentID.Value}
	}
	m.sendStatus(fw, st)
}

func ptrFloat(f float64) *float64 { return &f }

func (m *Mesos) addCompleted(fw *framework, t *task) {
	fw.completed = append(fw.completed, t)
	if len(fw.completed) > maxCompletedTasks {
		fw.completed = append([]*task(nil), fw.completed[len(fw.completed)-maxCompletedTasks:]...)
	}
}

// partitionState maps the partition-aware states to TASK_LOST for frameworks
// without the PARTITION_AWARE capability.
func partitionState(fw *framework, s mesos.TaskState) mesos.TaskState {
	if fw.partitionAware {
		return s
	}
	switch s {
	case mesos.TASK_DROPPED, mesos.TASK_UNREACHABLE, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR, mesos.TASK_UNKNOWN:
		return mesos.TASK_LOST
	}
	return s
}

// sendStatus sends an UPDATE event to a connected framework.
func (m *Mesos) sendStatus(fw *framework, st mesos.TaskStatus) {
	if !fw.connected || fw.stream == nil {
		return
	}
	if st.State != nil {
		st.State = partitionState(fw, *st.State).Enum()
	}
	fw.stream.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}})
}

// agentStatus is an update generated on the agent (by the executor or the agent):
// it carries a fresh uuid and is retried until acknowledged.
func (m *Mesos) agentStatus(t *task, state mesos.TaskState, reason *mesos.TaskStatus_Reason, msg string, source mesos.TaskStatus_Source) {
	m.agentUpdate(t, m.newAgentStatus(t, state, reason, msg, source, true))
}

// newAgentStatus builds an agent update; healthy false sets healthy: false
// (a task killed for failing its health check).
func (m *Mesos) newAgentStatus(t *task, state mesos.TaskState, reason *mesos.TaskStatus_Reason, msg string, source mesos.TaskStatus_Source, healthy bool) mesos.TaskStatus {
	st := mesos.TaskStatus{
		TaskID:     t.info.TaskID,
		State:      state.Enum(),
		Source:     source.Enum(),
		Reason:     reason,
		AgentID:    &mesos.AgentID{Value: t.agent.id},
		ExecutorID: &mesos.ExecutorID{Value: t.exec.id},
		Timestamp:  ptrFloat(now()),
		UUID:       newUUID(),
	}
	if msg != "" {
		st.Message = &msg
	}
	if !healthy {
		st.Healthy = &healthy
	}
	return st
}

// stopChecking stops the task's checkers, if any run.
func (t *task) stopChecking() {
	if t.stopChecks != nil {
		t.stopChecks()
	}
}

// agentUpdate queues a status update on the task's agent-side stream and, if it is
// the oldest unacknowledged one, forwards it through the master. As the agent's
// status update stream does, it ignores an update whose uuid it has already
// received for the task (an executor re-sending it, say when it re-subscribes),
// whether or not that one was since forwarded and acknowledged.
func (m *Mesos) agentUpdate(t *task, st mesos.TaskStatus) {
	if t.forgotten || t.fw == nil {
		return
	}
	if !t.receive(st.UUID) {
		m.log.V(1).Info("ignoring duplicate status update", "task", t.id, "uuid", uuidString(st.UUID))
		return
	}
	if isTerminal(t.agentState) {
		return // the agent's update stream is closed after a terminal update
	}
	if st.GetSource() == mesos.SOURCE_EXECUTOR && t.exec != nil {
		st.ContainerStatus = m.containerStatus(t)
	}
	t.pending = append(t.pending, st)
	t.agentState = st.GetState()
	if t.agent.reachable {
		m.masterSees(t, st)
	}
	if len(t.pending) == 1 {
		t.resendIval = m.opts.ResendInterval
		m.forward(t)
	}
	if g := t.group; g != nil && !g.killing && (t.agentState == mesos.TASK_FAILED || t.agentState == mesos.TASK_KILLED) {
		m.killTaskGroup(t)
	}
}

// taskGroup is a task group launched under the default executor.
type taskGroup struct {
	tasks   []*task
	killing bool
}

// killTaskGroup is the default executor's restart policy: when a task of a group
// fails or is killed, the other live tasks of the group are killed.
func (m *Mesos) killTaskGroup(t *task) {
	t.group.killing = true
	for _, o := range t.group.tasks {
		if o != t && !o.forgotten && !o.killing && !isTerminal(o.agentState) && !o.agent.frozen() {
			m.killTask(o, nil)
		}
	}
}

// masterSees records an update's state as the master's view of the task.
func (m *Mesos) masterSees(t *task, st mesos.TaskStatus) {
	t.state = st.GetState()
	t.unreach = nil
	t.record(st)
	if isTerminal(t.state) {
		m.freeTask(t)
	}
}

// record keeps st as the task's last status and in its history, as
// Master::updateTask does: a status of the same state as the last one
// replaces it, and the history keeps no data.
func (t *task) record(st mesos.TaskStatus) {
	t.last = st
	st.Data = nil
	if n := len(t.statuses); n > 0 && t.statuses[n-1].GetState() == st.GetState() {
		t.statuses[n-1] = st
		return
	}
	t.statuses = append(t.statuses, st)
}

// containerStatus is what the agent adds to an executor's update
// (Slave::_statusUpdate): the container's id (a task group's task runs in a
// nested container of the executor's) and, as no network isolator reports
// one, the agent's IP address.
func (m *Mesos) containerStatus(t *task) *mesos.ContainerStatus {
	e := t.exec
	if e.containerID == "" {
		e.containerID = uuidString(newUUID())
	}
	id := mesos.ContainerID{Value: e.containerID}
	if e.kind == execDefault || t.group != nil {
		id = mesos.ContainerID{Value: e.containerID + "." + t.id, Parent: &mesos.ContainerID{Value: e.containerID}}
	}
	ip := t.agent.hostname
	return &mesos.ContainerStatus{
		ContainerID:  &id,
		NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &ip}}}},
	}
}

func (m *Mesos) freeTask(t *task) {
	if t.freed || t.agent == nil {
		return
	}
	t.freed = true
	t.agent.used.sub(t.res)
}

// forward sends the task's oldest unacknowledged update to its framework and arms
// the resend timer.
func (m *Mesos) forward(t *task) {
	if len(t.pending) == 0 || !t.agent.reachable || t.forgotten {
		return
	}
	if t.resendIval <= 0 {
		t.resendIval = m.opts.ResendInterval
	}
	t.nextResend = time.Now().Add(t.resendIval)
	m.resend[t] = struct{}{}
	t.updateState = t.pending[0].State
	fw := t.fw
	if !fw.connected {
		return
	}
	if m.dropP > 0 && m.rng.Float64() < m.dropP {
		return
	}
	m.sendStatus(fw, t.pending[0])
	if m.dupP > 0 && m.rng.Float64() < m.dupP {
		m.sendStatus(fw, t.pending[0])
	}
}

func (m *Mesos) resendLoop() {
	defer m.wg.Done()
	iv := m.opts.ResendInterval / 4
	if iv > 250*time.Millisecond {
		iv = 250 * time.Millisecond
	}
	if iv < 10*time.Millisecond {
		iv = 10 * time.Millisecond
	}
	tk := time.NewTicker(iv)
	defer tk.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-tk.C:
			m.mu.Lock()
			for t := range m.resend {
				if len(t.pending) == 0 || t.forgotten {
					delete(m.resend, t)
					continue
				}
				if now.Before(t.nextResend) || !t.agent.reachable {
					continue
				}
				t.resendIval *= 2
				if t.resendIval > maxResendInterval {
					t.resendIval = maxResendInterval
				}
				m.forward(t)
			}
			m.mu.Unlock()
		}
	}
}

// acknowledge passes an ACKNOWLEDGE to the agent: the oldest pending update is
// dropped and the next one forwarded. The executor is not told: it got its
// ACKNOWLEDGED when the agent stored the update (see executorUpdate).
func (m *Mesos) acknowledge(fw *framework, ack *scheduler.Call_Acknowledge) {
	t := fw.tasks[ack.TaskID.Value]
	if t == nil || t.agent.id != ack.AgentID.Value || !t.agent.reachable {
		return
	}
	if len(t.pending) == 0 || !bytes.Equal(t.pending[0].UUID, ack.UUID) {
		return // a duplicate or stale acknowledgement: the agent ignores it
	}
	acked := t.pending[0]
	t.pending = t.pending[1:]
	if len(t.pending) > 0 {
		t.resendIval = m.opts.ResendInterval
		m.forward(t)
		return
	}
	delete(m.resend, t)
	if isTerminal(acked.GetState()) {
		m.forgetTask(t)
	}
}

// forgetTask removes a task from the master and agent (terminal update acknowledged).
func (m *Mesos) forgetTask(t *task) {
	if t.forgotten {
		return
	}
	t.forgotten = true
	t.received = nil
	t.stopChecking()
	m.freeTask(t)
	if t.simTimer != nil {
		t.simTimer.Stop()
	}
	delete(m.resend, t)
	if t.fw.tasks[t.id] == t {
		delete(t.fw.tasks, t.id)
	}
	delete(t.agent.tasks, t)
	m.addCompleted(t.fw, t)
	if e := t.exec; e != nil {
		delete(e.tasks, t.id)
		if e.kind == execCustom {
			e.rememberCompleted(t.id)
		}
		if e.kind != execCustom && len(e.tasks) == 0 {
			m.removeExecutor(e)
		}
	}
}

func (m *Mesos) removeExecutor(e *executor) {
	key := e.fw.id + "/" + e.id
	if e.agent.executors[key] == e {
		delete(e.agent.executors, key)
		e.agent.used.sub(e.res)
	}
	if m.executors[key] == e {
		delete(m.executors, key)
	}
	e.exited = true
	m.collectSandbox(e)
}

// destroyTask kills a task without telling its (removed) framework.
func (m *Mesos) destroyTask(t *task) {
	if t.simTimer != nil {
		t.simTimer.Stop()
	}
	t.killing = true
	if t.proc != nil {
		t.proc.terminate(3 * time.Second)
	}
	t.pending = nil
	m.forgetTask(t)
}

func (m *Mesos) destroyExecutor(e *executor) {
	e.shuttingDown = true
	if e.stream != nil {
		e.stream.close()
	}
	if e.proc != nil {
		e.proc.terminate(3 * time.Second)
	}
	m.removeExecutor(e)
}

// kill runs a KILL call.
func (m *Mesos) kill(fw *framework, k *scheduler.Call_Kill) {
	t := fw.tasks[k.TaskID.Value]
	if t == nil || t.state == mesos.TASK_UNREACHABLE {
		m.reconcile(fw, []scheduler.Call_Reconcile_Task{{TaskID: k.TaskID, AgentID: k.AgentID}})
		return
	}
	if k.AgentID != nil && k.AgentID.Value != t.agent.id {
		// Master::kill: "Cannot kill task ... because it belongs to
		// different agent": ignored.
		m.log.V(1).Info("ignoring KILL naming another agent", "task", t.id, "agent", k.AgentID.Value)
		return
	}
	if p := t.agent.partition; p != nil && !isTerminal(t.agentState) {
		p.killLater(t)
		return
	}
	if !t.agent.reachable || isTerminal(t.agentState) {
		return
	}
	m.killTask(t, k.KillPolicy)
}

func (m *Mesos) killTask(t *task, kp *mesos.KillPolicy) {
	if t.killing && t.exec.kind != execCustom {
		return
	}
	t.killing = true
	t.stopChecking() // no check updates after a kill, as Mesos's executors
	if kp == nil {
		kp = t.info.KillPolicy
	}
	killingState := hasCapability(&t.fw.info, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE)
	switch t.exec.kind {
	case execSim:
		if t.simTimer != nil {
			t.simTimer.Stop()
		}
		if killingState {
			m.agentStatus(t, mesos.TASK_KILLING, nil, "", mesos.SOURCE_EXECUTOR)
		}
		m.agentStatus(t, mesos.TASK_KILLED, nil, "Command terminated with signal Terminated", mesos.SOURCE_EXECUTOR)
	case execCommand, execDefault:
		if killingState {
			m.agentStatus(t, mesos.TASK_KILLING, nil, "", mesos.SOURCE_EXECUTOR)
		}
		if t.proc == nil {
			m.agentStatus(t, mesos.TASK_KILLED, nil, "Task killed before it started", mesos.SOURCE_EXECUTOR)
			return
		}
		t.proc.terminate(gracePeriod(kp, defaultCommandGrace))
	case execCustom:
		m.executorKill(t.exec, t, kp)
	}
}

func gracePeriod(kp *mesos.KillPolicy, def time.Duration) time.Duration {
	if kp != nil && kp.GracePeriod != nil {
		return time.Duration(kp.GracePeriod.Nanoseconds)
	}
	return def
}

// reconcile answers RECONCILE (explicit or implicit) as Master::reconcile does.
// A known task is answered with its status update state (the state of the last
// update forwarded to the framework, which may be older than the task's latest
// state while that update awaits its acknowledgement), its health and
// container status. Unreachable tasks are not among the framework's tasks
// (the master keeps them apart): implicit reconciliation leaves them out and
// explicit reconciliation answers them by their agent.
func (m *Mesos) reconcile(fw *framework, tasks []scheduler.Call_Reconcile_Task) {
	answer := func(t *task) {
		state := t.state
		if t.updateState != nil {
			state = *t.updateState
		}
		msg := "Reconciliation: Latest task state"
		st := mesos.TaskStatus{
			TaskID:          t.info.TaskID,
			State:           state.Enum(),
			Source:          mesos.SOURCE_MASTER.Enum(),
			Reason:          mesos.REASON_RECONCILIATION.Enum(),
			Message:         &msg,
			AgentID:         &mesos.AgentID{Value: t.agent.id},
			Timestamp:       ptrFloat(now()),
			Healthy:         t.last.Healthy,
			CheckStatus:     t.last.CheckStatus,
			ContainerStatus: t.latestContainerStatus(),
		}
		if t.exec != nil && t.exec.hasExecutorID() {
			st.ExecutorID = &mesos.ExecutorID{Value: t.exec.id}
		}
		m.sendStatus(fw, st)
	}
	if len(tasks) == 0 {
		ids := make([]string, 0, len(fw.tasks))
		for id, t := range fw.tasks {
			if t.state != mesos.TASK_UNREACHABLE {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			answer(fw.tasks[id])
		}
		return
	}
	for _, rt := range tasks {
		if t := fw.tasks[rt.TaskID.Value]; t != nil && t.state != mesos.TASK_UNREACHABLE {
			answer(t)
			continue
		}
		m.sendStatus(fw, m.reconcileUnknown(fw, rt))
	}
}

// reconcileUnknown answers an explicit reconciliation of a task the master
// does not track, by its agent: registered -> TASK_GONE, unreachable ->
// TASK_UNREACHABLE with the time it was marked so, marked gone ->
// TASK_GONE_BY_OPERATOR, unknown or not given ->
// TASK_UNKNOWN (each TASK_LOST without PARTITION_AWARE, by sendStatus).
func (m *Mesos) reconcileUnknown(fw *framework, rt scheduler.Call_Reconcile_Task) mesos.TaskStatus {
	st := mesos.TaskStatus{
		TaskID:    rt.TaskID,
		Source:    mesos.SOURCE_MASTER.Enum(),
		Reason:    mesos.REASON_RECONCILIATION.Enum(),
		Timestamp: ptrFloat(now()),
		State:     mesos.TASK_UNKNOWN.Enum(),
	}
	msg := "Reconciliation: Task is unknown"
	if rt.AgentID != nil {
		st.AgentID = &mesos.AgentID{Value: rt.AgentID.Value}
		if a := m.agentsByID[rt.AgentID.Value]; a != nil {
			switch {
			case a.gone:
				st.State, msg = mesos.TASK_GONE_BY_OPERATOR.Enum(), "Reconciliation: Task is gone"
			case !a.markedUnreachable():
				st.State, msg = mesos.TASK_GONE.Enum(), "Reconciliation: Task is unknown to the agent"
			default:
				st.State, msg = mesos.TASK_UNREACHABLE.Enum(), "Reconciliation: Task is unreachable"
				st.UnreachableTime = a.unreachableAt
			}
		}
	}
	st.Message = &msg
	return st
}

// latestContainerStatus is protobuf::getTaskContainerStatus: the container
// status of the task's latest status that has one.
func (t *task) latestContainerStatus() *mesos.ContainerStatus {
	for i := len(t.statuses) - 1; i >= 0; i-- {
		if cs := t.statuses[i].ContainerStatus; cs != nil {
			return cs
		}
	}
	return nil
}

// frameworkMessage delivers a scheduler MESSAGE to an executor (best effort).
func (m *Mesos) frameworkMessage(fw *framework, msg *scheduler.Call_Message) {
	e := m.agentExecutor(msg.AgentID.Value, fw.id, msg.ExecutorID.Value)
	if e == nil || !e.agent.reachable || e.exited {
		return
	}
	switch e.kind {
	case execSim:
		m.simMessage(e, msg.Data)
	case execCustom:
		m.executorMessage(e, msg.Data)
	}
}

// agentExecutor finds an executor by agent, framework and executor id (executor ids
// are unique per agent only).
func (m *Mesos) agentExecutor(agentID, fwID, execID string) *executor {
	a := m.agentsByID[agentID]
	if a == nil {
		return nil
	}
	return a.executors[fwID+"/"+execID]
}

// executorToScheduler sends an executor's framework message to its scheduler.
func (m *Mesos) executorToScheduler(e *executor, data []byte) {
	fw := e.fw
	if !e.agent.reachable {
		// Slave::executorMessage drops it while disconnected: best effort
		m.log.V(1).Info("dropping executor message: agent is disconnected", "agent", e.agent.id, "executor", e.id)
		return
	}
	if !fw.connected || fw.stream == nil {
		return
	}
	fw.stream.send(&scheduler.Event{Type: scheduler.Event_MESSAGE, Message: &scheduler.Event_Message{
		AgentID:    mesos.AgentID{Value: e.agent.id},
		ExecutorID: mesos.ExecutorID{Value: e.id},
		Data:       data,
	}})
}

// shutdownExecutor runs a SHUTDOWN call.
func (m *Mesos) shutdownExecutor(fw *framework, agentID, execID string) {
	e := m.agentExecutor(agentID, fw.id, execID)
	if e == nil || e.exited || !e.agent.reachable {
		return
	}
	switch e.kind {
	case execCustom:
		m.executorShutdown(e)
	default:
		for _, t := range e.tasks {
			if !isTerminal(t.agentState) {
				m.killTask(t, nil)
			}
		}
	}
}
