package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/converge-io/converge/election"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
)

// message handles a framework MESSAGE from the scheduler.
func (e *executorState) message(data []byte) {
	m, err := election.Decode(data)
	if err != nil {
		e.log.V(1).Info("ignoring a message that is not an election message", "bytes", len(data))
		return
	}
	switch m.Type {
	case election.TypePositionQuery:
		e.mu.Lock()
		if e.positionsInFlight[m.Epoch] {
			// The answer of the run in flight answers this query too.
			e.mu.Unlock()
			return
		}
		e.positionsInFlight[m.Epoch] = true
		e.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.answerPosition(m)
			e.mu.Lock()
			delete(e.positionsInFlight, m.Epoch)
			e.mu.Unlock()
		}()
	case election.TypePromote:
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.onPromote(m)
		}()
	case election.TypeLeaseGrant:
		e.onGrant(m)
	case election.TypeDemote:
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.onDemote(m)
		}()
	case election.TypeFollow:
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.follow(m)
		}()
	default:
		e.log.V(1).Info("ignoring election message of unknown type", "type", m.Type)
	}
}

// taskForMessageLocked finds the task a message is about: the one it names, else
// the last launched. It returns the task (nil if none) and the id to answer with.
func (e *executorState) taskForMessageLocked(m election.Message) (*task, string) {
	if t := e.tasks[m.TaskID]; t != nil {
		return t, m.TaskID
	}
	if n := len(e.order); n > 0 {
		id := e.order[n-1]
		return e.tasks[id], id
	}
	if m.TaskID != "" {
		return nil, m.TaskID
	}
	return nil, e.cfg.ExecutorID
}

// runningLocked reports whether t's process runs and is not being killed.
func runningLocked(t *task) bool {
	return t != nil && t.pid != 0 && !t.terminal && !t.killing
}

// hookContext ends when the executor finishes.
func (e *executorState) hookContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-e.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (e *executorState) answerPosition(m election.Message) {
	e.mu.Lock()
	t, taskID := e.taskForMessageLocked(m)
	running := runningLocked(t)
	e.mu.Unlock()
	reply := election.Message{Type: election.TypePosition, Epoch: m.Epoch, TaskID: taskID}
	if !running {
		reply.Error = "task is not running"
	} else if pos, err := e.readPosition(t, m.Epoch, e.opts.PositionTimeout); err != nil {
		reply.Error = err.Error()
	} else {
		reply.Position = pos
	}
	if reply.Error != "" {
		e.log.Info("position query failed", "epoch", m.Epoch, "taskId", taskID, "error", reply.Error)
	} else {
		e.log.Info("position query answered", "epoch", m.Epoch, "taskId", taskID, "positionBytes", len(reply.Position))
	}
	e.reply(reply)
}

// readPosition runs positionCommand for t and returns the valid position it
// printed.
func (e *executorState) readPosition(t *task, epoch int64, timeout time.Duration) (string, error) {
	script, _ := lookupEnv(e.env, EnvPositionCommand)
	if strings.TrimSpace(script) == "" {
		return "", errors.New(EnvPositionCommand + " is not set")
	}
	ctx, cancel := e.hookContext()
	res, err := runHook(ctx, "position command", script, e.sandbox(),
		hookEnv(e.env, &t.info, e.sandbox(), epoch), timeout, os.Stderr)
	cancel()
	switch {
	case err != nil:
		return "", err
	case res.Stdout == "":
		return "", errors.New("position command printed nothing")
	}
	if _, perr := election.ParsePosition(res.Stdout); perr != nil {
		return "", errors.New("position command printed no valid position (want a decimal integer, a PostgreSQL LSN, a MariaDB GTID list or a MySQL GTID set): " + truncate(perr.Error(), 200))
	}
	return res.Stdout, nil
}

// promote runs the promote command at most once per epoch (once the member
// holds the master lease: onPromote) and confirms every promote message of
// that epoch with the result of that one run.
func (e *executorState) promote(m election.Message) {
	e.mu.Lock()
	t, taskID := e.taskForMessageLocked(m)
	p := e.promotions[m.Epoch]
	first := false
	if p == nil {
		if !runningLocked(t) {
			e.mu.Unlock()
			e.log.Info("promote refused: task is not running", "epoch", m.Epoch, "taskId", taskID)
			e.reply(election.Message{Type: election.TypePromoted, Epoch: m.Epoch, TaskID: taskID, Error: "task is not running"})
			return
		}
		p = &promotion{done: make(chan struct{})}
		e.promotions[m.Epoch] = p
		first = true
	}
	e.mu.Unlock()
	if first {
		script, _ := lookupEnv(e.env, EnvPromoteCommand)
		if strings.TrimSpace(script) != "" {
			p.err = e.runPromote(script, t, taskID, m.Epoch)
		} else {
			e.log.Info("promoted without a promote command", "epoch", m.Epoch, "taskId", taskID)
		}
		close(p.done)
	} else {
		select {
		case <-p.done:
		case <-e.quit:
			return
		}
	}
	if p.err != "" {
		e.log.Error(errors.New(p.err), "promote command failed", "epoch", m.Epoch, "taskId", taskID)
		// Not master: the lease is not renewed (the controller replaces it).
		e.mu.Lock()
		if l := e.lease; l != nil && l.epoch == m.Epoch {
			l.fenced = true
		}
		e.mu.Unlock()
	}
	e.reply(election.Message{Type: election.TypePromoted, Epoch: m.Epoch, TaskID: taskID, Error: p.err})
}

// PromoteAttempts is how many times promoteCommand runs before its failure
// is reported (the controller then fences this member and elects the next
// best); the n-th retry waits n times PromoteRetryDelay.
const PromoteAttempts = 3

// PromoteRetryDelay is the first pause between promote attempts.
var PromoteRetryDelay = time.Second

// runPromote runs promoteCommand until it succeeds, at most PromoteAttempts
// times while this member holds the lease of epoch, and returns the last
// error ("" on success).
func (e *executorState) runPromote(script string, t *task, taskID string, epoch int64) string {
	for attempt := 1; ; attempt++ {
		e.log.Info("running promote command", "epoch", epoch, "taskId", taskID, "attempt", attempt)
		ctx, cancel := e.hookContext()
		_, err := runHook(ctx, "promote command", script, e.sandbox(),
			hookEnv(e.env, &t.info, e.sandbox(), epoch), e.opts.PromoteTimeout, os.Stderr)
		cancel()
		if err == nil {
			return ""
		}
		e.mu.Lock()
		l := e.lease
		lost := l == nil || l.epoch != epoch || l.fenced || !runningLocked(t)
		e.mu.Unlock()
		if attempt == PromoteAttempts || lost {
			return fmt.Sprintf("%s (attempt %d of %d)", err, attempt, PromoteAttempts)
		}
		e.log.Error(err, "promote command failed; retrying", "epoch", epoch, "taskId", taskID, "attempt", attempt)
		select {
		case <-time.After(time.Duration(attempt) * PromoteRetryDelay):
		case <-e.quit:
			return err.Error()
		}
	}
}

// reply sends an election message to the scheduler (best effort, as Mesos's
// framework messages are: the controller re-asks).
func (e *executorState) reply(m election.Message) {
	if err := e.send(calls.Message(m.Encode())); err != nil {
		e.log.Error(err, "send election message", "type", m.Type, "epoch", m.Epoch)
	}
}

// truncate shortens s to at most n bytes (on a rune boundary), marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
