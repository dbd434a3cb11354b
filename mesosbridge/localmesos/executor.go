package localmesos

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	execpb "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

const (
	executorRegistrationTimeout = time.Minute
	defaultExecutorGrace        = 5 * time.Second
)

// mesosDuration renders d the way Mesos's stringify(Duration) does ("5secs"), which
// is what mesos-go's executor/config parses.
func mesosDuration(d time.Duration) string {
	if d%time.Minute == 0 && d >= time.Minute {
		return strconv.FormatInt(int64(d/time.Minute), 10) + "mins"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "secs"
}

func executorGrace(e *executor) time.Duration {
	if e.info.ShutdownGracePeriod != nil && e.info.ShutdownGracePeriod.Nanoseconds > 0 {
		return time.Duration(e.info.ShutdownGracePeriod.Nanoseconds)
	}
	return defaultExecutorGrace
}

// deliver runs f on the executor's stream, or queues it until the executor subscribes.
func (e *executor) deliver(f func(s *stream)) {
	if e.exited {
		return
	}
	if e.stream != nil && e.subscribed {
		f(e.stream)
		return
	}
	e.queued = append(e.queued, f)
}

// launchOnExecutor starts the executor process if needed and sends it LAUNCH.
func (m *Mesos) launchOnExecutor(e *executor, t *task) {
	m.ensureExecutor(e)
	ti := t.info
	e.deliver(func(s *stream) {
		if isTerminal(t.agentState) {
			return // killed before the executor subscribed
		}
		t.delivered = true
		s.send(&execpb.Event{Type: execpb.Event_LAUNCH, Launch: &execpb.Event_Launch{Task: ti}})
	})
}

func (m *Mesos) ensureExecutor(e *executor) {
	if e.proc == nil && e.dir == "" {
		m.startExecutor(e)
	}
}

// launchGroupOnExecutor sends a task group as one LAUNCH_GROUP event.
func (m *Mesos) launchGroupOnExecutor(e *executor, tasks []mesos.TaskInfo) {
	e.deliver(func(s *stream) {
		var live []mesos.TaskInfo
		for _, ti := range tasks {
			if t := e.tasks[ti.TaskID.Value]; t != nil && !isTerminal(t.agentState) {
				t.delivered = true
				live = append(live, ti)
			}
		}
		if len(live) > 0 {
			s.send(&execpb.Event{Type: execpb.Event_LAUNCH_GROUP, LaunchGroup: &execpb.Event_LaunchGroup{TaskGroup: mesos.TaskGroupInfo{Tasks: live}}})
		}
	})
}

// startExecutor fetches the executor's URIs and runs its command with the
// environment a Mesos agent gives executors.
func (m *Mesos) startExecutor(e *executor) {
	dir := m.sandboxDir(e.agent, e.fw.id, e.id)
	e.dir = dir
	m.reuseSandbox(dir)
	var uris []mesos.CommandInfo_URI
	if e.info.Command != nil {
		uris = append(uris, e.info.Command.URIs...)
	}
	checkpoint := e.fw.info.GetCheckpoint()
	env := map[string]string{
		"MESOS_FRAMEWORK_ID":                   e.fw.id,
		"MESOS_EXECUTOR_ID":                    e.id,
		"MESOS_AGENT_ENDPOINT":                 m.agentEndpoint(e.agent),
		"MESOS_DIRECTORY":                      dir,
		"MESOS_SANDBOX":                        dir,
		"MESOS_AGENT_ID":                       e.agent.id,
		"MESOS_SLAVE_ID":                       e.agent.id,
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": mesosDuration(executorGrace(e)),
		"MESOS_CHECKPOINT":                     "0",
		"MESOS_HTTP_COMMAND_EXECUTOR":          "0",
		"HOST":                                 e.agent.hostname,
		"LIBPROCESS_IP":                        e.agent.hostname,
	}
	if checkpoint {
		env["MESOS_CHECKPOINT"] = "1"
		env["MESOS_RECOVERY_TIMEOUT"] = "15mins"
		env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = "2secs"
	}
	user := commandUser(e.fw, e.info.Command)
	// launch checked that the user exists; it may have gone since.
	ra, raErr := lookupRunAs(e.info.Command.GetUser())
	go func() {
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = m.fetcher.fetchAll(uris, dir, user)
		}
		var prepErr error
		if err == nil {
			prepErr = raErr
			if prepErr == nil {
				prepErr = ra.chownSandbox(dir)
			}
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closed || e.exited {
			return
		}
		if err != nil {
			m.executorExited(e, -1, "Failed to fetch executor URIs: "+err.Error())
			return
		}
		if prepErr != nil {
			m.executorExited(e, -1, "Failed to prepare the executor sandbox: "+prepErr.Error())
			return
		}
		argv, err := commandArgv(e.info.Command)
		if err != nil {
			m.executorExited(e, -1, "Failed to launch executor: "+err.Error())
			return
		}
		p, err := startProcess(dir, argv, envList(os.Environ(), env, e.info.Command), ra)
		if err != nil {
			m.executorExited(e, -1, "Failed to launch executor: "+err.Error())
			return
		}
		e.proc = p
		if e.agent.frozen() {
			p.signal(syscall.SIGSTOP)
		}
		m.log.V(1).Info("executor started", "framework", e.fw.id, "executor", e.id, "agent", e.agent.id, "pid", p.cmd.Process.Pid)
		time.AfterFunc(executorRegistrationTimeout, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if !e.subscribed && !e.exited && e.stream == nil {
				m.log.Info("executor did not subscribe in time; killing it", "executor", e.id)
				p.killNow()
			}
		})
		go func() {
			<-p.done
			code, _ := p.result()
			ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.closed {
				return
			}
			m.executorExited(e, int32(ws), fmt.Sprintf("Executor exited with status %d", code))
		}()
	}()
}

// executorExited is the agent's executorTerminated: unfinished tasks get
// TASK_KILLED (if being killed), TASK_LOST (the executor exited) or TASK_FAILED (it
// could not be launched), and the scheduler a FAILURE event.
func (m *Mesos) executorExited(e *executor, status int32, msg string) {
	if e.exited {
		return
	}
	if e.stream != nil {
		e.stream.close()
		e.stream = nil
	}
	e.subscribed = false
	e.queued = nil
	for _, t := range e.tasks {
		if isTerminal(t.agentState) {
			continue
		}
		reason := mesos.REASON_EXECUTOR_TERMINATED
		switch {
		case t.killing || e.shuttingDown:
			m.agentStatus(t, mesos.TASK_KILLED, &reason, msg, mesos.SOURCE_AGENT)
		case status < 0:
			// the executor could not be launched (fetch or exec failed)
			m.agentStatus(t, mesos.TASK_FAILED, &reason, msg, mesos.SOURCE_AGENT)
		default:
			// As the agent does for a custom executor that exits (TASK_FAILED is
			// for command executors and containers the agent destroyed).
			m.agentStatus(t, mesos.TASK_LOST, &reason, msg, mesos.SOURCE_AGENT)
		}
	}
	m.removeExecutor(e)
	if e.fw.connected && e.fw.stream != nil {
		e.fw.stream.send(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{
			AgentID:    &mesos.AgentID{Value: e.agent.id},
			ExecutorID: &mesos.ExecutorID{Value: e.id},
			Status:     &status,
		}})
	}
	m.log.V(1).Info("executor exited", "framework", e.fw.id, "executor", e.id, "status", status)
}

// executorAcknowledged tells an executor that the agent has stored its update, as
// Slave::___statusUpdate does once the status update manager has handled it
// (also for a duplicate, so that a re-sent update is acknowledged again). The
// scheduler's acknowledgement is the agent's business: the agent keeps resending
// the update until the scheduler acknowledges it. As on the agent, the event is
// dropped if the executor is not connected; it re-sends unacknowledged updates
// when it subscribes again and is acknowledged then.
func (m *Mesos) executorAcknowledged(e *executor, st mesos.TaskStatus) {
	if e.exited || e.stream == nil || !e.subscribed {
		return
	}
	e.stream.send(&execpb.Event{Type: execpb.Event_ACKNOWLEDGED, Acknowledged: &execpb.Event_Acknowledged{TaskID: st.TaskID, UUID: st.UUID}})
}

func (m *Mesos) executorKill(e *executor, t *task, kp *mesos.KillPolicy) {
	if !t.delivered {
		// Still queued for an executor that has not subscribed: the agent drops the
		// launch and answers for the task itself.
		if !isTerminal(t.agentState) {
			reason := mesos.REASON_TASK_KILLED_DURING_LAUNCH
			m.agentStatus(t, mesos.TASK_KILLED, &reason, "Killed before delivery to the executor", mesos.SOURCE_AGENT)
		}
		return
	}
	id := t.info.TaskID
	e.deliver(func(s *stream) {
		s.send(&execpb.Event{Type: execpb.Event_KILL, Kill: &execpb.Event_Kill{TaskID: id, KillPolicy: kp}})
	})
}

func (m *Mesos) executorMessage(e *executor, data []byte) {
	e.deliver(func(s *stream) {
		s.send(&execpb.Event{Type: execpb.Event_MESSAGE, Message: &execpb.Event_Message{Data: data}})
	})
}

// executorShutdown sends SHUTDOWN and kills the executor after its grace period.
func (m *Mesos) executorShutdown(e *executor) {
	if e.shuttingDown {
		return
	}
	e.shuttingDown = true
	e.deliver(func(s *stream) { s.send(&execpb.Event{Type: execpb.Event_SHUTDOWN}) })
	grace := executorGrace(e)
	time.AfterFunc(grace, func() {
		m.mu.Lock()
		p := e.proc
		exited := e.exited
		m.mu.Unlock()
		if p != nil && !exited {
			p.terminate(time.Second)
		}
	})
}

// serveExecutor is an agent's POST /api/v1/executor. Each agent (when tasks run for
// real) listens on its own hostname and port, like a Mesos agent, so that executor
// ids need only be unique per agent; on a master's address (a == nil) executors are
// found by framework and executor id alone.
func (m *Mesos) serveExecutor(a *agent, w http.ResponseWriter, r *http.Request) {
	if !postOnly(w, r) {
		return
	}
	codec, body, ok := readBody(w, r)
	if !ok {
		return
	}
	var call execpb.Call
	if err := decodeMessage(codec, body, &call); err != nil {
		http.Error(w, "Failed to parse body into Call protobuf: "+err.Error(), http.StatusBadRequest)
		return
	}
	if call.Type == execpb.Call_UNKNOWN {
		http.Error(w, "Expecting 'type' to be present", http.StatusBadRequest)
		return
	}
	if call.FrameworkID.Value == "" || call.ExecutorID.Value == "" {
		http.Error(w, "Expecting 'framework_id' and 'executor_id' to be present", http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	key := call.FrameworkID.Value + "/" + call.ExecutorID.Value
	e := m.executors[key]
	if a != nil {
		e = a.executors[key]
	}
	if e == nil || e.exited || e.kind != execCustom {
		m.mu.Unlock()
		http.Error(w, "Executor "+call.ExecutorID.Value+" of framework "+call.FrameworkID.Value+" cannot be found", http.StatusBadRequest)
		return
	}
	switch call.Type {
	case execpb.Call_SUBSCRIBE:
		m.mu.Unlock()
		m.serveExecutorSubscribe(w, r, e, &call)
		return
	case execpb.Call_UPDATE, execpb.Call_MESSAGE:
		// As the agent: Forbidden while the executor is still REGISTERING (never
		// subscribed); a subscribed executor whose connection broke may still call.
		if !e.everSubscribed {
			m.mu.Unlock()
			http.Error(w, "Executor is not subscribed", http.StatusForbidden)
			return
		}
	}
	switch call.Type {
	case execpb.Call_UPDATE:
		if call.Update == nil {
			m.mu.Unlock()
			http.Error(w, "Expecting 'update' to be present", http.StatusBadRequest)
			return
		}
		st := call.Update.Status
		if msg := m.executorUpdate(e, st); msg != "" {
			m.mu.Unlock()
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
	case execpb.Call_MESSAGE:
		if call.Message == nil {
			m.mu.Unlock()
			http.Error(w, "Expecting 'message' to be present", http.StatusBadRequest)
			return
		}
		m.executorToScheduler(e, call.Message.Data)
	case execpb.Call_HEARTBEAT:
	default:
		m.mu.Unlock()
		http.Error(w, "Received an unexpected call", http.StatusNotImplemented)
		return
	}
	m.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// executorUpdate takes a status update from an executor into the agent's stream.
func (m *Mesos) executorUpdate(e *executor, st mesos.TaskStatus) string {
	if len(st.UUID) != 16 {
		return "Expecting 'uuid' of 16 bytes in the status update"
	}
	if st.GetState() == mesos.TASK_STAGING {
		return "Received TASK_STAGING from executor"
	}
	t := e.tasks[st.TaskID.Value]
	if t == nil {
		if _, ok := e.completed[st.TaskID.Value]; ok {
			// A re-sent update of a task whose terminal update was acknowledged
			// and which the agent has forgotten: acknowledge it, forward nothing.
			m.executorAcknowledged(e, st)
			return ""
		}
		return "Task " + st.TaskID.Value + " is unknown to executor " + e.id
	}
	st.Source = mesos.SOURCE_EXECUTOR.Enum()
	st.AgentID = &mesos.AgentID{Value: e.agent.id}
	st.ExecutorID = &mesos.ExecutorID{Value: e.id}
	if st.Timestamp == nil {
		st.Timestamp = ptrFloat(now())
	}
	m.agentUpdate(t, st)
	m.executorAcknowledged(e, st)
	return ""
}

func (m *Mesos) serveExecutorSubscribe(w http.ResponseWriter, r *http.Request, e *executor, call *execpb.Call) {
	out, ok := negotiate(r)
	if !ok {
		http.Error(w, "Expecting 'Accept' to allow application/json or application/x-protobuf", http.StatusNotAcceptable)
		return
	}
	s := newStream(uuidString(newUUID()), out)
	if m.opts.ExecutorHeartbeatInterval > 0 {
		s.interval = m.opts.ExecutorHeartbeatInterval
		s.heartbeat = func() encoding.Marshaler { return &execpb.Event{Type: execpb.Event_HEARTBEAT} }
	}
	m.mu.Lock()
	if e.exited {
		m.mu.Unlock()
		http.Error(w, "Executor has exited", http.StatusBadRequest)
		return
	}
	if e.stream != nil {
		e.stream.close()
	}
	e.stream = s
	e.subscribed = true
	e.everSubscribed = true
	info := e.info
	info.FrameworkID = &mesos.FrameworkID{Value: e.fw.id}
	port := int32(e.agent.port())
	agentID := mesos.AgentID{Value: e.agent.id}
	s.send(&execpb.Event{Type: execpb.Event_SUBSCRIBED, Subscribed: &execpb.Event_Subscribed{
		ExecutorInfo:  info,
		FrameworkInfo: e.fw.info,
		AgentInfo: mesos.AgentInfo{
			Hostname:   e.agent.hostname,
			Port:       &port,
			Resources:  e.agent.total.proto(""),
			Attributes: e.agent.attrs,
			ID:         &agentID,
		},
		ContainerID: &mesos.ContainerID{Value: uuidString(newUUID())},
	}})
	if call.Subscribe != nil {
		// As Slave::subscribe: each is handled as an UPDATE, so one the agent
		// already has is acknowledged again but not forwarded again.
		for _, u := range call.Subscribe.UnacknowledgedUpdates {
			_ = m.executorUpdate(e, u.Status)
		}
	}
	queued := e.queued
	e.queued = nil
	for _, f := range queued {
		f(s)
	}
	m.mu.Unlock()

	w.Header().Set("Content-Type", out.Type.ContentType())
	s.serve(w, r, m.stop)

	m.mu.Lock()
	if e.stream == s {
		e.stream = nil
		e.subscribed = false
	}
	m.mu.Unlock()
}
