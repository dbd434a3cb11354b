package localmesos

import (
	"context"
	"os"
	"path/filepath"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/internal/checks"
)

// startChecks runs a command task's health check and check once it is
// RUNNING, as Mesos's command executor and default executor do
// (src/launcher/executor.cpp, default_executor.cpp: taskHealthUpdated,
// taskCheckUpdated): each result becomes a TASK_RUNNING update carrying the
// task's latest health and check status, reason
// REASON_TASK_HEALTH_CHECK_STATUS_UPDATED or REASON_TASK_CHECK_STATUS_UPDATED,
// and a health check that asks for it kills the task, whose terminal update
// then says healthy: false. Called with m.mu held.
func (m *Mesos) startChecks(t *task, dir string, env []string, ra *runAs) {
	hc, ci := t.info.HealthCheck, t.info.Check
	if hc == nil && ci == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stopChecks = cancel
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tgt := checks.Target{Dir: dir, Env: env, Cred: ra.credential(), Host: checks.Host(t.agent.hostname),
		Output: appendFile(filepath.Join(dir, "stderr"))}
	if hc != nil {
		if err := checks.RunHealth(ctx, hc, tgt, func(h checks.HealthStatus) { m.healthResult(t, h) }); err != nil {
			// As Mesos's executors: logged, the task runs unchecked.
			m.log.Error(err, "health check not started", "task", t.id)
		}
	}
	if ci != nil {
		if err := checks.RunCheck(ctx, ci, tgt, func(st mesos.CheckStatusInfo) { m.checkResult(t, st) }); err != nil {
			m.log.Error(err, "check not started", "task", t.id)
		}
	}
}

// appendFile writes to the end of a file it opens for each write, so no
// descriptor outlives the checks: the sandbox's stderr, where Mesos's
// executors let their check commands write.
type appendFile string

func (f appendFile) Write(b []byte) (int, error) {
	fh, err := os.OpenFile(string(f), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	return fh.Write(b)
}

// checking reports whether a check result for t may still be sent: not
// after a kill or a terminal update (Mesos ignores those too), nor while
// its agent is frozen (lost: its executor would be gone with it).
func (m *Mesos) checking(t *task) bool {
	return !m.closed && !t.forgotten && !t.killing && t.agentState == mesos.TASK_RUNNING && !t.agent.frozen()
}

func (m *Mesos) healthResult(t *task, h checks.HealthStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.checking(t) {
		return
	}
	healthy := h.Healthy
	t.healthy = &healthy
	m.log.V(1).Info("task health", "task", t.id, "healthy", healthy, "consecutiveFailures", h.ConsecutiveFailures, "why", h.Why)
	m.checkUpdate(t, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
	if h.KillTask {
		t.killedByHealth = true
		m.killTask(t, nil)
	}
}

func (m *Mesos) checkResult(t *task, st mesos.CheckStatusInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.checking(t) {
		return
	}
	t.checkStatus = &st
	m.checkUpdate(t, mesos.REASON_TASK_CHECK_STATUS_UPDATED)
}

// checkUpdate is the executors' update "from the previous task status":
// TASK_RUNNING with the health and check status the task has now.
func (m *Mesos) checkUpdate(t *task, reason mesos.TaskStatus_Reason) {
	st := mesos.TaskStatus{
		TaskID:      t.info.TaskID,
		State:       mesos.TASK_RUNNING.Enum(),
		Source:      mesos.SOURCE_EXECUTOR.Enum(),
		Reason:      reason.Enum(),
		AgentID:     &mesos.AgentID{Value: t.agent.id},
		ExecutorID:  &mesos.ExecutorID{Value: t.exec.id},
		Timestamp:   ptrFloat(now()),
		UUID:        newUUID(),
		Healthy:     t.healthy,
		CheckStatus: t.checkStatus,
	}
	m.agentUpdate(t, st)
}

// simChecks is --simulate's stand-in for the checkers: a simulated task that
// has a health check is reported healthy, and one with a check passing, as
// soon as it runs.
func (m *Mesos) simChecks(t *task) {
	if t.info.HealthCheck != nil {
		yes := true
		t.healthy = &yes
		m.checkUpdate(t, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
	}
	if ci := t.info.Check; ci != nil {
		st := mesos.CheckStatusInfo{Type: ci.Type.Enum()}
		switch ci.Type {
		case mesos.CheckInfo_COMMAND:
			zero := int32(0)
			st.Command = &mesos.CheckStatusInfo_Command{ExitCode: &zero}
		case mesos.CheckInfo_HTTP:
			ok := uint32(200)
			st.HTTP = &mesos.CheckStatusInfo_Http{StatusCode: &ok}
		case mesos.CheckInfo_TCP:
			yes := true
			st.TCP = &mesos.CheckStatusInfo_Tcp{Succeeded: &yes}
		}
		t.checkStatus = &st
		m.checkUpdate(t, mesos.REASON_TASK_CHECK_STATUS_UPDATED)
	}
}
