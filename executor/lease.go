package executor

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/converge-io/converge/election"
)

// Environment of the hooks the lease and following use (controller/offers.go).
const (
	EnvFollowCommand = "CONVERGE_FOLLOW_COMMAND"
	EnvDemoteCommand = "CONVERGE_DEMOTE_COMMAND"
	EnvMasterHost    = "CONVERGE_MASTER_HOST"
	EnvMasterPort    = "CONVERGE_MASTER_PORT"
	// EnvDemoteReason tells demoteCommand why it runs: "lease" (the lease is
	// running out: stop writes at once, within a fifth of the lease) or
	// "switchover" (the controller hands the master over: a clean stop that
	// lets the replicas receive everything first).
	EnvDemoteReason = "CONVERGE_DEMOTE_REASON"
)

// Demote reasons (EnvDemoteReason).
const (
	DemoteLease      = "lease"
	DemoteSwitchover = "switchover"
)

// masterLease is this executor's lease as master of one epoch (see
// controller/lease.go for the protocol). Times are time.Now() readings, so
// comparisons use the monotonic clock.
type masterLease struct {
	epoch    int64
	taskID   string
	seq      int64
	sent     map[int64]time.Time // request -> when it was sent
	expiry   time.Time           // zero: never granted
	duration time.Duration       // from the grants
	promote  *election.Message   // waits for the first grant
	position string              // latest read, sent with each request (reportPositions)
	fenced   bool                // demoted or killed: never renewed again
	demotion *demotion           // the one demotion of this epoch, once begun
	stop     chan struct{}
}

// demotion is the one run of demoteCommand (or kill) that fences a master
// lease, whether the lease ran out or the controller asked (a handover).
type demotion struct {
	done chan struct{}
	err  string // "": the member no longer takes writes (demoted, or not running)
}

// leaseForLocked returns the lease of epoch for taskID, replacing one of an
// older epoch. e.mu is held.
func (e *executorState) leaseForLocked(epoch int64, taskID string) *masterLease {
	if l := e.lease; l != nil && l.epoch == epoch {
		return l
	}
	if l := e.lease; l != nil && l.epoch > epoch {
		return nil // a stale message
	}
	if e.lease != nil {
		close(e.lease.stop)
	}
	e.lease = &masterLease{epoch: epoch, taskID: taskID, sent: map[int64]time.Time{}, stop: make(chan struct{})}
	return e.lease
}

// onPromote runs the promotion once this member holds the lease of the
// epoch; until then it asks for it (the controller re-sends promote).
func (e *executorState) onPromote(m election.Message) {
	e.mu.Lock()
	_, taskID := e.taskForMessageLocked(m)
	l := e.leaseForLocked(m.Epoch, taskID)
	switch {
	case l == nil:
		e.mu.Unlock()
		return
	case l.fenced:
		e.mu.Unlock()
		e.reply(election.Message{Type: election.TypePromoted, Epoch: m.Epoch, TaskID: taskID, Error: "the master lease of this epoch was lost"})
		return
	case l.expiry.IsZero():
		mm := m
		l.promote = &mm
		e.mu.Unlock()
		e.requestLease()
		return
	}
	e.mu.Unlock()
	e.promote(m)
}

// requestLease sends the next lease request, noting when it was sent.
func (e *executorState) requestLease() {
	e.mu.Lock()
	l := e.lease
	if l == nil || l.fenced {
		e.mu.Unlock()
		return
	}
	l.seq++
	req := election.Message{Type: election.TypeLeaseRequest, Epoch: l.epoch, TaskID: l.taskID, Seq: l.seq, Position: l.position}
	l.sent[l.seq] = time.Now()
	for s := range l.sent {
		if s < l.seq-16 { // answers to these are long overdue
			delete(l.sent, s)
		}
	}
	e.mu.Unlock()
	e.reply(req)
}

// onGrant extends the lease from when the granted request was sent. The
// first grant of an epoch starts the renewals and the waiting promotion.
func (e *executorState) onGrant(m election.Message) {
	e.mu.Lock()
	l := e.lease
	if l == nil || l.fenced || l.epoch != m.Epoch || m.LeaseMillis <= 0 {
		e.mu.Unlock()
		return
	}
	sent, ok := l.sent[m.Seq]
	if !ok {
		e.mu.Unlock()
		return
	}
	first := l.expiry.IsZero()
	l.duration = time.Duration(m.LeaseMillis) * time.Millisecond
	if exp := sent.Add(l.duration); exp.After(l.expiry) {
		l.expiry = exp
	}
	promote := l.promote
	l.promote = nil
	e.mu.Unlock()
	if first {
		e.wg.Add(2)
		go func() {
			defer e.wg.Done()
			e.renew(l)
		}()
		go func() {
			defer e.wg.Done()
			e.reportPositions(l)
		}()
	}
	if promote != nil {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.promote(*promote)
		}()
	}
}

// renew asks for the lease every fifth of its duration and fences the member
// when the lease is about to run out: with two fifths left, time enough for
// demoteCommand (bounded by a fifth) and, failing that, a kill.
func (e *executorState) renew(l *masterLease) {
	e.mu.Lock()
	every := l.duration / 5
	e.mu.Unlock()
	tick := time.NewTicker(every / 4)
	defer tick.Stop()
	lastSent := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-e.quit:
			return
		case now := <-tick.C:
			e.mu.Lock()
			fenceAt, fenced := l.expiry.Add(-2*l.duration/5), l.fenced
			e.mu.Unlock()
			if fenced {
				return
			}
			if !now.Before(fenceAt) {
				e.fence(l)
				return
			}
			if now.Sub(lastSent) >= every {
				lastSent = now
				e.requestLease()
			}
		}
	}
}

// reportPositions reads the master's position every fifth of the lease, apart
// from the renewals (a slow positionCommand never delays one), for the next
// requests to carry: elections measure lag from it (maximumLagOnFailover).
func (e *executorState) reportPositions(l *masterLease) {
	e.mu.Lock()
	every := l.duration / 5
	e.mu.Unlock()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		e.mu.Lock()
		t, fenced := e.tasks[l.taskID], l.fenced
		running := runningLocked(t)
		e.mu.Unlock()
		if fenced || !running {
			return
		}
		if pos, err := e.readPosition(t, l.epoch, min(every, e.opts.PositionTimeout)); err == nil {
			e.mu.Lock()
			l.position = pos
			e.mu.Unlock()
		} else {
			e.log.V(1).Info("master position not read", "epoch", l.epoch, "error", err.Error())
		}
		select {
		case <-l.stop:
			return
		case <-e.quit:
			return
		case <-tick.C:
		}
	}
}

// fence stops this member being master before its lease ends.
func (e *executorState) fence(l *masterLease) {
	e.log.Info("master lease not renewed: fencing this member", "epoch", l.epoch, "taskId", l.taskID)
	e.demote(l, DemoteLease)
}

// demote runs the lease's one demotion (a later caller waits for the first
// one's result): the lease is never renewed again, and demoteCommand runs,
// or, without one or when it fails, the task is ended.
func (e *executorState) demote(l *masterLease, reason string) string {
	e.mu.Lock()
	l.fenced = true
	d := l.demotion
	if d != nil {
		e.mu.Unlock()
		select {
		case <-d.done:
			return d.err
		case <-e.quit:
			return "the executor is shutting down"
		}
	}
	d = &demotion{done: make(chan struct{})}
	l.demotion = d
	t := e.tasks[l.taskID]
	running := runningLocked(t)
	timeout := l.duration / 5 // the lease is running out
	switch {
	case l.expiry.IsZero():
		timeout = e.opts.PromoteTimeout // never granted: it took no writes
	case reason == DemoteSwitchover:
		// As long as the lease allows (it is no longer renewed), but over,
		// or the task killed, with a fifth of it left, as when it runs out:
		// the controller elects another once it has surely ended.
		timeout = time.Until(l.expiry) - l.duration/5
	}
	e.mu.Unlock()
	defer close(d.done)
	if !running {
		return "" // its process is ending or gone: it takes no writes
	}
	script, _ := lookupEnv(e.env, EnvDemoteCommand)
	if strings.TrimSpace(script) != "" && timeout > 0 {
		ctx, cancel := e.hookContext()
		env := setEnv(hookEnv(e.env, &t.info, e.sandbox(), l.epoch), EnvDemoteReason, reason)
		_, err := runHook(ctx, "demote command", script, e.sandbox(), env, timeout, os.Stderr)
		cancel()
		if err == nil {
			e.log.Info("demoted", "epoch", l.epoch, "taskId", l.taskID, "reason", reason)
			return ""
		}
		e.log.Error(err, "demote command failed: killing the task", "epoch", l.epoch, "taskId", l.taskID)
		d.err = "demote command failed (the task is killed): " + truncate(err.Error(), 300)
	} else {
		d.err = "no demote command, or no time left on the lease: the task is killed"
	}
	e.killNow(l.taskID)
	return d.err
}

// onDemote hands this member's mastership over when the controller asks:
// it demotes (once per epoch) and answers demoted with the result.
func (e *executorState) onDemote(m election.Message) {
	e.mu.Lock()
	_, taskID := e.taskForMessageLocked(m)
	l := e.lease
	e.mu.Unlock()
	reply := election.Message{Type: election.TypeDemoted, Epoch: m.Epoch, TaskID: taskID}
	switch {
	case l != nil && l.epoch > m.Epoch:
		return // a stale message: a later epoch's lease is held
	case l == nil || l.epoch < m.Epoch:
		// Never granted this epoch's lease, so never promoted in it.
		e.log.Info("demote: no master lease of this epoch held", "epoch", m.Epoch, "taskId", taskID)
	default:
		e.log.Info("demote asked by the controller (handover)", "epoch", m.Epoch, "taskId", taskID)
		reply.Error = e.demote(l, DemoteSwitchover)
	}
	e.reply(reply)
}

// killNow ends a task at once (SIGKILL to its process group): there is no
// time for a grace period when its lease is running out.
func (e *executorState) killNow(id string) {
	e.mu.Lock()
	t := e.tasks[id]
	if !runningLocked(t) {
		e.mu.Unlock()
		return
	}
	t.killing = true
	pid := t.pid
	e.mu.Unlock()
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		e.log.Error(err, "SIGKILL", "taskId", id)
	}
}

// follow runs followCommand for the master an epoch names, once per epoch
// while it succeeds (the controller re-sends follow until it has), and
// answers followed.
func (e *executorState) follow(m election.Message) {
	e.mu.Lock()
	t, taskID := e.taskForMessageLocked(m)
	running := runningLocked(t)
	if e.followed == nil {
		e.followed = map[int64]bool{}
	}
	if e.followed[m.Epoch] || e.following {
		e.mu.Unlock()
		if e.followed[m.Epoch] {
			e.reply(election.Message{Type: election.TypeFollowed, Epoch: m.Epoch, TaskID: taskID})
		}
		return
	}
	e.following = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.following = false
		e.mu.Unlock()
	}()
	reply := election.Message{Type: election.TypeFollowed, Epoch: m.Epoch, TaskID: taskID}
	script, _ := lookupEnv(e.env, EnvFollowCommand)
	if !running {
		reply.Error = "task is not running"
	} else if strings.TrimSpace(script) != "" {
		env := hookEnv(e.env, &t.info, e.sandbox(), m.Epoch)
		env = setEnv(env, EnvMasterHost, m.MasterHost)
		env = setEnv(env, EnvMasterPort, strconv.Itoa(int(m.MasterPort)))
		ctx, cancel := e.hookContext()
		_, err := runHook(ctx, "follow command", script, e.sandbox(), env, e.opts.PromoteTimeout, os.Stderr)
		cancel()
		if err != nil {
			reply.Error = err.Error()
			e.log.Error(errors.New(reply.Error), "follow command failed; it is re-run", "epoch", m.Epoch, "master", m.MasterHost)
		}
	}
	if reply.Error == "" {
		e.mu.Lock()
		e.followed[m.Epoch] = true
		e.mu.Unlock()
		e.log.Info("following the master", "epoch", m.Epoch, "master", m.MasterHost, "port", m.MasterPort)
	}
	e.reply(reply)
}
