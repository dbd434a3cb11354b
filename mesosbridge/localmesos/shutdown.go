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
// SIGKILL; custom executors get SHUTDOWN, as from the agent (converge
// executor then stops its tasks with their grace periods), and are killed
// after their shutdown grace period. Not SIGTERM: an executor run with
// sh -c would lose its shell, and with it its group. Close, by contrast,
// SIGKILLs at once. If ctx ends first, what still runs is killed.
func (m *Mesos) Shutdown(ctx context.Context) error {
	type stop struct {
		p *process
		// term: SIGTERM now, SIGKILL after grace (a command task);
		// executors are stopped by SHUTDOWN.
		term  bool
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
				stops = append(stops, stop{p: t.proc, term: true, grace: gracePeriod(t.info.KillPolicy, defaultCommandGrace)})
			}
		}
		for _, e := range a.executors {
			if e.proc != nil && !e.exited {
				m.executorShutdown(e)
				stops = append(stops, stop{p: e.proc})
			}
		}
	}
	m.mu.Unlock()
	m.log.Info("stopping tasks and executors", "processes", len(stops))
	for _, s := range stops {
		if s.term {
			s.p.terminate(s.grace)
		}
	}
	for _, s := range stops {
		select {
		case <-s.p.done:
		case <-ctx.Done():
		}
	}
	return m.Close()
}
