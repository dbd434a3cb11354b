package localmesos

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	masterpb "github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// errAgentNotFound: MARK_AGENT_GONE names no agent the master knows.
var errAgentNotFound = errors.New("agent not found")

// serveOperator is POST /api/v1 (and /master/api/v1), the v1 operator API,
// answering as Master::Http::api (src/master/http.cpp) does: the request
// checks in its order, validation::master::call::validate's messages, then
// the call. Only MARK_AGENT_GONE is implemented; other calls are 501.
func (m *Mesos) serveOperator(ms *master, w http.ResponseWriter, r *http.Request) {
	if ms != nil && !m.redirectOperator(ms, w, r) {
		return
	}
	if !postOnly(w, r) {
		return
	}
	var call masterpb.Call
	codec, body, ok := m.readCall(w, r, &call)
	if !ok {
		return
	}
	msg := ""
	if _, known := masterpb.Call_Type_name[int32(call.Type)]; !known || !hasField(codec, body, "type", 1) {
		msg = "Expecting 'type' to be present"
	} else if call.Type == masterpb.Call_MARK_AGENT_GONE && call.MarkAgentGone == nil {
		msg = "Expecting 'mark_agent_gone' to be present"
	}
	if msg != "" {
		http.Error(w, "Failed to validate master::Call: "+msg, http.StatusBadRequest)
		return
	}
	if _, ok := negotiate(r); !ok {
		http.Error(w, fmt.Sprintf("Expecting 'Accept' to allow '%s' or '%s'", codecs.MediaTypeProtobuf, codecs.MediaTypeJSON), http.StatusNotAcceptable)
		return
	}
	switch call.Type {
	case masterpb.Call_MARK_AGENT_GONE:
		id := call.MarkAgentGone.AgentID.Value
		switch err := m.markAgentGoneByID(id); {
		case errors.Is(err, errAgentNotFound):
			http.Error(w, "Agent '"+id+"' not found", http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	case masterpb.Call_UNKNOWN:
		w.WriteHeader(http.StatusNotImplemented)
	default:
		http.Error(w, "localmesos does not implement master::Call "+call.Type.String(), http.StatusNotImplemented)
	}
}

// redirectOperator answers 307 from a non-leading master to the same path on
// the leader (Master::Http::redirect); true if ms leads.
func (m *Mesos) redirectOperator(ms *master, w http.ResponseWriter, r *http.Request) bool {
	m.mu.Lock()
	leader := m.masters[m.leader]
	m.mu.Unlock()
	if leader == ms {
		return true
	}
	w.Header().Set("Location", "//"+leader.hostport()+r.URL.Path)
	w.WriteHeader(http.StatusTemporaryRedirect)
	return false
}

// MarkAgentGone marks an agent (by id or hostname) gone, as the operator API's
// MARK_AGENT_GONE does (see markGone). Marking a gone agent again is a no-op.
func (m *Mesos) MarkAgentGone(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.findAgent(key)
	if err != nil {
		return err
	}
	if !a.gone {
		m.markGone(a)
	}
	return nil
}

// markAgentGoneByID is Master::Http::_markAgentGone: an agent already gone
// is answered OK; one the master does not know is not found.
func (m *Mesos) markAgentGoneByID(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agentsByID[id]
	if a == nil {
		return errAgentNotFound
	}
	if m.closed {
		return errors.New("Master has not finished recovery") // shutting down: retryable
	}
	if !a.gone {
		m.markGone(a)
	}
	return nil
}

// markGone is Master::markGone and __removeSlave without an unreachable
// time (src/master/master.cpp), m.mu held. The agent is removed for good:
// its offers are rescinded; every task the master tracks on it, running or
// unreachable, gets TASK_GONE_BY_OPERATOR with REASON_AGENT_REMOVED_BY_OPERATOR
// (TASK_LOST with REASON_AGENT_REMOVED without PARTITION_AWARE), SOURCE_MASTER,
// no uuid, and moves to completed_tasks; its executors are removed. A
// registered agent is shut down at once (ShutdownMessage: its processes are
// killed) and every framework gets FAILURE{agent_id} (sendSlaveLost); an
// unreachable one, whose frameworks already got FAILURE, is told to shut down
// when it tries to re-register (RestoreAgent). Its reservations and
// volumes go with it: it is never offered again nor listed in /master/state,
// and reconciling a task on it answers TASK_GONE_BY_OPERATOR.
func (m *Mesos) markGone(a *agent) {
	registered := !a.markedUnreachable()
	if p := a.partition; p != nil {
		p.timer.Stop()
		a.partition = nil
	}
	a.gone, a.reachable = true, false
	m.rescindAgentOffers(a)
	var procs []*process
	for _, t := range agentTasks(a) {
		if !isTerminal(t.state) {
			m.taskGone(t)
		}
		if t.proc != nil {
			procs = append(procs, t.proc)
		}
		if t.simTimer != nil {
			t.simTimer.Stop()
		}
		t.killing, t.pending = true, nil
		m.forgetTask(t)
	}
	for k, e := range a.executors {
		if e.proc != nil {
			procs = append(procs, e.proc)
		}
		e.shuttingDown = true
		if e.stream != nil {
			e.stream.close()
			e.stream = nil
		}
		m.removeExecutor(e)
		delete(a.executors, k)
	}
	if registered {
		for _, p := range procs {
			p.signal(syscall.SIGCONT)
			p.terminate(3 * time.Second)
		}
		for _, fw := range m.fwOrder {
			if fw.connected && fw.stream != nil {
				fw.stream.send(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{AgentID: &mesos.AgentID{Value: a.id}}})
			}
		}
	} else {
		a.goneProcs = append(a.goneProcs, procs...)
	}
	m.log.Info("agent marked gone", "agent", a.id, "hostname", a.hostname, "wasRegistered", registered, "processesLeft", len(a.goneProcs))
}

// taskGone sends and records a task's TASK_GONE_BY_OPERATOR.
func (m *Mesos) taskGone(t *task) {
	msg := "Agent has been marked gone"
	reason := mesos.REASON_AGENT_REMOVED_BY_OPERATOR
	if !t.fw.partitionAware {
		reason = mesos.REASON_AGENT_REMOVED
	}
	st := mesos.TaskStatus{
		TaskID:    t.info.TaskID,
		State:     mesos.TASK_GONE_BY_OPERATOR.Enum(),
		Source:    mesos.SOURCE_MASTER.Enum(),
		Reason:    reason.Enum(),
		Message:   &msg,
		AgentID:   &mesos.AgentID{Value: t.agent.id},
		Timestamp: ptrFloat(now()),
	}
	if t.exec != nil && t.exec.hasExecutorID() {
		st.ExecutorID = &mesos.ExecutorID{Value: t.exec.id}
	}
	t.state = mesos.TASK_GONE_BY_OPERATOR
	t.unreach = nil
	t.record(st)
	m.freeTask(t)
	m.sendStatus(t.fw, st)
}

// agentTasks lists an agent's tasks in a stable order (by task id).
func agentTasks(a *agent) []*task {
	out := make([]*task, 0, len(a.tasks))
	for t := range a.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// shutdownGone is a gone agent trying to re-register (m.mu held): the master
// answers with a ShutdownMessage ("Agent has been marked gone") and the agent
// kills everything it still ran.
func (m *Mesos) shutdownGone(a *agent) {
	for _, p := range a.goneProcs {
		p.killNow()
	}
	m.log.Info("gone agent tried to re-register: shut down", "agent", a.id, "hostname", a.hostname, "processes", len(a.goneProcs))
	a.goneProcs = nil
}
