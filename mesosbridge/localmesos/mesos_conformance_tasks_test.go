package localmesos

// Task and task group validation, KILL and TEARDOWN, ported from Apache
// Mesos's src/tests/master_validation_tests.cpp, scheduler_tests.cpp and
// reconciliation_tests.cpp and from src/master/validation.cpp and master.cpp.
// Each test names the Mesos tests it ports.

import (
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// wantError waits for a master's TASK_ERROR for task id and checks its reason
// and message (a trailing "*" in want matches a prefix).
func (s *sched) wantError(id string, reason mesos.TaskStatus_Reason, want string) {
	s.t.Helper()
	st := s.update(id, 2*time.Second)
	msg := st.GetMessage()
	ok := msg == want
	if p, prefix := strings.CutSuffix(want, "*"); prefix {
		ok = strings.HasPrefix(msg, p)
	}
	if st.GetState() != mesos.TASK_ERROR || st.GetReason() != reason || st.GetSource() != mesos.SOURCE_MASTER || len(st.UUID) != 0 || !ok {
		s.t.Errorf("%s: %s %s %s uuid %x %q, want TASK_ERROR %s from the master, no uuid, %q",
			id, st.GetState(), st.GetReason(), st.GetSource(), st.UUID, msg, reason, want)
	}
}

// Ported: TaskValidationTest.{TaskUsesNoResources,
// TaskUsesMoreResourcesThanOffered, DuplicatedTaskID,
// TaskUsesCommandInfoAndExecutorInfo, TaskUsesExecutorInfoWithoutCommandInfo,
// TaskUsesDefaultExecutor, ExecutorUsesInvalidFrameworkID,
// ExecutorShutdownGracePeriodIsNonNegative, KillPolicyGracePeriodIsNonNegative,
// TaskEnvironmentInvalid, ExecutorEnvironmentInvalid,
// ExecutorInfoDiffersOnSameSlave, ExecutorMissingFrameworkID} and
// ExecutorValidationTest.ExecutorID (master_validation_tests.cpp), with
// task::internal::validateTask's id, agent, max_completion_time and health
// check rules (validation.cpp, common/validation.cpp).
func TestMesosTaskValidation(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	o := s.offers(1, 2*time.Second)[0]
	base := func(id string) mesos.TaskInfo { return cmdTask(id, o, "sleep 100") }
	withExec := func(id, execID, cmd string) mesos.TaskInfo {
		ti := base(id)
		ti.Command = nil
		ti.Executor = &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: execID}, Command: &mesos.CommandInfo{Value: &cmd},
			Resources: []mesos.Resource{scalar("cpus", 0.01), scalar("mem", 32)}}
		return ti
	}
	secretEnv := &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "ENV_VAR_KEY", Type: mesos.Environment_Variable_SECRET.Enum()}}}
	path := "health"
	cases := []struct {
		name string
		ti   mesos.TaskInfo
		want string // "" means valid
	}{
		{"valid, with a space in its id", base("a b"), ""},
		{"dup: first", base("dup"), ""},
		{"DuplicatedTaskID", base("dup"), "Task has duplicate ID: dup"},
		{"task id with a slash", base("a/b"), "'a/b' contains invalid characters"},
		{"task id ..", base(".."), "'..' is disallowed"},
		{"task id with a control character", base("a\x01"), "'a\x01' contains invalid characters"},
		{"wrong agent", func() mesos.TaskInfo { ti := base("agent"); ti.AgentID.Value = "nope"; return ti }(),
			"Task uses invalid agent nope while agent " + o.AgentID.Value + " is expected"},
		{"KillPolicyGracePeriodIsNonNegative", func() mesos.TaskInfo {
			ti := base("kp")
			ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: -1}}
			return ti
		}(), "Task's 'kill_policy.grace_period' must be non-negative"},
		{"max_completion_time", func() mesos.TaskInfo {
			ti := base("mct")
			ti.MaxCompletionTime = &mesos.DurationInfo{Nanoseconds: -1}
			return ti
		}(), "Task's `max_completion_time` must be non-negative"},
		{"health check path", func() mesos.TaskInfo {
			ti := base("hc")
			ti.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 80, Path: &path}}
			return ti
		}(), "Task uses invalid health check: The path 'health' of HTTP health check must start with '/'"},
		{"health check without type", func() mesos.TaskInfo {
			ti := base("hc2")
			ti.HealthCheck = &mesos.HealthCheck{}
			return ti
		}(), "Task uses invalid health check: 'UNKNOWN' is not a valid health check type"},
		{"TaskUsesNoResources", func() mesos.TaskInfo { ti := base("nores"); ti.Resources = nil; return ti }(), "Task uses no resources"},
		{"TaskEnvironmentInvalid", func() mesos.TaskInfo { ti := base("env"); ti.Command.Environment = secretEnv; return ti }(),
			"Task's `CommandInfo` is invalid: Environment variable 'ENV_VAR_KEY' of type 'SECRET' must have a secret set"},
		{"TaskUsesCommandInfoAndExecutorInfo", func() mesos.TaskInfo {
			ti := withExec("both", "e-both", "x")
			ti.Command = base("x").Command
			return ti
		}(), "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"},
		{"TaskUsesExecutorInfoWithoutCommandInfo", func() mesos.TaskInfo { ti := withExec("nocmd", "e-nocmd", "x"); ti.Executor.Command = nil; return ti }(),
			"'ExecutorInfo.command' must be set"},
		{"TaskUsesDefaultExecutor", func() mesos.TaskInfo {
			ti := withExec("dflt", "e-dflt", "x")
			ti.Executor.Command, ti.Executor.Type = nil, mesos.ExecutorInfo_DEFAULT
			return ti
		}(), "'ExecutorInfo.type' must be 'CUSTOM'"},
		{"ExecutorUsesInvalidFrameworkID", func() mesos.TaskInfo {
			ti := withExec("fwid", "e-fwid", "x")
			ti.Executor.FrameworkID = &mesos.FrameworkID{Value: "other"}
			return ti
		}(), "ExecutorInfo has an invalid FrameworkID (Actual: other vs Expected: " + s.fwID + ")"},
		{"ExecutorShutdownGracePeriodIsNonNegative", func() mesos.TaskInfo {
			ti := withExec("sgp", "e-sgp", "x")
			ti.Executor.ShutdownGracePeriod = &mesos.DurationInfo{Nanoseconds: -1}
			return ti
		}(), "ExecutorInfo's 'shutdown_grace_period' must be non-negative"},
		{"ExecutorEnvironmentInvalid", func() mesos.TaskInfo {
			ti := withExec("xenv", "e-xenv", "x")
			ti.Executor.Command.Environment = secretEnv
			return ti
		}(), "Executor's `CommandInfo` is invalid: Environment variable 'ENV_VAR_KEY' of type 'SECRET' must have a secret set"},
		{"ExecutorValidationTest.ExecutorID", withExec("xid", "e/x", "x"), "'e/x' contains invalid characters"},
		{"ExecutorMissingFrameworkID (the master fills it in)", withExec("same1", "e-same", "a"), ""},
		{"ExecutorInfoDiffersOnSameSlave", withExec("same2", "e-same", "b"), "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.*"},
		{"TaskUsesMoreResourcesThanOffered", cmdTask("big", o, "x", scalar("cpus", 1000), scalar("mem", 32)),
			"Total resources cpus:1000;mem:32;disk:0 required by task and its executor is more than available *"},
	}
	var tasks []mesos.TaskInfo
	for _, c := range cases {
		tasks = append(tasks, c.ti)
	}
	s.mustCall(launch(o, tasks...))
	for _, c := range cases {
		if c.want == "" {
			if st := s.update(c.ti.TaskID.Value, 2*time.Second); st.GetState() != mesos.TASK_STARTING {
				t.Errorf("%s: %s %q, want TASK_STARTING", c.name, st.GetState(), st.GetMessage())
			}
			continue
		}
		s.wantError(c.ti.TaskID.Value, mesos.REASON_TASK_INVALID, c.want)
	}
	// An invalid task never becomes a Task: not in /master/state at all.
	fs := m.State().Frameworks[0]
	if len(fs.Tasks) != 3 || len(fs.CompletedTasks) != 0 {
		t.Errorf("state: %d tasks, %d completed, want the 3 valid ones only", len(fs.Tasks), len(fs.CompletedTasks))
	}
}

// Ported: TaskGroupValidationTest.{ExecutorWithoutFrameworkId,
// TaskUsesDifferentExecutor, ExecutorEnvironmentInvalid, TaskEnvironmentInvalid}
// and ExecutorValidationTest.ExecutorType (master_validation_tests.cpp), with
// task::group::internal::validateExecutor's minimum executor resources
// (validation.cpp): every task of the group gets TASK_ERROR with
// REASON_TASK_GROUP_INVALID.
func TestMesosTaskGroupValidation(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	offers := s.offers(2, 2*time.Second)
	o := offers[0]
	group := func(mod func(*mesos.ExecutorInfo)) mesos.ExecutorInfo {
		ex := defaultExecutor("e")
		ex.FrameworkID = &mesos.FrameworkID{Value: s.fwID}
		mod(&ex)
		return ex
	}
	task := func(id string) mesos.TaskInfo {
		return mesos.TaskInfo{Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID, Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}}
	}
	other := defaultExecutor("other")
	cases := []struct {
		name  string
		ex    mesos.ExecutorInfo
		tasks []mesos.TaskInfo
		want  string
	}{
		{"ExecutorWithoutFrameworkId", group(func(ex *mesos.ExecutorInfo) { ex.FrameworkID = nil }), []mesos.TaskInfo{task("a1"), task("a2")},
			"'ExecutorInfo.framework_id' must be set"},
		{"TaskUsesDifferentExecutor", group(func(*mesos.ExecutorInfo) {}), []mesos.TaskInfo{task("b1"), func() mesos.TaskInfo { ti := task("b2"); ti.Executor = &other; return ti }()},
			"The `ExecutorInfo` of task 'b2' is different from executor 'e'"},
		{"ExecutorType: UNKNOWN", group(func(ex *mesos.ExecutorInfo) { ex.Type = mesos.ExecutorInfo_UNKNOWN }), []mesos.TaskInfo{task("c1")},
			"Unknown executor type"},
		{"ExecutorEnvironmentInvalid", group(func(ex *mesos.ExecutorInfo) {
			ex.Type, ex.Command = mesos.ExecutorInfo_CUSTOM, &mesos.CommandInfo{Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "K"}}}}
		}), []mesos.TaskInfo{task("d1")},
			"Executor's `CommandInfo` is invalid: Environment variable 'K' of type 'VALUE' must have a value set"},
		{"TaskEnvironmentInvalid", group(func(*mesos.ExecutorInfo) {}), []mesos.TaskInfo{task("e1"), func() mesos.TaskInfo {
			ti := task("e2")
			ti.Command = &mesos.CommandInfo{Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "K"}}}}
			return ti
		}()}, "Task 'e2' is invalid: Task's `CommandInfo` is invalid: Environment variable 'K' of type 'VALUE' must have a value set"},
		{"executor memory below MIN_MEM", group(func(ex *mesos.ExecutorInfo) {
			ex.Resources = []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 16), scalar("disk", 1)}
		}),
			[]mesos.TaskInfo{task("f1")}, "Executor 'e' uses less memory (16MB) than the minimum required (32MB)"},
		{"executor without cpus", group(func(ex *mesos.ExecutorInfo) { ex.Resources = []mesos.Resource{scalar("mem", 32), scalar("disk", 1)} }),
			[]mesos.TaskInfo{task("g1")}, "Executor 'e' uses less CPUs (None) than the minimum required (0.01)"},
		{"executor without disk", group(func(ex *mesos.ExecutorInfo) { ex.Resources = []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)} }),
			[]mesos.TaskInfo{task("h1")}, "Executor 'e' uses no disk"},
		{"task without resources", group(func(*mesos.ExecutorInfo) {}), []mesos.TaskInfo{task("i1"), func() mesos.TaskInfo { ti := task("i2"); ti.Resources = nil; return ti }()},
			"Task 'i2' is invalid: Task uses no resources"},
	}
	var ops calls.OfferOperations
	for _, c := range cases {
		ops = append(ops, calls.OpLaunchGroup(c.ex, c.tasks...))
	}
	s.mustCall(calls.Accept(ops.WithOffers(o.ID)).With(calls.RefuseSeconds(0)))
	for _, c := range cases {
		for _, ti := range c.tasks {
			s.wantError(ti.TaskID.Value, mesos.REASON_TASK_GROUP_INVALID, c.want)
		}
	}
	// A valid group launches.
	o = offers[1]
	s.mustCall(launchGroupCall(o, defaultExecutor("ok"), mesos.TaskInfo{Name: "ok", TaskID: mesos.TaskID{Value: "ok"}, AgentID: o.AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}}))
	if st := s.update("ok", 2*time.Second); st.GetState() != mesos.TASK_STARTING {
		t.Errorf("valid group: %s %q", st.GetState(), st.GetMessage())
	}
}

// Ported: TaskValidationTest.TaskReusesUnreachableTaskID
// (master_validation_tests.cpp): a task whose agent is unreachable keeps its
// id taken.
func TestMesosTaskReusesUnreachableTaskID(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	offers := s.offers(2, 2*time.Second)
	s.mustCall(launch(offers[0], cmdTask("t", offers[0], "sleep 100")))
	s.reach("t", 2*time.Second, mesos.TASK_RUNNING)
	if err := m.LoseAgent(offers[0].AgentID.Value); err != nil {
		t.Fatal(err)
	}
	st := s.update("t", 2*time.Second, mesos.TASK_UNREACHABLE)
	if st.GetReason() != mesos.REASON_AGENT_REMOVED || st.AgentID.GetValue() != offers[0].AgentID.Value || st.UnreachableTime == nil {
		t.Errorf("unreachable update: %v", st)
	}
	s.mustCall(launch(offers[1], cmdTask("t", offers[1], "sleep 100")))
	s.wantError("t", mesos.REASON_TASK_INVALID, "Task reuses the ID of an unreachable task: t")
}

// Ported: SchedulerTest.KillTask (scheduler_tests.cpp), Master::kill
// (master.cpp: a KILL naming another agent than the task's is ignored) and
// ReconciliationTest.UnknownKillTask (reconciliation_tests.cpp: a KILL of an
// unknown task is answered as an explicit reconciliation).
func TestMesosKillTask(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	offers := s.offers(2, 2*time.Second)
	o := offers[0]
	s.mustCall(launch(o, cmdTask("t", o, "sleep 100")))
	s.ack(s.reach("t", 2*time.Second, mesos.TASK_RUNNING))

	s.mustCall(calls.Kill("t", offers[1].AgentID.Value))
	if ev := s.wait(300*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_UPDATE }); ev != nil {
		t.Fatalf("KILL naming another agent answered: %v", ev.Update.Status)
	}
	if ts := m.State().Frameworks[0].Tasks; len(ts) != 1 || ts[0].State != "TASK_RUNNING" {
		t.Fatalf("after a KILL naming another agent: %+v", ts)
	}
	s.mustCall(calls.Kill("t", o.AgentID.Value))
	if st := s.update("t", 2*time.Second); st.GetState() != mesos.TASK_KILLED || len(st.UUID) != 16 {
		t.Fatalf("KILL: %v", st)
	}
	s.mustCall(calls.Kill("unknown", ""))
	if st := s.update("unknown", 2*time.Second); st.GetState() != mesos.TASK_LOST || st.GetReason() != mesos.REASON_RECONCILIATION ||
		st.GetMessage() != "Reconciliation: Task is unknown" || len(st.UUID) != 0 {
		t.Fatalf("KILL of an unknown task: %v", st)
	}
}

// Ported: SchedulerSSLTest.RunTaskAndTeardown (scheduler_tests.cpp) and
// Master::removeFramework / Framework::disconnect (master.cpp, framework.cpp):
// TEARDOWN closes the subscription stream without an event, kills the tasks
// (TASK_KILLED, REASON_FRAMEWORK_REMOVED, kept in the task's history) and
// lists the framework in completed_frameworks; its id cannot subscribe again.
func TestMesosTeardown(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	o := s.offers(1, 2*time.Second)[0]
	s.mustCall(launch(o, cmdTask("t", o, "sleep 100")))
	s.ack(s.reach("t", 2*time.Second, mesos.TASK_RUNNING))
	s.mustCall(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
	select {
	case <-s.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("stream still open after TEARDOWN")
	}
	for drained := false; !drained; {
		select {
		case ev := <-s.events:
			if ev.Type == scheduler.Event_ERROR {
				t.Errorf("ERROR event on TEARDOWN: %v", ev.Error)
			}
		default:
			drained = true
		}
	}
	st := m.State()
	if len(st.Frameworks) != 0 || len(st.CompletedFrameworks) != 1 {
		t.Fatalf("frameworks %d, completed %d; want 0, 1", len(st.Frameworks), len(st.CompletedFrameworks))
	}
	cf := st.CompletedFrameworks[0]
	if cf.ID != s.fwID || cf.Active || cf.Connected || cf.UnregisteredTime == 0 || len(cf.Tasks) != 0 || len(cf.CompletedTasks) != 1 {
		t.Fatalf("completed framework %+v", cf)
	}
	ct := cf.CompletedTasks[0]
	if last := ct.Statuses[len(ct.Statuses)-1]; ct.State != "TASK_KILLED" || last.State != "TASK_KILLED" {
		t.Errorf("completed task %+v", ct)
	}
	for _, a := range st.Slaves {
		if a.UsedResources.CPUs != 0 {
			t.Errorf("agent %s still uses %v", a.ID, a.UsedResources)
		}
	}
	fi := frameworkInfo("fw")
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	if ev := rawSubscribe(t, m.URL(), jsonCodec, fi); ev.Type != scheduler.Event_ERROR || ev.Error.Message != "Framework has been removed" {
		t.Errorf("re-subscribe after TEARDOWN: %v", ev)
	}
}

// Ported: Master::accept (master.cpp): operation feedback (an operation `id`)
// is not supported for launches; the tasks get TASK_ERROR.
func TestMesosLaunchWithOperationID(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	o := s.offers(1, 2*time.Second)[0]
	ex := defaultExecutor("g")
	ex.FrameworkID = &mesos.FrameworkID{Value: s.fwID}
	launchOp := calls.OpLaunch(cmdTask("l", o, "sleep 1"))
	launchOp.ID = &mesos.OperationID{Value: "op1"}
	groupOp := calls.OpLaunchGroup(ex, mesos.TaskInfo{Name: "g", TaskID: mesos.TaskID{Value: "g"}, AgentID: o.AgentID, Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}})
	groupOp.ID = &mesos.OperationID{Value: "op2"}
	s.mustCall(calls.Accept(calls.OfferOperations{launchOp, groupOp}.WithOffers(o.ID)))
	s.wantError("l", mesos.REASON_TASK_INVALID, "The `id` field cannot be set on LAUNCH operations")
	s.wantError("g", mesos.REASON_TASK_GROUP_INVALID, "The `id` field cannot be set on LAUNCH_GROUP operations")
}
