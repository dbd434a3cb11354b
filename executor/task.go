package executor

import (
	"os"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/internal/proctree"
)

// sandbox is the directory tasks and hooks run in.
func (e *executorState) sandbox() string {
	if e.cfg.Sandbox != "" {
		return e.cfg.Sandbox
	}
	if e.cfg.Directory != "" {
		return e.cfg.Directory
	}
	wd, _ := os.Getwd()
	return wd
}

// launch handles LAUNCH.
func (e *executorState) launch(info mesos.TaskInfo) {
	id := info.TaskID.Value
	e.mu.Lock()
	if _, dup := e.tasks[id]; dup {
		e.mu.Unlock()
		e.log.Info("ignoring duplicate LAUNCH", "taskId", id)
		return
	}
	t := &task{
		info:   info,
		env:    taskEnv(e.env, &info, e.sandbox()),
		exited: make(chan struct{}),
	}
	if e.shuttingDown {
		// Killed before it started.
		t.killing = true
	}
	e.tasks[id] = t
	e.order = append(e.order, id)
	e.unackedTasks[id] = true
	e.mu.Unlock()
	e.log.Info("launching task", "taskId", id)
	e.wg.Add(1)
	go e.runTask(t)
}

// runTask runs a task's process from TASK_STARTING to its terminal update.
func (e *executorState) runTask(t *task) {
	defer e.wg.Done()
	id := t.info.TaskID
	e.update(id, mesos.TASK_STARTING, "", nil, nil)

	cmd, haveCmd := taskCommand(e.env, &t.info)
	e.mu.Lock()
	if t.killing {
		close(t.exited)
		e.mu.Unlock()
		e.update(id, mesos.TASK_KILLED, "killed before its command started",
			mesos.REASON_TASK_KILLED_DURING_LAUNCH.Enum(), t)
		return
	}
	if !haveCmd {
		close(t.exited)
		e.mu.Unlock()
		e.update(id, mesos.TASK_FAILED, "no command to run: "+EnvTaskCommand+" is empty and the task has no command",
			mesos.REASON_COMMAND_EXECUTOR_FAILED.Enum(), t)
		return
	}
	proc, err := startProcess(cmd.argv, e.sandbox(), t.env)
	if err != nil {
		close(t.exited)
		e.mu.Unlock()
		e.log.Error(err, "task process did not start", "taskId", id.Value)
		e.update(id, mesos.TASK_FAILED, err.Error(), mesos.REASON_COMMAND_EXECUTOR_FAILED.Enum(), t)
		return
	}
	pid := proc.Process.Pid
	t.pid = pid
	e.mu.Unlock()
	e.log.Info("task process started", "taskId", id.Value, "pid", pid)
	e.update(id, mesos.TASK_RUNNING, "", nil, nil)
	e.startChecks(t)

	waitErr := proc.Wait()
	e.stopChecking(t)
	// Whatever the command left behind in its process group goes with it, as
	// Mesos destroys a task's container.
	_ = signalGroup(pid, syscall.SIGKILL)
	code, how := describeExit(waitErr)
	e.mu.Lock()
	killed, unhealthy := t.killing, t.killedByHealth
	close(t.exited)
	e.mu.Unlock()
	e.log.Info("task process ended", "taskId", id.Value, "exit", how, "killed", killed)
	switch {
	case killed && unhealthy:
		// "Indicate that a kill occurred due to a failing health check."
		st := e.newStatus(id, mesos.TASK_KILLED, "command "+how+" after a kill for failing its health check", nil)
		no := false
		st.Healthy = &no
		e.sendStatus(st, t)
	case killed:
		e.update(id, mesos.TASK_KILLED, "command "+how+" after a kill", nil, t)
	case code == 0:
		e.update(id, mesos.TASK_FINISHED, "command "+how, nil, t)
	default:
		e.update(id, mesos.TASK_FAILED, "command "+how, mesos.REASON_COMMAND_EXECUTOR_FAILED.Enum(), t)
	}
}

// kill handles KILL (and SHUTDOWN, shutdown true): SIGTERM to the task's process
// group, the grace period, SIGKILL. The terminal TASK_KILLED is sent by runTask
// when the process has been reaped. Repeated kills of a task being killed are
// ignored; a kill for an unknown or terminal task is ignored (the agent answers
// for tasks it does not know the executor has).
func (e *executorState) kill(id string, policy *mesos.KillPolicy, shutdown bool) {
	e.mu.Lock()
	t := e.tasks[id]
	if t == nil {
		e.mu.Unlock()
		e.log.Info("KILL for an unknown task ignored", "taskId", id)
		return
	}
	if t.terminal || t.killing {
		e.mu.Unlock()
		return
	}
	t.killing = true
	if t.stopChecks != nil {
		t.stopChecks() // no check results after a kill
	}
	grace := e.grace(policy, t.info.KillPolicy, shutdown)
	t.killGrace = grace
	pid := t.pid
	sendKilling := false
	if e.framework != nil {
		for _, c := range e.framework.Capabilities {
			if c.GetType() == mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
				sendKilling = true
			}
		}
	}
	e.mu.Unlock()
	if pid == 0 {
		// runTask has not started the process and will see t.killing.
		return
	}
	e.log.Info("killing task", "taskId", id, "gracePeriod", grace.String())
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if sendKilling {
			e.update(t.info.TaskID, mesos.TASK_KILLING, "", nil, nil)
		}
		// The task's whole tree, also what left its group, as Mesos's
		// command executor does (os::killtree with groups and sessions).
		tree := taskTree(t, pid)
		if err := signalGroup(pid, syscall.SIGTERM); err != nil {
			e.log.Error(err, "SIGTERM", "taskId", id)
		}
		proctree.Signal(tree, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-t.exited:
			// runTask killed its group; the rest of its tree goes too.
			proctree.Signal(tree, syscall.SIGKILL)
			return
		case <-timer.C:
		}
		e.log.Info("grace period over, sending SIGKILL", "taskId", id, "processes", len(tree)+1)
		tree = append(tree, taskTree(t, pid)...)
		if err := signalGroup(pid, syscall.SIGKILL); err != nil {
			e.log.Error(err, "SIGKILL", "taskId", id)
		}
		proctree.Signal(tree, syscall.SIGKILL)
	}()
}

// taskTree lists the descendants of the task's process pid while it has not
// been reaped (after that pid may be another process's).
func taskTree(t *task, pid int) []proctree.Proc {
	select {
	case <-t.exited:
		return nil
	default:
		return proctree.Descendants(pid)
	}
}

// shutdownTasks kills every task (SHUTDOWN, or the executor stopping) and makes the
// executor finish once they are terminal.
func (e *executorState) shutdownTasks(reason string) {
	e.mu.Lock()
	e.shuttingDown = true
	ids := append([]string(nil), e.order...)
	e.mu.Unlock()
	e.log.Info("shutting down", "reason", reason, "tasks", len(ids))
	for _, id := range ids {
		e.kill(id, nil, true)
	}
	e.mu.Lock()
	e.maybeFinishLocked()
	e.mu.Unlock()
}
