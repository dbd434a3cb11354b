package localmesos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// serveFault is POST /fault/...: see README.md.
func (m *Mesos) serveFault(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "Expecting a 'POST' request", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	var err error
	result := map[string]any{"ok": true}
	switch r.URL.Path {
	case "/fault/task/fail":
		err = m.FailTask(q.Get("task"))
	case "/fault/agent/lose":
		err = m.LoseAgent(q.Get("agent"))
	case "/fault/agent/partition":
		err = m.PartitionAgent(q.Get("agent"))
	case "/fault/agent/restore":
		err = m.RestoreAgent(q.Get("agent"))
	case "/fault/agent/gone":
		err = m.MarkAgentGone(q.Get("agent"))
	case "/fault/master/failover":
		m.FailoverMaster()
		result["leader"] = m.URL()
	case "/fault/updates":
		drop, dup := 0.0, 0.0
		if v := q.Get("drop"); v != "" {
			drop, err = strconv.ParseFloat(v, 64)
		}
		if v := q.Get("duplicate"); v != "" && err == nil {
			dup, err = strconv.ParseFloat(v, 64)
		}
		if err == nil {
			err = m.SetUpdateFaults(drop, dup)
		}
	case "/fault/offers/rescind":
		result["rescinded"] = m.RescindOffers()
	default:
		http.Error(w, "unknown fault "+r.URL.Path, http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(result)
}

// FailTask makes a running task fail (TASK_FAILED, as if its process crashed).
func (m *Mesos) FailTask(taskID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if taskID == "" {
		return fmt.Errorf("task id is required")
	}
	for _, fw := range m.fwOrder {
		t := fw.tasks[taskID]
		if t == nil || isTerminal(t.agentState) {
			continue
		}
		if t.agent.frozen() {
			return fmt.Errorf("task %s is on lost agent %s", taskID, t.agent.id)
		}
		if t.simTimer != nil {
			t.simTimer.Stop()
		}
		reason := mesos.REASON_COMMAND_EXECUTOR_FAILED
		m.agentStatus(t, mesos.TASK_FAILED, &reason, "Injected failure", mesos.SOURCE_EXECUTOR)
		if t.proc != nil {
			t.proc.killNow()
		}
		if t.exec.kind == execCustom {
			m.executorKill(t.exec, t, nil)
		}
		m.log.Info("fault: task failed", "task", taskID)
		return nil
	}
	return fmt.Errorf("no live task %q", taskID)
}

func (m *Mesos) findAgent(key string) (*agent, error) {
	if key == "" {
		return nil, fmt.Errorf("agent id or hostname is required")
	}
	if a := m.agentsByID[key]; a != nil {
		return a, nil
	}
	for _, a := range m.agents {
		if a.hostname == key {
			return a, nil
		}
	}
	return nil, fmt.Errorf("no agent %q", key)
}

// findLiveAgent is findAgent refusing an agent marked gone: it never
// comes back, so it cannot be lost or partitioned either.
func (m *Mesos) findLiveAgent(key string) (*agent, error) {
	a, err := m.findAgent(key)
	if err == nil && a.gone {
		return nil, fmt.Errorf("agent %s has been marked gone", a.id)
	}
	return a, err
}

// signalProcs sends sig to the processes of a's tasks and then to those of
// its executors (SIGSTOP), or the other way round (SIGCONT), so an executor
// never stands stopped while its tasks run.
func (a *agent) signalProcs(sig syscall.Signal) {
	var procs []*process
	for t := range a.tasks {
		if t.proc != nil {
			procs = append(procs, t.proc)
		}
	}
	for _, e := range a.executors {
		if e.proc != nil {
			procs = append(procs, e.proc)
		}
	}
	if sig == syscall.SIGCONT {
		slices.Reverse(procs)
	}
	for _, p := range procs {
		p.signal(sig)
	}
}

// LoseAgent partitions an agent (by id or hostname) from the master: its offers are
// rescinded, its tasks become TASK_UNREACHABLE (TASK_LOST without PARTITION_AWARE),
// frameworks get FAILURE{agent_id}, and its processes are stopped (SIGSTOP) until
// RestoreAgent.
func (m *Mesos) LoseAgent(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.findLiveAgent(key)
	if err != nil {
		return err
	}
	if !a.reachable {
		return nil
	}
	a.reachable = false
	m.rescindAgentOffers(a)
	a.signalProcs(syscall.SIGSTOP)
	m.markUnreachable(a, "Agent "+a.id+" is unreachable")
	m.log.Info("fault: agent lost", "agent", a.id, "hostname", a.hostname)
	return nil
}

// markUnreachable is the master's markUnreachable and __removeSlave
// (src/master/master.cpp): the agent's live tasks become TASK_UNREACHABLE (TASK_LOST
// without PARTITION_AWARE) with one unreachable_time, their resources are freed,
// and every framework gets FAILURE{agent_id} (sendSlaveLost).
func (m *Mesos) markUnreachable(a *agent, msg string) {
	ut := &mesos.TimeInfo{Nanoseconds: time.Now().UnixNano()}
	a.unreachableAt = ut
	for t := range a.tasks {
		if isTerminal(t.state) {
			continue
		}
		t.state = mesos.TASK_UNREACHABLE
		t.unreach = ut
		m.freeTask(t)
		msg := msg
		st := mesos.TaskStatus{
			TaskID:          t.info.TaskID,
			State:           mesos.TASK_UNREACHABLE.Enum(),
			Source:          mesos.SOURCE_MASTER.Enum(),
			Reason:          mesos.REASON_AGENT_REMOVED.Enum(),
			Message:         &msg,
			AgentID:         &mesos.AgentID{Value: a.id},
			Timestamp:       ptrFloat(now()),
			UnreachableTime: ut,
		}
		t.record(st) // Master::updateTask, before removeTask(unreachable)
		m.sendStatus(t.fw, st)
	}
	for _, fw := range m.fwOrder {
		if fw.connected && fw.stream != nil {
			fw.stream.send(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{AgentID: &mesos.AgentID{Value: a.id}}})
		}
	}
}

// RestoreAgent lets a lost agent re-register. As in Mesos 1.x, tasks of
// PARTITION_AWARE frameworks keep running and the master learns their state from
// the agent again (RUNNING, seen through reconciliation; unacknowledged updates are
// resent), while tasks of other frameworks are killed.
func (m *Mesos) RestoreAgent(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.findAgent(key)
	if err != nil {
		return err
	}
	if a.gone {
		m.shutdownGone(a)
		return nil
	}
	if a.reachable {
		return nil
	}
	if a.partition != nil {
		m.healPartition(a)
		return nil
	}
	a.reachable = true
	a.signalProcs(syscall.SIGCONT)
	for t := range a.tasks {
		if !t.fw.partitionAware && t.state == mesos.TASK_UNREACHABLE {
			t.state = mesos.TASK_KILLED
			m.destroyTask(t)
			continue
		}
		m.readmitTask(t, false)
		if t.exec.kind == execSim && t.agentState == mesos.TASK_STARTING && !t.killing {
			m.armSimRun(t)
		}
		m.resendPending(t)
	}
	m.log.Info("fault: agent restored", "agent", a.id, "hostname", a.hostname)
	return nil
}

// partition is an agent's cut from the master (/fault/agent/partition).
type partition struct {
	timer *time.Timer // the master's health checks giving up on the agent
	// unreachable: the master has marked the agent unreachable
	unreachable bool
	// kills: tasks whose KILL the master could not deliver; sent when the agent
	// re-registers unless it was marked unreachable meanwhile (Master::kill keeps
	// them in Slave::killedTasks for reconcileKnownSlave; __removeSlave deletes
	// the Slave, and them with it)
	kills map[*task]struct{}
}

// frozen: the agent's processes are stopped (/fault/agent/lose), so nothing
// happens on it. A partitioned agent runs on.
func (a *agent) frozen() bool { return !a.reachable && a.partition == nil }

// markedUnreachable: the master counts the agent as unreachable (lost, or
// partitioned for longer than AgentUnreachableAfter).
func (a *agent) markedUnreachable() bool {
	return !a.gone && !a.reachable && (a.partition == nil || a.partition.unreachable)
}

// PartitionAgent cuts an agent (by id or hostname) off from the master while its
// processes run on, as a network partition does. The master deactivates it at
// once, as on a broken connection (Master::exited -> disconnect -> deactivate in
// master.cpp: offers rescinded, no new ones). Nothing crosses: MESSAGE calls to
// its executors and its executors' messages are dropped (Slave::executorMessage
// drops them while disconnected); status updates stay in the agent's status
// update manager until RestoreAgent (it is paused, task_status_update_manager.cpp).
// After AgentUnreachableAfter the master marks the agent unreachable, as when it
// fails its health checks (SlaveObserver::timeout -> Master::markUnreachable).
func (m *Mesos) PartitionAgent(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.findLiveAgent(key)
	if err != nil {
		return err
	}
	if a.partition != nil {
		return nil
	}
	if !a.reachable {
		return fmt.Errorf("agent %s is lost: restore it first", a.id)
	}
	p := &partition{kills: map[*task]struct{}{}}
	a.reachable, a.partition = false, p
	m.rescindAgentOffers(a)
	p.timer = time.AfterFunc(m.opts.AgentUnreachableAfter, func() { m.partitionTimedOut(a, p) })
	m.log.Info("fault: agent partitioned", "agent", a.id, "hostname", a.hostname, "unreachableAfter", m.opts.AgentUnreachableAfter)
	return nil
}

func (m *Mesos) partitionTimedOut(a *agent, p *partition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || a.partition != p {
		return // healed meanwhile
	}
	p.unreachable = true
	p.kills = nil
	m.markUnreachable(a, "health check timed out")
	m.log.Info("fault: partitioned agent marked unreachable", "agent", a.id, "hostname", a.hostname)
}

// killLater records a KILL for a task of a partitioned agent (m.mu held).
func (p *partition) killLater(t *task) {
	if !p.unreachable {
		p.kills[t] = struct{}{}
	}
}

// healPartition lets a partitioned agent re-register (m.mu held). Its
// processes ran on, so the agent reports each task's latest state. If the master
// had marked the agent unreachable, it re-admits it as __reregisterSlave does
// (master.cpp, Mesos >= 1.5, MESOS-6406/MESOS-8337): it tracks every task again
// and sends its framework, partition-aware or not, an update with the agent's
// state (SOURCE_MASTER, REASON_AGENT_REREGISTERED, no uuid); no task is killed.
// Otherwise the agent was still registered (___reregisterSlave ->
// reconcileKnownSlave): the KILLs the master could not deliver are sent now.
// Either way the agent's status update manager resumes: each task's oldest
// unacknowledged update is resent at once (TaskStatusUpdateManagerProcess::resume).
func (m *Mesos) healPartition(a *agent) {
	p := a.partition
	p.timer.Stop()
	a.reachable, a.partition = true, nil
	for t := range a.tasks {
		m.readmitTask(t, p.unreachable)
	}
	for t := range a.tasks {
		m.resendPending(t)
	}
	for t := range p.kills {
		if !t.forgotten && !isTerminal(t.agentState) {
			m.killTask(t, nil)
		}
	}
	m.log.Info("fault: partition healed", "agent", a.id, "hostname", a.hostname, "wasUnreachable", p.unreachable)
}

// resendPending resends a re-registered agent's oldest unacknowledged update
// of t at once, its resend interval back at the first.
func (m *Mesos) resendPending(t *task) {
	if len(t.pending) > 0 {
		t.resendIval = m.opts.ResendInterval
		m.forward(t)
	}
}

// readmitTask takes a re-registering agent's view of a task as the master's.
func (m *Mesos) readmitTask(t *task, wasUnreachable bool) {
	t.state = t.agentState
	t.unreach = nil
	if n := len(t.pending); n > 0 {
		t.last = t.pending[n-1]
	}
	if isTerminal(t.state) {
		m.freeTask(t)
	} else if t.freed {
		t.freed = false
		t.agent.used.add(t.res)
	}
	if !wasUnreachable {
		return
	}
	msg := "Unreachable agent re-reregistered" // sic, master.cpp
	st := mesos.TaskStatus{
		TaskID:    t.info.TaskID,
		State:     t.state.Enum(),
		Source:    mesos.SOURCE_MASTER.Enum(),
		Reason:    mesos.REASON_AGENT_REREGISTERED.Enum(),
		Message:   &msg,
		AgentID:   &mesos.AgentID{Value: t.agent.id},
		Timestamp: ptrFloat(now()),
		Healthy:   t.last.Healthy,
	}
	if t.exec != nil && t.exec.hasExecutorID() {
		st.ExecutorID = &mesos.ExecutorID{Value: t.exec.id}
	}
	if len(t.pending) == 0 {
		t.last = st
	}
	m.sendStatus(t.fw, st)
}

// FailoverMaster drops every scheduler stream, as a dying master does; with several
// masters, leadership moves to the next one. Frameworks must re-subscribe at the new
// leader; until they do they are kept as "recovered" frameworks (not removed), as a
// new Mesos master keeps the frameworks it learns of from re-registering agents.
func (m *Mesos) FailoverMaster() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leader = (m.leader + 1) % len(m.masters)
	for _, fw := range m.fwOrder {
		if fw.connected {
			m.disconnectFramework(fw, false)
		}
	}
	m.log.Info("fault: master failover", "leader", m.masters[m.leader].hostport())
}

// SetUpdateFaults makes the agents drop and/or duplicate forwarded status updates
// with the given probabilities (dropped updates are resent later).
func (m *Mesos) SetUpdateFaults(drop, duplicate float64) error {
	if drop < 0 || drop > 1 || duplicate < 0 || duplicate > 1 {
		return fmt.Errorf("probabilities must be in [0,1]")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropP, m.dupP = drop, duplicate
	return nil
}

// RescindOffers rescinds every outstanding offer; it returns how many.
func (m *Mesos) RescindOffers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, o := range m.offers {
		m.rescind(o, true)
		n++
	}
	return n
}
