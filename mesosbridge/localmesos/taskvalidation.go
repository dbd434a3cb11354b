package localmesos

import (
	"fmt"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/internal/checks"
)

// Task and executor validation as src/master/validation.cpp's task::validate,
// task::group::validate and executor::internal::validate, in their order and
// with their messages (an invalid task gets TASK_ERROR with the message).

// validateEnvironment is common::validation::validateEnvironment.
func validateEnvironment(env *mesos.Environment) string {
	if env == nil {
		return ""
	}
	for _, v := range env.Variables {
		switch v.GetType() {
		case mesos.Environment_Variable_SECRET:
			if v.Secret == nil {
				return "Environment variable '" + v.Name + "' of type 'SECRET' must have a secret set"
			}
			if v.Value != nil {
				return "Environment variable '" + v.Name + "' of type 'SECRET' must not have a value set"
			}
		case mesos.Environment_Variable_VALUE:
			if v.Value == nil {
				return "Environment variable '" + v.Name + "' of type 'VALUE' must have a value set"
			}
			if v.Secret != nil {
				return "Environment variable '" + v.Name + "' of type 'VALUE' must not have a secret set"
			}
		default:
			return "Environment variable of type 'UNKNOWN' is not allowed"
		}
	}
	return ""
}

// validateHealthCheck is common::validation::validateHealthCheck.
func validateHealthCheck(hc *mesos.HealthCheck) string {
	switch hc.Type {
	case mesos.HealthCheck_COMMAND:
		if hc.Command == nil {
			return "Expecting 'command' to be set for COMMAND health check"
		}
		if hc.Command.Value == nil {
			kind := "'executable path'"
			if hc.Command.GetShell() {
				kind = "'shell command'"
			}
			return "Command health check must contain " + kind
		}
		if msg := validateEnvironment(hc.Command.Environment); msg != "" {
			return "Health check's `CommandInfo` is invalid: " + msg
		}
	case mesos.HealthCheck_HTTP:
		if hc.HTTP == nil {
			return "Expecting 'http' to be set for HTTP health check"
		}
		if s := hc.HTTP.Scheme; s != nil && *s != "http" && *s != "https" {
			return "Unsupported HTTP health check scheme: '" + *s + "'"
		}
		if p := hc.HTTP.Path; p != nil && !strings.HasPrefix(*p, "/") {
			return "The path '" + *p + "' of HTTP health check must start with '/'"
		}
	case mesos.HealthCheck_TCP:
		if hc.TCP == nil {
			return "Expecting 'tcp' to be set for TCP health check"
		}
	default:
		return "'" + hc.Type.String() + "' is not a valid health check type"
	}
	for _, f := range []struct {
		v    *float64
		name string
	}{{hc.DelaySeconds, "delay_seconds"}, {hc.GracePeriodSeconds, "grace_period_seconds"}, {hc.IntervalSeconds, "interval_seconds"}, {hc.TimeoutSeconds, "timeout_seconds"}} {
		if f.v != nil && *f.v < 0 {
			return "Expecting '" + f.name + "' to be non-negative"
		}
	}
	return ""
}

// validateTaskFields is task::internal::validateTask, for LAUNCH and
// LAUNCH_GROUP alike: id, uniqueness, agent, kill policy, completion time,
// health check, resources, command environment.
func validateTaskFields(fw *framework, a *agent, ti *mesos.TaskInfo, batch map[string]bool) string {
	id := ti.TaskID.Value
	if msg := validateID(id); msg != "" {
		return msg
	}
	if t := fw.tasks[id]; t != nil && !t.forgotten && t.state == mesos.TASK_UNREACHABLE {
		return "Task reuses the ID of an unreachable task: " + id
	} else if (t != nil && !t.forgotten) || batch[id] {
		return "Task has duplicate ID: " + id
	}
	if ti.AgentID.Value != a.id {
		return "Task uses invalid agent " + ti.AgentID.Value + " while agent " + a.id + " is expected"
	}
	if kp := ti.KillPolicy; kp != nil && kp.GracePeriod != nil && kp.GracePeriod.Nanoseconds < 0 {
		return "Task's 'kill_policy.grace_period' must be non-negative"
	}
	if mc := ti.MaxCompletionTime; mc != nil && mc.Nanoseconds < 0 {
		return "Task's `max_completion_time` must be non-negative"
	}
	if ti.HealthCheck != nil {
		if msg := validateHealthCheck(ti.HealthCheck); msg != "" {
			return "Task uses invalid health check: " + msg
		}
	}
	if ti.Check != nil {
		// common::validation::validateCheckInfo, as the checker applies it.
		if err := checks.ValidateCheck(ti.Check); err != nil {
			return "Task uses invalid check: " + err.Error()
		}
	}
	if len(ti.Resources) == 0 {
		return "Task uses no resources"
	}
	if _, err := fromProto(ti.Resources); err != nil {
		return "Task uses invalid resources: " + err.Error()
	}
	if ti.Command != nil {
		if msg := validateEnvironment(ti.Command.Environment); msg != "" {
			return "Task's `CommandInfo` is invalid: " + msg
		}
	}
	return ""
}

// validateExecutorInfo is executor::internal::validate: type, id, shutdown
// grace period, command environment, framework id, resources, and
// compatibility with a live executor of the same id on the agent.
func validateExecutorInfo(fw *framework, a *agent, ex *mesos.ExecutorInfo) string {
	switch ex.Type {
	case mesos.ExecutorInfo_DEFAULT:
		if ex.Command != nil {
			return "'ExecutorInfo.command' must not be set for 'DEFAULT' executor"
		}
	case mesos.ExecutorInfo_CUSTOM:
		if ex.Command == nil {
			return "'ExecutorInfo.command' must be set for 'CUSTOM' executor"
		}
	}
	if msg := validateID(ex.ExecutorID.Value); msg != "" {
		return msg
	}
	if g := ex.ShutdownGracePeriod; g != nil && g.Nanoseconds < 0 {
		return "ExecutorInfo's 'shutdown_grace_period' must be non-negative"
	}
	if ex.Command != nil {
		if msg := validateEnvironment(ex.Command.Environment); msg != "" {
			return "Executor's `CommandInfo` is invalid: " + msg
		}
	}
	if ex.FrameworkID == nil {
		return "'ExecutorInfo.framework_id' must be set"
	}
	if ex.FrameworkID.Value != fw.id {
		return "ExecutorInfo has an invalid FrameworkID (Actual: " + ex.FrameworkID.Value + " vs Expected: " + fw.id + ")"
	}
	if _, err := fromProto(ex.Resources); err != nil {
		return "Executor uses invalid resources: " + err.Error()
	}
	if e := a.executors[fw.id+"/"+ex.ExecutorID.Value]; e != nil && !e.exited && !sameExecutor(&e.info, ex) {
		line := "------------------------------------------------------------\n"
		return "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.\n" +
			line + "Existing ExecutorInfo:\n" + e.info.String() + "\n" + line + "ExecutorInfo:\n" + ex.String() + "\n" + line
	}
	return ""
}

// sameExecutor is ExecutorInfo equality as type_utils.cpp's operator==
// (resources compared as a sum, not as a list).
func sameExecutor(a, b *mesos.ExecutorInfo) bool {
	ra, erra := fromProto(a.Resources)
	rb, errb := fromProto(b.Resources)
	if erra != nil || errb != nil || describe(ra) != describe(rb) {
		return false
	}
	x, y := *a, *b
	x.Resources, y.Resources = nil, nil
	return x.Equal(&y)
}

// validateLaunchExecutor is task::internal::validateExecutor for a LAUNCH
// task (the master has filled in the executor's framework id). It returns the
// resources the task takes: its own, plus a new executor's.
func validateLaunchExecutor(fw *framework, a *agent, ti *mesos.TaskInfo, avail res) (res, string) {
	if (ti.Command == nil) == (ti.Executor == nil) {
		return res{}, "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
	}
	need, _ := fromProto(ti.Resources)
	if ex := ti.Executor; ex != nil {
		if msg := validateExecutorInfo(fw, a, ex); msg != "" {
			return res{}, msg
		}
		if ex.Type != mesos.ExecutorInfo_UNKNOWN && ex.Type != mesos.ExecutorInfo_CUSTOM {
			return res{}, "'ExecutorInfo.type' must be 'CUSTOM'"
		}
		if ex.Command == nil {
			return res{}, "'ExecutorInfo.command' must be set"
		}
		key := fw.id + "/" + ex.ExecutorID.Value
		if e := a.executors[key]; e == nil || e.exited {
			er, _ := fromProto(ex.Resources)
			need.add(er)
		}
	}
	if !avail.contains(need) {
		return res{}, fmt.Sprintf("Total resources %s required by task and its executor is more than available %s", describe(need), describe(avail))
	}
	return need, ""
}

// Mesos's minimum resources of a task group's executor (MIN_CPUS, MIN_MEM).
const (
	minExecutorCPUs = 0.01
	minExecutorMem  = 32.0
)

// validateGroupExecutor is task::group::internal::validateExecutor. It
// returns what the group takes (its tasks, plus a new executor's resources).
func validateGroupExecutor(fw *framework, a *agent, ex *mesos.ExecutorInfo, tasks []mesos.TaskInfo, avail res) (res, string) {
	if msg := validateExecutorInfo(fw, a, ex); msg != "" {
		return res{}, msg
	}
	if ex.Type == mesos.ExecutorInfo_UNKNOWN {
		return res{}, "Unknown executor type"
	}
	for i := range tasks {
		if own := tasks[i].Executor; own != nil && !own.Equal(ex) {
			return res{}, "The `ExecutorInfo` of task '" + tasks[i].TaskID.Value + "' is different from executor '" + ex.ExecutorID.Value + "'"
		}
	}
	er, _ := fromProto(ex.Resources)
	name := "Executor '" + ex.ExecutorID.Value + "'"
	if !hasResource(ex.Resources, "cpus") || er.cpus < minExecutorCPUs {
		return res{}, fmt.Sprintf("%s uses less CPUs (%s) than the minimum required (%g)", name, orNone(ex.Resources, "cpus", fmt.Sprintf("%g", er.cpus)), minExecutorCPUs)
	}
	if !hasResource(ex.Resources, "mem") || er.mem < minExecutorMem {
		return res{}, fmt.Sprintf("%s uses less memory (%s) than the minimum required (%gMB)", name, orNone(ex.Resources, "mem", fmt.Sprintf("%gMB", er.mem)), minExecutorMem)
	}
	if !hasResource(ex.Resources, "disk") {
		return res{}, name + " uses no disk"
	}
	var need res
	for i := range tasks {
		r, _ := fromProto(tasks[i].Resources)
		need.add(r)
	}
	if e := a.executors[fw.id+"/"+ex.ExecutorID.Value]; e == nil || e.exited {
		need.add(er)
	}
	if !avail.contains(need) {
		return res{}, fmt.Sprintf("Total resources %s required by task group and its executor are more than available %s", describe(need), describe(avail))
	}
	return need, ""
}

func hasResource(rs []mesos.Resource, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}

func orNone(rs []mesos.Resource, name, v string) string {
	if !hasResource(rs, name) {
		return "None"
	}
	return v
}
