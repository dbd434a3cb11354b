package executor_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// TestExecutorChecks: converge executor runs its task's check and health
// check as Mesos's command executor does (src/launcher/executor.cpp;
// src/tests/health_check_tests.cpp ConsecutiveFailures, check_tests.cpp
// CommandCheckAndHealthCheckNoShadowing): TASK_RUNNING updates with
// check_status (REASON_TASK_CHECK_STATUS_UPDATED) when it changes and
// healthy (REASON_TASK_HEALTH_CHECK_STATUS_UPDATED), each carrying the
// other's latest value; at consecutive_failures the task is killed:
// TASK_KILLED with healthy false.
func TestExecutorChecks(t *testing.T) {
	bin := buildExecutor(t)
	work, dir := t.TempDir(), t.TempDir()
	_, s, ctx := startLocalMesos(t, work, false)
	o := s.takeOffer(15 * time.Second)
	ports := offerPorts(o)
	const id = "testns.db.0.checked"
	ti := memberTask(o, bin, id, 0, ports[0], `exec sleep 60`, "echo 1", "", dir, time.Second)
	zero, fast, two := 0.0, 0.05, uint32(2)
	sh := func(c string) mesos.CommandInfo { yes := true; return mesos.CommandInfo{Shell: &yes, Value: &c} }
	ready, sick := filepath.Join(dir, "ready"), filepath.Join(dir, "sick")
	// The task's environment reaches the checks: TEST_DIR is only there.
	ti.Check = &mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND, Command: &mesos.CheckInfo_Command{Command: sh(`test -f "$TEST_DIR/ready"`)},
		DelaySeconds: &zero, IntervalSeconds: &fast}
	hcCmd := sh(`test ! -f "$TEST_DIR/sick"`)
	ti.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &hcCmd,
		DelaySeconds: &zero, IntervalSeconds: &fast, GracePeriodSeconds: &zero, ConsecutiveFailures: &two}
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(ti)}.WithOffers(o.ID)))

	find := func(pred func(u mesos.TaskStatus) bool) (got mesos.TaskStatus, ok bool) {
		for _, u := range s.updates {
			if u.TaskID.Value == id && pred(u) {
				got, ok = u, true
			}
		}
		return got, ok
	}
	var st mesos.TaskStatus
	s.waitFor(20*time.Second, "a healthy update and a failing check", func() bool {
		_, h := find(func(u mesos.TaskStatus) bool { return u.GetHealthy() })
		c, ok := find(func(u mesos.TaskStatus) bool { return u.GetReason() == mesos.REASON_TASK_CHECK_STATUS_UPDATED })
		st = c
		return h && ok
	})
	if st.CheckStatus.GetCommand().GetExitCode() != 1 || st.CheckStatus.Command.ExitCode == nil || st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("first check update: %+v", st)
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.waitFor(10*time.Second, "the check passing, with healthy true", func() bool {
		st, _ = find(func(u mesos.TaskStatus) bool {
			return u.GetReason() == mesos.REASON_TASK_CHECK_STATUS_UPDATED && u.CheckStatus.GetCommand().ExitCode != nil && u.CheckStatus.Command.GetExitCode() == 0
		})
		return st.GetHealthy()
	})
	if err := os.WriteFile(sick, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	killed := s.waitState(id, mesos.TASK_KILLED, 10*time.Second)
	if killed.Healthy == nil || *killed.Healthy {
		t.Fatalf("TASK_KILLED after failing the health check: healthy=%v %q", killed.Healthy, killed.GetMessage())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unhealthy := 0
	for _, u := range s.updates {
		if u.TaskID.Value == id && u.GetReason() == mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED && !u.GetHealthy() {
			unhealthy++
			if u.CheckStatus.GetCommand().GetExitCode() != 0 || u.CheckStatus.Command.ExitCode == nil {
				t.Errorf("a health update does not carry the latest check status: %+v", u.CheckStatus)
			}
		}
	}
	if unhealthy != 2 {
		t.Errorf("%d unhealthy updates before the kill, want consecutive_failures = 2: %v", unhealthy, s.states(id))
	}
}
