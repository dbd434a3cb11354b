package localmesos

import (
	"hash/fnv"
	"strconv"
	"time"

	"github.com/converge-io/converge/election"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// simLaunch drives a simulated task: TASK_STARTING now, TASK_RUNNING (or, with
// Sim.FailureRate, TASK_FAILED) after Sim.LaunchDelay.
func (m *Mesos) simLaunch(t *task) {
	m.agentStatus(t, mesos.TASK_STARTING, nil, "", mesos.SOURCE_EXECUTOR)
	m.armSimRun(t)
}

func (m *Mesos) armSimRun(t *task) {
	t.simTimer = time.AfterFunc(m.opts.Sim.LaunchDelay, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closed || t.forgotten || t.killing || t.agentState != mesos.TASK_STARTING {
			return
		}
		if t.agent.frozen() {
			return // frozen with its agent; restoreAgent re-arms it
		}
		if m.opts.Sim.FailureRate > 0 && m.rng.Float64() < m.opts.Sim.FailureRate {
			reason := mesos.REASON_COMMAND_EXECUTOR_FAILED
			m.agentStatus(t, mesos.TASK_FAILED, &reason, "Simulated failure", mesos.SOURCE_EXECUTOR)
			return
		}
		m.agentStatus(t, mesos.TASK_RUNNING, nil, "", mesos.SOURCE_EXECUTOR)
	})
}

// simPosition is the default election position of a simulated task: a number
// derived from its id, so runs are repeatable.
func simPosition(taskID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(taskID))
	return strconv.FormatUint(uint64(h.Sum32()%1000000), 10)
}

// simMessage answers election framework messages as converge's executor would:
// position-query -> position, promote -> promoted.
func (m *Mesos) simMessage(e *executor, data []byte) {
	msg, err := election.Decode(data)
	if err != nil {
		return
	}
	var t *task
	if msg.TaskID != "" {
		t = e.tasks[msg.TaskID]
	}
	if t == nil {
		for _, x := range e.tasks {
			if t == nil || x.id < t.id {
				t = x
			}
		}
	}
	if t == nil || t.agentState != mesos.TASK_RUNNING {
		return // nobody there to answer
	}
	var reply election.Message
	switch msg.Type {
	case election.TypePositionQuery:
		pos := simPosition(t.id)
		if m.opts.Sim.Position != nil {
			pos = m.opts.Sim.Position(t.id)
		}
		reply = election.Message{Type: election.TypePosition, Epoch: msg.Epoch, TaskID: t.id, Position: pos}
	case election.TypePromote:
		reply = election.Message{Type: election.TypePromoted, Epoch: msg.Epoch, TaskID: t.id}
	default:
		return
	}
	m.executorToScheduler(e, reply.Encode())
}
