package localmesos

import (
	"context"
	"time"
)

// defaultCommandGrace is the command executor's kill grace period when the
// task has no kill policy (src/launcher/executor.cpp: KillPolicy's default
// of 3 seconds).
const defaultCommandGrace = 3 * time.Second

// Shutdown stops every task the way a kill does, then closes: command tasks
// get SIGTERM, their kill policy's grace period (3s without one), then
// SIGKILL; custom executors get SIGTERM (converge executor then stops its
// tasks with their grace periods) and SIGKILL after their shutdown grace
// period. Close, by contrast, SIGKILLs at once. If ctx ends first, what
// still runs is killed.
func (m *Mesos) Shutdown(ctx context.Context) error {
	type stop struct {
		p     *process
		grace time.Duration
	}
	var stops []stop
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	for _, a := range m.agents {
		for t := range a.tasks {
			if t.proc != nil && !isTerminal(t.agentState) {
				t.killing = true // TASK_KILLED, not TASK_FAILED, when it ends
				stops = append(stops, stop{t.proc, gracePeriod(t.info.KillPolicy, defaultCommandGrace)})
			}
		}
		for _, e := range a.executors {
			if e.proc != nil && !e.exited {
				e.shuttingDown = true
				stops = append(stops, stop{e.proc, executorGrace(e)})
			}
		}
	}
	m.mu.Unlock()
	m.log.Info("stopping tasks and executors", "processes", len(stops))
	for _, s := range stops {
		s.p.terminate(s.grace)
	}
	for _, s := range stops {
		select {
		case <-s.p.done:
		case <-ctx.Done():
		}
	}
	return m.Close()
}
