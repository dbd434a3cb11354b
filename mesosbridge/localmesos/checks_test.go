package localmesos

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func f64(f float64) *float64 { return &f }

func shellCmd(cmd string) *mesos.CommandInfo {
	yes := true
	return &mesos.CommandInfo{Shell: &yes, Value: &cmd}
}

// fastHealth is a command health check at test speed: no delay or grace
// period, checks 50ms apart.
func fastHealth(cmd string, failures uint32) *mesos.HealthCheck {
	return &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: shellCmd(cmd),
		DelaySeconds: f64(0), IntervalSeconds: f64(0.05), TimeoutSeconds: f64(5), GracePeriodSeconds: f64(0), ConsecutiveFailures: &failures}
}

// TestHealthCheckConsecutiveFailures is Mesos's HealthCheckTest.ConsecutiveFailures
// (src/tests/health_check_tests.cpp) for the command executor
// (src/launcher/executor.cpp taskHealthUpdated): after RUNNING, one
// TASK_RUNNING update with healthy false and reason
// REASON_TASK_HEALTH_CHECK_STATUS_UPDATED per failure, and at
// consecutive_failures the executor kills the task: TASK_KILLED with
// healthy false.
func TestHealthCheckConsecutiveFailures(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	ti := cmdTask("sick", off, "exec sleep 60")
	ti.HealthCheck = fastHealth("exit 1", 3)
	s.mustCall(launch(off, ti))
	s.ack(s.update("sick", 5*time.Second, mesos.TASK_STARTING))
	s.ack(s.update("sick", 5*time.Second, mesos.TASK_RUNNING))
	for i := 1; i <= 3; i++ {
		st := s.update("sick", 5*time.Second)
		if st.GetState() != mesos.TASK_RUNNING || st.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED || st.Healthy == nil || *st.Healthy {
			t.Fatalf("update %d after RUNNING: %s %s healthy=%v", i, st.GetState(), st.GetReason(), st.Healthy)
		}
		s.ack(st)
	}
	st := s.update("sick", 5*time.Second)
	if st.GetState() != mesos.TASK_KILLED || st.Healthy == nil || *st.Healthy {
		t.Fatalf("after 3 failures: %s healthy=%v %q", st.GetState(), st.Healthy, st.GetMessage())
	}
	s.ack(st)
}

// TestCheckAndHealthCheckNoShadowing is Mesos's
// CommandExecutorCheckTest.CommandCheckAndHealthCheckNoShadowing
// (src/tests/check_tests.cpp): check updates (reason
// REASON_TASK_CHECK_STATUS_UPDATED, check_status with the exit code) and
// health updates each carry the other's latest value, and so does a
// reconciliation answer. A check status is sent when it changes.
func TestCheckAndHealthCheckNoShadowing(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	ready := filepath.Join(t.TempDir(), "ready")
	ti := cmdTask("db", off, "exec sleep 60")
	ti.HealthCheck = fastHealth("true", 3)
	ti.Check = &mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND, Command: &mesos.CheckInfo_Command{Command: *shellCmd("test -f " + ready)},
		DelaySeconds: f64(0), IntervalSeconds: f64(0.05), TimeoutSeconds: f64(5)}
	s.mustCall(launch(off, ti))
	s.ack(s.update("db", 5*time.Second, mesos.TASK_STARTING))
	s.ack(s.update("db", 5*time.Second, mesos.TASK_RUNNING))
	// The first health and check results, in either order.
	var health, check *mesos.TaskStatus
	for health == nil || check == nil {
		st := s.update("db", 5*time.Second, mesos.TASK_RUNNING)
		s.ack(st)
		switch st.GetReason() {
		case mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED:
			health = st
		case mesos.REASON_TASK_CHECK_STATUS_UPDATED:
			check = st
		default:
			t.Fatalf("unexpected update %s %s", st.GetState(), st.GetReason())
		}
	}
	if !health.GetHealthy() || check.CheckStatus.GetCommand().GetExitCode() != 1 {
		t.Fatalf("first results: healthy=%v, check %v", health.Healthy, check.CheckStatus)
	}
	last := health
	if check.GetTimestamp() > health.GetTimestamp() {
		last = check
	}
	if last.Healthy == nil || last.CheckStatus == nil {
		t.Fatalf("the later update does not carry both: healthy=%v check=%v", last.Healthy, last.CheckStatus)
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := s.update("db", 5*time.Second, mesos.TASK_RUNNING)
	s.ack(st)
	if st.GetReason() != mesos.REASON_TASK_CHECK_STATUS_UPDATED || st.CheckStatus.GetCommand().GetExitCode() != 0 || !st.GetHealthy() {
		t.Fatalf("after the check passes: %s healthy=%v check=%v", st.GetReason(), st.Healthy, st.CheckStatus)
	}
	s.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"db": off.AgentID.Value})))
	ev := s.wait(5*time.Second, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
	})
	if ev == nil {
		t.Fatal("no reconciliation answer")
	}
	if r := ev.Update.Status; !r.GetHealthy() || r.CheckStatus.GetCommand().GetExitCode() != 0 || r.CheckStatus.Command.ExitCode == nil {
		t.Fatalf("reconciliation answer: healthy=%v check=%v", r.Healthy, r.CheckStatus)
	}
}

// TestSimulatedChecks: under --simulate a task with a health check is
// reported healthy, and one with a check passing, once it runs.
func TestSimulatedChecks(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	ti := cmdTask("sim", off, "exec sleep 60")
	ti.HealthCheck = fastHealth("exit 1", 1)
	ti.Check = &mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}}
	s.mustCall(launch(off, ti))
	s.ack(s.update("sim", 5*time.Second, mesos.TASK_STARTING))
	s.ack(s.update("sim", 5*time.Second, mesos.TASK_RUNNING))
	h := s.update("sim", 5*time.Second, mesos.TASK_RUNNING)
	s.ack(h)
	c := s.update("sim", 5*time.Second, mesos.TASK_RUNNING)
	s.ack(c)
	if !h.GetHealthy() || h.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED ||
		!c.CheckStatus.GetTCP().GetSucceeded() || c.GetReason() != mesos.REASON_TASK_CHECK_STATUS_UPDATED {
		t.Fatalf("simulated: health %s %v, check %s %v", h.GetReason(), h.Healthy, c.GetReason(), c.CheckStatus)
	}
}

// TestInvalidHealthCheck: the master refuses a task whose health check has
// no command (common/validation.cpp validateHealthCheck): TASK_ERROR.
func TestInvalidHealthCheck(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	ti := cmdTask("bad", off, "exec sleep 60")
	ti.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND}
	s.mustCall(launch(off, ti))
	if st := s.update("bad", 5*time.Second); st.GetState() != mesos.TASK_ERROR {
		t.Fatalf("invalid health check: %s %q", st.GetState(), st.GetMessage())
	}
}
