// Package localmesos is an in-process Apache Mesos: masters and agents speaking the
// v1 scheduler and executor HTTP APIs (mesos-go's encodings), for `converge dev`,
// tests and scale simulation. See README.md for the faults it injects and how it
// differs from a real Mesos.
package localmesos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Mesos is a local Mesos cluster: Options.Masters masters sharing Options.Agents agents.
type Mesos struct {
	opts Options
	log  logr.Logger

	mu      sync.Mutex
	masters []*master
	leader  int // index of the leading master
	baseID  string

	agents     []*agent
	agentsByID map[string]*agent

	frameworks map[string]*framework
	fwOrder    []*framework
	removed    map[string]string // framework id -> why
	// completedFws: removed frameworks, newest last, as /master/state's
	// completed_frameworks (at most maxCompletedFrameworks)
	completedFws []*framework
	nextFw       int
	nextOffer    int64
	offers       map[string]*offer
	resend       map[*task]struct{}
	executors    map[string]*executor // fwID + "/" + executorID
	rng          *mrand.Rand
	dropP        float64
	dupP         float64
	allocRound   int

	workDir    string
	ownWorkDir bool
	fetcher    *fetcher   // nil with Simulate
	gc         *sandboxGC // nil with Simulate or a negative GCDelay
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	started    bool
	closed     bool
	stop       chan struct{} // closed by Close: ends every stream
}

type master struct {
	idx      int
	id       string
	ln       net.Listener
	srv      *http.Server
	hostname string
	port     int
}

func (ms *master) hostport() string { return net.JoinHostPort(ms.hostname, strconv.Itoa(ms.port)) }

type agent struct {
	idx       int
	id        string
	hostname  string
	total     res
	used      res // tasks and executors, incremental
	offered   res // outstanding offers
	attrs     []mesos.Attribute
	reachable bool
	// partition is set while /fault/agent/partition cuts the agent off from
	// the master (reachable is false then too, but processes run on)
	partition *partition
	// unreachableAt: when the master last marked it unreachable
	unreachableAt *mesos.TimeInfo
	// gone: an operator marked it gone (MARK_AGENT_GONE): it is removed
	// for good; goneProcs are the processes it still runs (it was
	// unreachable then), shut down when it tries to re-register
	gone      bool
	goneProcs []*process
	tasks     map[*task]struct{}
	executors map[string]*executor // fwID/execID
	ln        net.Listener         // the agent's executor API (real tasks only)
	srv       *http.Server
	endpoint  string
}

func (a *agent) available() res {
	av := a.total.clone()
	av.sub(a.used)
	av.sub(a.offered)
	return av
}

type offer struct {
	id    string
	fw    *framework
	agent *agent
	role  string
	res   res
}

type filter struct {
	until time.Time
	res   res
}

type framework struct {
	id             string
	info           mesos.FrameworkInfo
	roles          []string
	multiRole      bool
	partitionAware bool
	stream         *stream
	connected      bool
	failoverTimer  *time.Timer
	tasks          map[string]*task
	completed      []*task
	suppressed     map[string]bool
	filters        map[string]filter // agentID + "/" + role
	offers         map[string]*offer
	registeredAt   time.Time
	unregisteredAt time.Time // when it was removed
}

const maxCompletedTasks = 1000

type execKind int

const (
	execCommand execKind = iota // the command executor, one per task
	execSim                     // a simulated executor
	execCustom                  // a custom executor process speaking /api/v1/executor
	execDefault                 // Mesos's default executor: a task group's commands run as processes
)

// hasExecutorID is whether the executor's id shows in offers, state and
// reconciliation (the command executor's, named after its task, does not).
func (e *executor) hasExecutorID() bool { return e.kind == execCustom || e.kind == execDefault }

type executor struct {
	kind   execKind
	fw     *framework
	agent  *agent
	id     string
	info   mesos.ExecutorInfo
	res    res
	tasks  map[string]*task
	stream *stream
	// queued events for a custom executor that has not subscribed yet
	queued         []func(s *stream)
	proc           *process
	dir            string
	shuttingDown   bool
	subscribed     bool
	everSubscribed bool
	exited         bool
	// taskProcs: the processes of its command tasks; its sandbox is
	// collected once they (and proc) have exited.
	taskProcs   []*process
	gcScheduled bool
	// ids of this executor's forgotten tasks (bounded), whose re-sent updates
	// are acknowledged and dropped
	completed      map[string]struct{}
	completedOrder []string
	containerID    string // its container's id (ContainerStatus.container_id)
}

// maxReceivedUUIDs bounds the uuids an agent remembers per task, and the
// forgotten task ids it remembers per executor, to recognise re-sent updates.
const maxReceivedUUIDs = 1024

// rememberCompleted records a forgotten task of the executor.
func (e *executor) rememberCompleted(id string) {
	if e.completed == nil {
		e.completed = map[string]struct{}{}
	}
	if _, ok := e.completed[id]; ok {
		return
	}
	if len(e.completedOrder) >= maxReceivedUUIDs {
		delete(e.completed, e.completedOrder[0])
		e.completedOrder = e.completedOrder[1:]
	}
	e.completed[id] = struct{}{}
	e.completedOrder = append(e.completedOrder, id)
}

type task struct {
	id         string
	info       mesos.TaskInfo
	fw         *framework
	agent      *agent
	exec       *executor
	res        res
	state      mesos.TaskState // the master's view
	agentState mesos.TaskState // the agent's latest
	last       mesos.TaskStatus
	// statuses: the history the master keeps (Task.statuses): every update
	// it saw, consecutive ones of one state collapsed to the latest, data
	// dropped (Master::updateTask)
	statuses []mesos.TaskStatus
	// updateState: the state of the last update forwarded to the framework
	// with a uuid (Task.status_update_state, Master::forward); what
	// reconciliation answers. Nil before the first.
	updateState *mesos.TaskState
	pending     []mesos.TaskStatus // unacknowledged agent updates, oldest first
	nextResend  time.Time
	resendIval  time.Duration
	freed       bool
	killing     bool
	proc        *process
	simTimer    *time.Timer
	simLease    *simLease // the master lease of a simulated converge executor
	forgotten   bool
	unreach     *mesos.TimeInfo
	delivered   bool       // a custom executor got its LAUNCH
	group       *taskGroup // its task group, under the default executor
	// Its health and check status, as its executor last reported them.
	healthy        *bool
	checkStatus    *mesos.CheckStatusInfo
	stopChecks     func() // stops its checkers; nil when none run
	killedByHealth bool   // killed by its executor for failing its health check
	// uuids of every update the agent received for the task, oldest first
	// (at most maxReceivedUUIDs; dropped when the task is forgotten), as the
	// status update stream's received set
	received [][16]byte
}

// receive records an update's uuid; false if the agent already received it.
func (t *task) receive(uuid []byte) bool {
	var k [16]byte
	copy(k[:], uuid)
	for _, r := range t.received {
		if r == k {
			return false
		}
	}
	if len(t.received) >= maxReceivedUUIDs {
		t.received = append(t.received[:0:0], t.received[1:]...)
	}
	t.received = append(t.received, k)
	return true
}

// New validates the options and builds the cluster; Start makes it listen.
func New(o Options) (*Mesos, error) {
	o.setDefaults()
	spec, err := ParseAgentResources(o.AgentResources)
	if err != nil {
		return nil, fmt.Errorf("agent resources: %w", err)
	}
	if o.GCDiskHeadroom > 1 {
		// As the agent checks --gc_disk_headroom (slave.cpp).
		return nil, fmt.Errorf("gc disk headroom %v: must be between 0.0 and 1.0", o.GCDiskHeadroom)
	}
	if o.Sim.FailureRate < 0 || o.Sim.FailureRate > 1 {
		return nil, fmt.Errorf("sim failure rate %v: want a probability in [0,1]", o.Sim.FailureRate)
	}
	m := &Mesos{
		opts:       o,
		log:        o.Log,
		agentsByID: map[string]*agent{},
		frameworks: map[string]*framework{},
		removed:    map[string]string{},
		offers:     map[string]*offer{},
		resend:     map[*task]struct{}{},
		executors:  map[string]*executor{},
		rng:        mrand.New(mrand.NewSource(o.Sim.Seed)),
		stop:       make(chan struct{}),
	}
	for i := 0; i < o.Masters; i++ {
		m.masters = append(m.masters, &master{idx: i, id: newMasterID()})
	}
	m.baseID = m.masters[0].id
	for i := 0; i < o.Agents; i++ {
		attrs, err := agentAttributes(o.AgentAttributes, i)
		if err != nil {
			return nil, fmt.Errorf("agent attributes: %w", err)
		}
		total := res{cpus: spec.Scalars["cpus"], mem: spec.Scalars["mem"], disk: spec.Scalars["disk"], ports: agentPorts(spec.Ports, i)}
		for k, v := range spec.Scalars {
			if k != "cpus" && k != "mem" && k != "disk" {
				if total.other == nil {
					total.other = map[string]float64{}
				}
				total.other[k] = v
			}
		}
		a := &agent{
			idx:       i,
			id:        fmt.Sprintf("%s-S%d", m.baseID, i),
			hostname:  agentHostname(i),
			total:     total,
			attrs:     attrs,
			reachable: true,
			tasks:     map[*task]struct{}{},
			executors: map[string]*executor{},
		}
		m.agents = append(m.agents, a)
		m.agentsByID[a.id] = a
	}
	return m, nil
}

// agentHostname gives agent i the loopback address 127.0.0.(i+1), carrying into the
// third and second octets past 255 (all of 127.0.0.0/8 is loopback on Linux).
func agentHostname(i int) string {
	n := i + 1
	return fmt.Sprintf("127.%d.%d.%d", (n>>16)&255, (n>>8)&255, n&255)
}

func newMasterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newUUID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return b
}

func uuidString(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Start listens on every master's address and starts the allocator and the status
// update resender. They stop when ctx ends or Close is called.
func (m *Mesos) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("localmesos: already started")
	}
	m.started = true
	m.mu.Unlock()

	if m.opts.WorkDir == "" {
		dir, err := os.MkdirTemp("", "localmesos-")
		if err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
		m.workDir, m.ownWorkDir = dir, true
	} else {
		if err := os.MkdirAll(m.opts.WorkDir, 0o755); err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
		m.workDir = m.opts.WorkDir
	}
	host, _, err := net.SplitHostPort(m.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", m.opts.Listen, err)
	}
	for i, ms := range m.masters {
		addr := m.opts.Listen
		if i > 0 {
			addr = net.JoinHostPort(host, "0")
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			m.closeListeners()
			return fmt.Errorf("master %d listen on %s: %w", i, addr, err)
		}
		ms.ln = ln
		tcp := ln.Addr().(*net.TCPAddr)
		ms.port = tcp.Port
		ms.hostname = m.opts.Hostname
		if ms.hostname == "" {
			ms.hostname = host
			if ms.hostname == "" || ms.hostname == "0.0.0.0" || ms.hostname == "::" {
				ms.hostname = "127.0.0.1"
			}
		}
		ms.srv = &http.Server{Handler: m.handlerFor(ms), ReadHeaderTimeout: 10 * time.Second}
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	if !m.opts.Simulate {
		if err := m.startSandboxes(); err != nil {
			m.closeListeners()
			m.cancel()
			return err
		}
		if err := m.startAgentListeners(host); err != nil {
			m.closeListeners()
			m.cancel()
			return err
		}
	}
	for _, ms := range m.masters {
		ms := ms
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := ms.srv.Serve(ms.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error(err, "master server stopped", "master", ms.idx)
			}
		}()
	}
	m.wg.Add(2)
	go m.allocatorLoop()
	go m.resendLoop()
	go func() {
		<-m.ctx.Done()
		_ = m.Close()
	}()
	m.log.Info("local mesos started", "url", m.URL(), "masters", len(m.masters), "agents", len(m.agents), "simulate", m.opts.Simulate, "workDir", m.workDir)
	return nil
}

func (m *Mesos) closeListeners() {
	for _, ms := range m.masters {
		if ms.ln != nil {
			ms.ln.Close()
		}
	}
	for _, a := range m.agents {
		if a.ln != nil {
			a.ln.Close()
		}
	}
}

// URL is the leading master's "http://host:port".
func (m *Mesos) URL() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return "http://" + m.masters[m.leader].hostport()
}

// URLs lists every master's "http://host:port", in master order.
func (m *Mesos) URLs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.masters))
	for i, ms := range m.masters {
		out[i] = "http://" + ms.hostport()
	}
	return out
}

// agentEndpoint is the host:port where a's executors reach its executor API.
func (m *Mesos) agentEndpoint(a *agent) string {
	if a.endpoint != "" {
		return a.endpoint
	}
	return m.masters[m.leader].hostport()
}

// port is the port an agent advertises (offers' url, state's pid).
func (a *agent) port() int {
	if a.ln != nil {
		return a.ln.Addr().(*net.TCPAddr).Port
	}
	return 5051
}

// startAgentListeners gives every agent its own executor API endpoint on its
// hostname (falling back to the master's host when that address cannot be bound).
func (m *Mesos) startAgentListeners(host string) error {
	for _, a := range m.agents {
		ln, err := net.Listen("tcp", net.JoinHostPort(a.hostname, "0"))
		if err != nil {
			ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				return fmt.Errorf("agent %s listen: %w", a.id, err)
			}
		}
		a.ln = ln
		a.endpoint = ln.Addr().String()
		a := a
		mux := http.NewServeMux()
		mux.HandleFunc("/api/v1/executor", func(w http.ResponseWriter, r *http.Request) { m.serveExecutor(a, w, r) })
		mux.HandleFunc("/files/read", func(w http.ResponseWriter, r *http.Request) { m.serveFilesRead(a, w, r) })
		a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	for _, a := range m.agents {
		a := a
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error(err, "agent server stopped", "agent", a.id)
			}
		}()
	}
	return nil
}

// Close stops the servers, kills every process and ends every stream.
func (m *Mesos) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.stop)
	var procs []*process
	for _, a := range m.agents {
		for t := range a.tasks {
			if t.simTimer != nil {
				t.simTimer.Stop()
			}
			if t.proc != nil {
				procs = append(procs, t.proc)
			}
		}
		for _, e := range a.executors {
			if e.proc != nil {
				procs = append(procs, e.proc)
			}
		}
		procs = append(procs, a.goneProcs...)
	}
	for _, fw := range m.frameworks {
		if fw.failoverTimer != nil {
			fw.failoverTimer.Stop()
		}
	}
	cancel := m.cancel
	m.mu.Unlock()
	for _, p := range procs {
		p.killNow()
	}
	if cancel != nil {
		cancel()
	}
	ctx, done := context.WithTimeout(context.Background(), 2*time.Second)
	defer done()
	for _, ms := range m.masters {
		if ms.srv != nil {
			_ = ms.srv.Shutdown(ctx)
			_ = ms.srv.Close()
		}
	}
	for _, a := range m.agents {
		if a.srv != nil {
			_ = a.srv.Shutdown(ctx)
			_ = a.srv.Close()
		}
	}
	for _, p := range procs {
		p.wait(2 * time.Second)
	}
	m.wg.Wait()
	if m.ownWorkDir {
		_ = os.RemoveAll(m.workDir)
	}
	return nil
}

// Handler serves every endpoint as the leading master (for httptest servers).
func (m *Mesos) Handler() http.Handler { return m.handlerFor(nil) }

func (m *Mesos) handlerFor(ms *master) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/scheduler", func(w http.ResponseWriter, r *http.Request) { m.serveScheduler(ms, w, r) })
	mux.HandleFunc("/api/v1/executor", func(w http.ResponseWriter, r *http.Request) { m.serveExecutor(nil, w, r) })
	mux.HandleFunc("/api/v1", func(w http.ResponseWriter, r *http.Request) { m.serveOperator(ms, w, r) })
	mux.HandleFunc("/master/api/v1", func(w http.ResponseWriter, r *http.Request) { m.serveOperator(ms, w, r) })
	mux.HandleFunc("/master/state", func(w http.ResponseWriter, r *http.Request) { m.serveState(ms, w, r) })
	mux.HandleFunc("/state", func(w http.ResponseWriter, r *http.Request) { m.serveState(ms, w, r) })
	mux.HandleFunc("/master/redirect", m.serveRedirect)
	mux.HandleFunc("/redirect", m.serveRedirect)
	mux.HandleFunc("/fault/", m.serveFault)
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }
