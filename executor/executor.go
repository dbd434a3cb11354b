package executor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
)

// Options tune an executor. The zero value is usable.
type Options struct {
	// Log receives the executor's log; default funcr to stderr.
	Log logr.Logger
	// Environ is the executor's environment, the base of every task's and
	// hook's environment; default os.Environ().
	Environ []string
	// PositionTimeout bounds CONVERGE_POSITION_COMMAND; default 10s.
	PositionTimeout time.Duration
	// PromoteTimeout bounds CONVERGE_PROMOTE_COMMAND; default 60s.
	PromoteTimeout time.Duration
	// TerminalAckTimeout is how long the executor waits, once every task is
	// terminal, for the agent to acknowledge the last updates; default 5s.
	TerminalAckTimeout time.Duration
	// DefaultKillGrace is the grace period between SIGTERM and SIGKILL when
	// neither a kill policy nor MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD give one;
	// default 3s.
	DefaultKillGrace time.Duration
	// HTTPTimeout bounds connecting to the agent and its response headers;
	// default 10s.
	HTTPTimeout time.Duration
}

const (
	apiPath = "/api/v1/executor"
	// killMargin is kept from the agent's shutdown grace period so that the
	// terminal update goes out before the agent kills the executor.
	killMargin = time.Second
	// initialSubscribeWindow is how long a first subscription is retried when
	// the framework does not checkpoint (with checkpointing RecoveryTimeout applies).
	initialSubscribeWindow = 15 * time.Second
)

// Run is `converge executor`: it reads the agent's MESOS_* configuration from the
// environment, logs to stderr, and runs until the executor's work is done (every
// task terminal and acknowledged, or SHUTDOWN), the agent is lost for good, or ctx
// ends (tasks are then killed). It returns nil on a normal end.
func Run(ctx context.Context) error {
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("converge executor: read Mesos executor configuration: %w", err)
	}
	return RunWithConfig(ctx, cfg, Options{})
}

// RunWithConfig is Run with an explicit configuration and options.
func RunWithConfig(ctx context.Context, cfg config.Config, o Options) error {
	e := newExecutor(cfg, o)
	return e.run(ctx)
}

// NewStderrLogger is the executor's default logger: funcr to stderr, with
// timestamps; verbosity v.
func NewStderrLogger(v int) logr.Logger {
	return funcr.New(func(prefix, args string) {
		if prefix != "" {
			fmt.Fprintln(os.Stderr, prefix+": "+args)
			return
		}
		fmt.Fprintln(os.Stderr, args)
	}, funcr.Options{LogTimestamp: true, Verbosity: v}).WithName("converge-executor")
}

// task is one task of this executor.
type task struct {
	info mesos.TaskInfo
	env  []string

	pid       int           // process group leader, 0 before start
	exited    chan struct{} // closed when the process has been reaped (or never started)
	killing   bool          // a KILL (or SHUTDOWN) has been received
	terminal  bool          // the terminal update has been sent (recorded)
	killGrace time.Duration // grace of the first kill
	// The task's health and check status as its checkers last reported
	// them; stopChecks ends the checkers (nil when none run).
	healthy        *bool
	checkStatus    *mesos.CheckStatusInfo
	stopChecks     func()
	killedByHealth bool // killed for failing its health check
}

// promotion is one epoch's promote run.
type promotion struct {
	done chan struct{}
	err  string
}

type pendingUpdate struct {
	uuid   string
	update executor.Call_Update
}

type executorState struct {
	cfg    config.Config
	opts   Options
	log    logr.Logger
	env    []string
	sender calls.Sender // UPDATE and MESSAGE calls
	subscr calls.Sender // SUBSCRIBE (own connection, closed after)

	mu                sync.Mutex
	framework         *mesos.FrameworkInfo
	agentID           *mesos.AgentID
	tasks             map[string]*task
	order             []string // task ids in launch order
	unackedTasks      map[string]bool
	unacked           []pendingUpdate
	promotions        map[int64]*promotion
	positionsInFlight map[int64]bool
	lease             *masterLease   // as master (lease.go)
	followed          map[int64]bool // epochs whose followCommand succeeded
	following         bool           // a followCommand runs
	shuttingDown      bool
	connected         bool // SUBSCRIBED and the stream is up
	finishTimerSet    bool

	quit     chan struct{}
	quitOnce sync.Once
	wg       sync.WaitGroup // task, kill and message goroutines
}

func newExecutor(cfg config.Config, o Options) *executorState {
	if o.Log.GetSink() == nil {
		o.Log = NewStderrLogger(0)
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.PositionTimeout <= 0 {
		o.PositionTimeout = 10 * time.Second
	}
	if o.PromoteTimeout <= 0 {
		o.PromoteTimeout = 60 * time.Second
	}
	if o.TerminalAckTimeout <= 0 {
		o.TerminalAckTimeout = 5 * time.Second
	}
	if o.DefaultKillGrace <= 0 {
		o.DefaultKillGrace = 3 * time.Second
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = 10 * time.Second
	}
	apiURL := url.URL{Scheme: "http", Host: cfg.AgentEndpoint, Path: apiPath}
	cli := httpcli.New(
		httpcli.Endpoint(apiURL.String()),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
		httpcli.Do(httpcli.With(httpcli.Timeout(o.HTTPTimeout))),
	)
	opts := executor.CallOptions{calls.Framework(cfg.FrameworkID), calls.Executor(cfg.ExecutorID)}
	return &executorState{
		cfg:               cfg,
		opts:              o,
		log:               o.Log.WithValues("executorId", cfg.ExecutorID),
		env:               o.Environ,
		sender:            calls.SenderWith(httpexec.NewSender(cli.Send), opts...),
		subscr:            calls.SenderWith(httpexec.NewSender(cli.Send, httpcli.Close(true)), opts...),
		tasks:             map[string]*task{},
		unackedTasks:      map[string]bool{},
		promotions:        map[int64]*promotion{},
		positionsInFlight: map[int64]bool{},
		quit:              make(chan struct{}),
	}
}

func (e *executorState) finish(reason string) {
	e.quitOnce.Do(func() {
		e.log.Info("finishing", "reason", reason)
		close(e.quit)
	})
}

func (e *executorState) done() bool {
	select {
	case <-e.quit:
		return true
	default:
		return false
	}
}

// run is the subscription loop.
func (e *executorState) run(ctx context.Context) error {
	e.log.Info("starting", "agent", e.cfg.AgentEndpoint, "checkpoint", e.cfg.Checkpoint,
		"shutdownGracePeriod", e.cfg.ExecutorShutdownGracePeriod.String())
	var (
		everSubscribed bool
		lostAt         = time.Now()
		backoff        = 250 * time.Millisecond
	)
	maxBackoff := e.cfg.SubscriptionBackoffMax
	if maxBackoff <= 0 {
		maxBackoff = 2 * time.Second
	}
	for {
		subscribed, err := e.subscribeOnce(ctx)
		if subscribed {
			everSubscribed = true
			lostAt = time.Now()
			backoff = 250 * time.Millisecond
		}
		if e.done() {
			e.wait(e.opts.TerminalAckTimeout + time.Second)
			e.log.Info("exiting")
			return nil
		}
		if ctx.Err() != nil {
			e.log.Info("context ended, killing tasks")
			e.shutdownTasks("executor is stopping")
			e.wait(e.maxGrace() + 2*time.Second)
			return nil
		}
		if err != nil {
			e.log.Error(err, "subscription to agent ended")
		}
		window := initialSubscribeWindow
		switch {
		case e.cfg.Checkpoint && e.cfg.RecoveryTimeout > 0:
			window = e.cfg.RecoveryTimeout
		case everSubscribed:
			// Without checkpointing an agent that goes away does not come back
			// for this executor: end like Mesos's own executors.
			e.log.Info("agent connection lost and the framework does not checkpoint: killing tasks and exiting")
			e.shutdownTasks("executor lost its agent")
			e.wait(e.maxGrace() + 2*time.Second)
			return fmt.Errorf("converge executor: connection to agent %s lost: %w", e.cfg.AgentEndpoint, err)
		}
		if time.Since(lostAt) > window {
			e.shutdownTasks("executor could not reach its agent")
			e.wait(e.maxGrace() + 2*time.Second)
			return fmt.Errorf("converge executor: could not (re)subscribe to agent %s within %v: %w", e.cfg.AgentEndpoint, window, err)
		}
		wait := jitter(backoff)
		backoff *= 2
		if backoff > maxBackoff {
			backoff = maxBackoff
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		case <-e.quit:
		}
	}
}

// wait waits for the executor's goroutines, at most d.
func (e *executorState) wait(d time.Duration) {
	ch := make(chan struct{})
	go func() { e.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		e.log.Info("gave up waiting for task goroutines", "after", d.String())
	}
}

func jitter(d time.Duration) time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d/2)+1))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(n.Int64())
}

// subscribeOnce subscribes and handles events until the stream ends, the executor
// is done or ctx ends. subscribed reports whether SUBSCRIBED arrived.
func (e *executorState) subscribeOnce(ctx context.Context) (subscribed bool, err error) {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.quit:
			cancel()
		case <-subCtx.Done():
		}
	}()
	e.mu.Lock()
	var unackedTasks []mesos.TaskInfo
	for _, id := range e.order {
		if e.unackedTasks[id] {
			unackedTasks = append(unackedTasks, e.tasks[id].info)
		}
	}
	var unackedUpdates []executor.Call_Update
	for _, p := range e.unacked {
		unackedUpdates = append(unackedUpdates, p.update)
	}
	e.mu.Unlock()

	e.log.Info("subscribing", "unacknowledgedTasks", len(unackedTasks), "unacknowledgedUpdates", len(unackedUpdates))
	resp, err := e.subscr.Send(subCtx, calls.NonStreaming(calls.Subscribe(unackedTasks, unackedUpdates)))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return false, fmt.Errorf("subscribe to agent %s: %w", e.cfg.AgentEndpoint, err)
	}
	defer func() {
		e.mu.Lock()
		e.connected = false
		e.mu.Unlock()
	}()
	for {
		var ev executor.Event
		if err := resp.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return subscribed, fmt.Errorf("read agent event stream: %w", err)
		}
		if ev.Type == executor.Event_SUBSCRIBED {
			subscribed = true
		}
		if err := e.handle(&ev); err != nil {
			return subscribed, err
		}
	}
}

// handle dispatches one event. It never blocks for long: work runs in goroutines.
func (e *executorState) handle(ev *executor.Event) error {
	switch ev.Type {
	case executor.Event_SUBSCRIBED:
		s := ev.GetSubscribed()
		e.mu.Lock()
		e.connected = true
		fi := s.FrameworkInfo
		e.framework = &fi
		aid := s.AgentInfo.GetID()
		e.agentID = aid
		e.mu.Unlock()
		e.log.Info("subscribed", "frameworkId", e.cfg.FrameworkID, "agentHost", s.AgentInfo.Hostname)
	case executor.Event_LAUNCH:
		e.launch(ev.GetLaunch().Task)
	case executor.Event_LAUNCH_GROUP:
		for _, t := range ev.GetLaunchGroup().TaskGroup.Tasks {
			e.log.Info("LAUNCH_GROUP is not supported", "taskId", t.TaskID.Value)
			e.refuse(t, "converge executor does not support task groups")
		}
	case executor.Event_KILL:
		k := ev.GetKill()
		e.kill(k.TaskID.Value, k.KillPolicy, false)
	case executor.Event_ACKNOWLEDGED:
		a := ev.GetAcknowledged()
		e.acknowledged(a.TaskID.Value, a.UUID)
	case executor.Event_MESSAGE:
		e.message(ev.GetMessage().Data)
	case executor.Event_SHUTDOWN:
		e.log.Info("SHUTDOWN received")
		e.shutdownTasks("executor shut down by the agent")
	case executor.Event_ERROR:
		return fmt.Errorf("agent sent ERROR: %s", ev.GetError().Message)
	case executor.Event_HEARTBEAT:
	default:
		e.log.V(1).Info("ignoring unknown event", "type", ev.Type.String())
	}
	return nil
}

// refuse answers a task that cannot run with TASK_FAILED.
func (e *executorState) refuse(info mesos.TaskInfo, msg string) {
	e.mu.Lock()
	if _, dup := e.tasks[info.TaskID.Value]; dup {
		e.mu.Unlock()
		return
	}
	t := &task{info: info, exited: make(chan struct{})}
	close(t.exited)
	e.tasks[info.TaskID.Value] = t
	e.order = append(e.order, info.TaskID.Value)
	e.unackedTasks[info.TaskID.Value] = true
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.update(info.TaskID, mesos.TASK_FAILED, msg, nil, t)
	}()
}

// newUUID returns 16 random bytes with the version 4 / variant bits of a UUID.
func newUUID() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // crypto/rand.Read never fails on Linux
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return b
}

// update records a status update as unacknowledged and sends it. A failed send is
// logged; the update goes out again with the next SUBSCRIBE. When the update is
// terminal for t, t is marked terminal in the same critical section that records
// the update, so that the executor cannot finish between the two.
func (e *executorState) update(id mesos.TaskID, state mesos.TaskState, msg string, reason *mesos.TaskStatus_Reason, terminalFor *task) {
	e.sendStatus(e.newStatus(id, state, msg, reason), terminalFor)
}

// newStatus is a fresh status update of this executor's.
func (e *executorState) newStatus(id mesos.TaskID, state mesos.TaskState, msg string, reason *mesos.TaskStatus_Reason) mesos.TaskStatus {
	now := float64(time.Now().UnixNano()) / 1e9
	st := mesos.TaskStatus{
		TaskID:     id,
		State:      state.Enum(),
		Source:     mesos.SOURCE_EXECUTOR.Enum(),
		ExecutorID: &mesos.ExecutorID{Value: e.cfg.ExecutorID},
		Timestamp:  &now,
		UUID:       newUUID(),
		Reason:     reason,
	}
	if msg != "" {
		st.Message = &msg
	}
	return st
}

// sendStatus keeps st until it is acknowledged and sends it; terminalFor
// marks that task's terminal update as recorded.
func (e *executorState) sendStatus(st mesos.TaskStatus, terminalFor *task) {
	id, state := st.TaskID, st.GetState()
	e.mu.Lock()
	if e.agentID != nil {
		aid := *e.agentID
		st.AgentID = &aid
	}
	call := calls.Update(st)
	e.unacked = append(e.unacked, pendingUpdate{uuid: string(st.UUID), update: *call.Update})
	if terminalFor != nil {
		terminalFor.terminal = true
	}
	e.mu.Unlock()
	e.log.Info("status update", "taskId", id.Value, "state", state.String())
	if err := e.send(call); err != nil {
		e.log.Error(err, "send status update (kept for re-subscription)", "taskId", id.Value, "state", state.String())
	}
	if terminalFor != nil {
		e.mu.Lock()
		e.maybeFinishLocked()
		e.mu.Unlock()
	}
}

// send sends a non-SUBSCRIBE call with its own deadline, independent of Run's ctx
// so that terminal updates still go out while stopping.
func (e *executorState) send(call *executor.Call) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.HTTPTimeout+5*time.Second)
	defer cancel()
	resp, err := e.sender.Send(ctx, calls.NonStreaming(call))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		return fmt.Errorf("send %v call to agent %s: %w", call.Type, e.cfg.AgentEndpoint, err)
	}
	return nil
}

func (e *executorState) acknowledged(taskID string, uuid []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.unackedTasks, taskID)
	for i, p := range e.unacked {
		if p.uuid == string(uuid) {
			e.unacked = append(e.unacked[:i:i], e.unacked[i+1:]...)
			break
		}
	}
	e.maybeFinishLocked()
}

// maybeFinishLocked ends the executor once it has work behind it and every task is
// terminal: at once if every update is acknowledged, else after TerminalAckTimeout.
// With SHUTDOWN and no task at all it ends at once too.
func (e *executorState) maybeFinishLocked() {
	if len(e.tasks) == 0 {
		if e.shuttingDown {
			e.finish("shut down with no task")
		}
		return
	}
	for _, t := range e.tasks {
		if !t.terminal {
			return
		}
	}
	if len(e.unacked) == 0 {
		e.finish("every task is terminal and acknowledged")
		return
	}
	if !e.finishTimerSet {
		e.finishTimerSet = true
		e.armFinishTimer()
	}
}

// armFinishTimer finishes the executor TerminalAckTimeout from now if it is then
// connected to the agent (so the agent has had every update); while it is
// disconnected the updates wait for the next SUBSCRIBE, bounded by the recovery
// timeout of the subscription loop.
func (e *executorState) armFinishTimer() {
	time.AfterFunc(e.opts.TerminalAckTimeout, func() {
		e.mu.Lock()
		connected := e.connected
		e.mu.Unlock()
		if !connected && !e.done() {
			e.armFinishTimer()
			return
		}
		e.finish("every task is terminal; acknowledgement timed out")
	})
}

// grace returns the kill grace period for a kill with the given policies.
func (e *executorState) grace(killPolicy, taskPolicy *mesos.KillPolicy, shutdown bool) time.Duration {
	shutdownGrace := e.shutdownGrace()
	var g time.Duration
	switch {
	case killPolicy.GetGracePeriod() != nil:
		g = time.Duration(killPolicy.GetGracePeriod().Nanoseconds)
	case taskPolicy.GetGracePeriod() != nil:
		g = time.Duration(taskPolicy.GetGracePeriod().Nanoseconds)
	default:
		g = shutdownGrace
	}
	if shutdown && g > shutdownGrace {
		g = shutdownGrace
	}
	if g < 0 {
		g = 0
	}
	return g
}

// shutdownGrace is MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD minus a margin (at most
// half of it), or Options.DefaultKillGrace.
func (e *executorState) shutdownGrace() time.Duration {
	g := e.cfg.ExecutorShutdownGracePeriod
	if g <= 0 {
		return e.opts.DefaultKillGrace
	}
	m := killMargin
	if m > g/2 {
		m = g / 2
	}
	return g - m
}

func (e *executorState) maxGrace() time.Duration {
	g := e.shutdownGrace()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tasks {
		if t.killGrace > g {
			g = t.killGrace
		}
	}
	return g
}
