package executor

import (
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Environment variable names of the contract with the controller (controller/doc.go).
const (
	EnvTaskCommand     = "CONVERGE_TASK_COMMAND"
	EnvPositionCommand = "CONVERGE_POSITION_COMMAND"
	EnvPromoteCommand  = "CONVERGE_PROMOTE_COMMAND"
	EnvNamespace       = "CONVERGE_NAMESPACE"
	EnvCluster         = "CONVERGE_CLUSTER"
	EnvOrdinal         = "CONVERGE_ORDINAL"
	EnvTaskID          = "CONVERGE_TASK_ID"
	EnvEpoch           = "CONVERGE_EPOCH"
)

// lookupEnv returns the last value of key in env ("KEY=value" entries), as
// os/exec would pass it on.
func lookupEnv(env []string, key string) (string, bool) {
	prefix := key + "="
	for i := len(env) - 1; i >= 0; i-- {
		if strings.HasPrefix(env[i], prefix) {
			return env[i][len(prefix):], true
		}
	}
	return "", false
}

// setEnv returns env with key set to value, replacing every earlier entry for key.
func setEnv(env []string, key, value string) []string {
	prefix := key + "="
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return append(out, prefix+value)
}

// taskPorts lists the ports of the task's "ports" resources, in order.
func taskPorts(task *mesos.TaskInfo) []uint64 {
	var ports []uint64
	for _, r := range task.Resources {
		if r.Name != "ports" || r.Ranges == nil {
			continue
		}
		for _, rg := range r.Ranges.Range {
			for p := rg.Begin; p <= rg.End && p-rg.Begin < 65536; p++ {
				ports = append(ports, p)
			}
		}
	}
	return ports
}

// taskEnv builds the environment of a task's process (and, with an epoch, of its
// hooks) from the executor's own environment base, as controller/doc.go says: the
// task's environment is the executor's. Values the controller did not set but
// that can be derived are added: MESOS_TASK_ID and CONVERGE_TASK_ID, PORT0..n and
// PORTS from the task's port resources (only when PORT0 is absent), the variables
// of the TaskInfo's own CommandInfo environment (not used by the controller, which
// Mesos forbids, but honoured), and MESOS_SANDBOX.
func taskEnv(base []string, task *mesos.TaskInfo, sandbox string) []string {
	env := append([]string(nil), base...)
	if task != nil {
		id := task.TaskID.Value
		if _, ok := lookupEnv(env, "MESOS_TASK_ID"); !ok {
			env = setEnv(env, "MESOS_TASK_ID", id)
		}
		if _, ok := lookupEnv(env, EnvTaskID); !ok {
			env = setEnv(env, EnvTaskID, id)
		}
		if _, ok := lookupEnv(env, "PORT0"); !ok {
			ports := taskPorts(task)
			strs := make([]string, len(ports))
			for i, p := range ports {
				strs[i] = strconv.FormatUint(p, 10)
				env = setEnv(env, "PORT"+strconv.Itoa(i), strs[i])
			}
			if len(ports) > 0 {
				env = setEnv(env, "PORTS", strings.Join(strs, ","))
			}
		}
		if c := task.Command; c != nil && c.Environment != nil {
			for _, v := range c.Environment.Variables {
				if v.Value != nil && v.Name != "" {
					env = setEnv(env, v.Name, *v.Value)
				}
			}
		}
	}
	if _, ok := lookupEnv(env, "MESOS_SANDBOX"); !ok && sandbox != "" {
		env = setEnv(env, "MESOS_SANDBOX", sandbox)
	}
	return env
}

// hookEnv is taskEnv plus CONVERGE_EPOCH.
func hookEnv(base []string, task *mesos.TaskInfo, sandbox string, epoch int64) []string {
	return setEnv(taskEnv(base, task, sandbox), EnvEpoch, strconv.FormatInt(epoch, 10))
}

// command is what runs for a task.
type command struct {
	argv []string
}

// taskCommand chooses the task's command: CONVERGE_TASK_COMMAND from the
// executor's environment (the contract), else the TaskInfo's CommandInfo (a shell
// command, or with shell=false the value as the executable and arguments as argv).
// ok is false when there is none.
func taskCommand(base []string, task *mesos.TaskInfo) (command, bool) {
	if v, _ := lookupEnv(base, EnvTaskCommand); strings.TrimSpace(v) != "" {
		return command{argv: []string{"sh", "-c", v}}, true
	}
	if task == nil || task.Command == nil {
		return command{}, false
	}
	c := task.Command
	value := c.GetValue()
	if c.Shell == nil || *c.Shell {
		if strings.TrimSpace(value) == "" {
			return command{}, false
		}
		return command{argv: []string{"sh", "-c", value}}, true
	}
	if value == "" {
		return command{}, false
	}
	argv := []string{value}
	if len(c.Arguments) > 1 {
		argv = append(argv, c.Arguments[1:]...)
	}
	return command{argv: argv}, true
}
