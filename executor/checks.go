package executor

import (
	"context"
	"os"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/internal/checks"
)

// startChecks runs the task's health check and check (TaskInfo.health_check
// and check) once it is RUNNING, as Mesos's command executor does
// (src/launcher/executor.cpp taskHealthUpdated, taskCheckUpdated), with the
// same checker localmesos's executors use: each result is a TASK_RUNNING
// update carrying the task's latest health and check status; a health check
// asking for it kills the task, whose TASK_KILLED then says healthy false.
// Checks run in the sandbox with the task's environment and user; HTTP and
// TCP checks go to 127.0.0.1 (the agent's own loopback address under
// localmesos, LIBPROCESS_IP).
func (e *executorState) startChecks(t *task) {
	hc, ci := t.info.HealthCheck, t.info.Check
	if hc == nil && ci == nil {
		return
	}
	cred, err := userCredential(t.env)
	if err != nil {
		e.log.Error(err, "checks not started", "taskId", t.info.TaskID.Value)
		return
	}
	ip, _ := lookupEnv(t.env, "LIBPROCESS_IP")
	tgt := checks.Target{Dir: e.sandbox(), Env: t.env, Cred: cred, Host: checks.Host(ip), Output: os.Stderr}
	ctx, cancel := context.WithCancel(context.Background())
	e.mu.Lock()
	t.stopChecks = cancel
	e.mu.Unlock()
	if hc != nil {
		if err := checks.RunHealth(ctx, hc, tgt, func(h checks.HealthStatus) { e.healthResult(t, h) }); err != nil {
			// As Mesos's executors: logged, the task runs unchecked.
			e.log.Error(err, "health check not started", "taskId", t.info.TaskID.Value)
		}
	}
	if ci != nil {
		if err := checks.RunCheck(ctx, ci, tgt, func(st mesos.CheckStatusInfo) { e.checkResult(t, st) }); err != nil {
			e.log.Error(err, "check not started", "taskId", t.info.TaskID.Value)
		}
	}
}

// stopChecking ends the task's checkers; no result is sent after a kill or
// the task's end (Mesos's executors ignore those too).
func (e *executorState) stopChecking(t *task) {
	e.mu.Lock()
	stop := t.stopChecks
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (e *executorState) healthResult(t *task, h checks.HealthStatus) {
	e.mu.Lock()
	if t.killing || t.terminal {
		e.mu.Unlock()
		return
	}
	healthy := h.Healthy
	t.healthy = &healthy
	st := e.checkStatusLocked(t, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
	if h.KillTask {
		t.killedByHealth = true
	}
	e.mu.Unlock()
	e.log.Info("health check result", "taskId", t.info.TaskID.Value, "healthy", healthy, "consecutiveFailures", h.ConsecutiveFailures)
	e.sendStatus(st, nil)
	if h.KillTask {
		e.kill(t.info.TaskID.Value, nil, false)
	}
}

func (e *executorState) checkResult(t *task, cs mesos.CheckStatusInfo) {
	e.mu.Lock()
	if t.killing || t.terminal {
		e.mu.Unlock()
		return
	}
	t.checkStatus = &cs
	st := e.checkStatusLocked(t, mesos.REASON_TASK_CHECK_STATUS_UPDATED)
	e.mu.Unlock()
	e.sendStatus(st, nil)
}

// checkStatusLocked is the update "from the previous task status": TASK_RUNNING
// with the task's latest health and check status.
func (e *executorState) checkStatusLocked(t *task, reason mesos.TaskStatus_Reason) mesos.TaskStatus {
	st := e.newStatus(t.info.TaskID, mesos.TASK_RUNNING, "", reason.Enum())
	if t.healthy != nil {
		v := *t.healthy
		st.Healthy = &v
	}
	if t.checkStatus != nil {
		cs := *t.checkStatus
		st.CheckStatus = &cs
	}
	return st
}
