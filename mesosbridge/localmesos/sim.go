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
		m.simChecks(t)
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
// position-query -> position, promote -> lease-request, then promoted once
// the lease is granted, follow -> followed, demote -> demoted (no more
// renewals).
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
		// As converge's executor: promoted only once it holds the lease.
		l := t.simLease
		if l == nil || l.epoch != msg.Epoch {
			l = &simLease{epoch: msg.Epoch}
			t.simLease = l
		}
		if !l.granted {
			m.simRequestLease(e, t)
			return
		}
		reply = election.Message{Type: election.TypePromoted, Epoch: msg.Epoch, TaskID: t.id}
	case election.TypeLeaseGrant:
		l := t.simLease
		if l == nil || l.epoch != msg.Epoch || msg.LeaseMillis <= 0 {
			return
		}
		if l.granted {
			return // a renewal: the lease is simulated, nothing fences
		}
		l.granted = true
		m.armSimRenewal(e, t, l, time.Duration(msg.LeaseMillis)*time.Millisecond/5)
		reply = election.Message{Type: election.TypePromoted, Epoch: msg.Epoch, TaskID: t.id}
	case election.TypeFollow:
		reply = election.Message{Type: election.TypeFollowed, Epoch: msg.Epoch, TaskID: t.id}
	case election.TypeDemote:
		// As converge's executor: the lease of the epoch is never renewed again.
		if l := t.simLease; l != nil && l.epoch <= msg.Epoch {
			t.simLease = nil
		}
		reply = election.Message{Type: election.TypeDemoted, Epoch: msg.Epoch, TaskID: t.id}
	default:
		return
	}
	m.executorToScheduler(e, reply.Encode())
}

// simLease is a simulated master's lease: it asks for renewals every fifth
// of the lease while its task runs (its requests are lost while its agent is
// cut off, so the controller replaces it as it would a real one).
type simLease struct {
	epoch, seq int64
	granted    bool
}

func (m *Mesos) simRequestLease(e *executor, t *task) {
	t.simLease.seq++
	req := election.Message{Type: election.TypeLeaseRequest, Epoch: t.simLease.epoch, TaskID: t.id, Seq: t.simLease.seq}
	m.executorToScheduler(e, req.Encode())
}

func (m *Mesos) armSimRenewal(e *executor, t *task, l *simLease, every time.Duration) {
	time.AfterFunc(every, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closed || t.forgotten || t.killing || t.agentState != mesos.TASK_RUNNING || t.simLease != l {
			return
		}
		m.simRequestLease(e, t)
		m.armSimRenewal(e, t, l, every)
	})
}
