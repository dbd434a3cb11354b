// Package bench is converge's scale benchmark (docs/design.md section 5): in one
// process it starts a real embedded etcd, a local Mesos in simulate mode and the
// controller, applies N clusters of R replicas with position elections, waits
// until every one is Ready with its master elected, then measures the converged
// idle state, the cost of one failed member and the etcd write ceiling of the
// same machine. `converge bench` and the smoke test share Run.
package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

// Options configure a benchmark run. Zero values take the defaults below.
type Options struct {
	Clusters int // default 1000
	Replicas int // default 10
	Agents   int // default 1000
	// AllocationInterval between localmesos offer rounds (default 1s, a real
	// Mesos master's default --allocation_interval).
	AllocationInterval time.Duration
	// LaunchDelay of simulated tasks between STARTING and RUNNING (default 50ms).
	LaunchDelay time.Duration
	// Workers reconciling clusters in parallel (default controller.DefaultWorkers).
	Workers int
	// Shards, when 2 or more, runs that many controller processes, each
	// leading one shard (its own Mesos framework) and standing by for the
	// next; process 0 is killed once half the clusters are Ready, and its
	// shard taken over (fleet.go). 0: one unsharded controller.
	Shards int
	// ShardTTL is the shard leaders' lease TTL (default leader.DefaultTTL):
	// a killed leader's shard is taken over about this long after.
	ShardTTL time.Duration
	// ApplyParallelism: concurrent creates, as parallel `converge apply`s (default 32).
	ApplyParallelism int
	// Timeout for convergence (default 5 minutes).
	Timeout time.Duration
	// Idle is how long the converged state is watched (default 3s), after
	// Settle (default 1s) for the last writes of convergence to land.
	Idle, Settle time.Duration
	// CeilingFor and CeilingClients shape the etcd ceiling measurement
	// (defaults 2s and 64 goroutines doing sequential single-key puts).
	CeilingFor     time.Duration
	CeilingClients int
	// QuietFor: before the one-failure measurement, wait until no reconcile
	// has run for this long (default 2s, longer than the 1 s requeue of
	// unconfirmed followers), for at most QuietCap (default 3m; when it
	// passes, the failure is measured all the same and the output says so).
	QuietFor, QuietCap time.Duration
	// ResyncInterval of the controllers (0: controller.DefaultResyncInterval).
	ResyncInterval time.Duration
	// SkipFailure and SkipCeiling leave those phases out.
	SkipFailure, SkipCeiling bool
	// Dir holds etcd's data (default: a temporary directory removed at the end).
	Dir string
	// CPUProfile, when set, receives a CPU profile of first apply to Ready.
	CPUProfile string
	// BlockProfile, when set, receives a profile of where goroutines waited
	// (channels, locks, selects) from first apply to Ready: the profile of a
	// run that is latency-bound rather than CPU-bound.
	BlockProfile string
	// MemProfile, when set, receives a heap profile taken at Ready (after a
	// GC), to tell the controller's share of heap_mb from etcd's and localmesos's.
	MemProfile string
	// Progress, when set, gets one line per phase (for a human watching).
	Progress func(format string, args ...any)
	// Timeline, when > 0, adds a Progress line at this interval during
	// convergence: clusters ready, ledger tasks by state, acks, queue, writes.
	Timeline time.Duration
	Log      logr.Logger
}

func (o *Options) setDefaults() {
	if o.Clusters <= 0 {
		o.Clusters = 1000
	}
	if o.Replicas <= 0 {
		o.Replicas = 10
	}
	if o.Agents <= 0 {
		o.Agents = 1000
	}
	if o.AllocationInterval <= 0 {
		o.AllocationInterval = time.Second
	}
	if o.LaunchDelay <= 0 {
		o.LaunchDelay = 50 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = controller.DefaultWorkers
	}
	if o.ShardTTL <= 0 {
		o.ShardTTL = leader.DefaultTTL
	}
	if o.ApplyParallelism <= 0 {
		o.ApplyParallelism = 32
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Idle <= 0 {
		o.Idle = 3 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	if o.QuietFor <= 0 {
		o.QuietFor = 2 * time.Second
	}
	if o.QuietCap <= 0 {
		o.QuietCap = 3 * time.Minute
	}
	if o.CeilingFor <= 0 {
		o.CeilingFor = 2 * time.Second
	}
	if o.CeilingClients <= 0 {
		o.CeilingClients = 64
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
}

// Result is what a run measured; its JSON is `converge bench --json`.
type Result struct {
	Clusters             int     `json:"clusters"`
	Replicas             int     `json:"replicas"`
	Agents               int     `json:"agents"`
	Tasks                int     `json:"tasks"`
	AllocationIntervalMS float64 `json:"allocation_interval_ms"`
	LaunchDelayMS        float64 `json:"sim_launch_delay_ms"`
	ControllerWorkers    int     `json:"controller_workers"`
	GOMAXPROCS           int     `json:"gomaxprocs"`

	// ApplySeconds: first to last create. ConvergeSeconds: first create until
	// every cluster is Ready with its master elected.
	ApplySeconds    float64 `json:"apply_seconds"`
	ConvergeSeconds float64 `json:"converge_seconds"`
	TasksPerSecond  float64 `json:"tasks_per_second"`

	// etcd writes made by the controller from the first apply to Ready. The
	// applies themselves (one create per cluster, through a separate client)
	// are excluded: ApplyWritesExcluded says how many. EtcdWritesPerTask counts
	// key writes (puts+deletes); EtcdTxnsPerTask counts write requests
	// (transactions: a batch of writes is one).
	EtcdWritesPerTask   float64 `json:"etcd_writes_per_task"`
	EtcdTxnsPerTask     float64 `json:"etcd_txns_per_task"`
	EtcdWrites          Writes  `json:"etcd_writes"`
	ApplyWritesExcluded int64   `json:"apply_writes_excluded"`
	// EtcdPutsByKind at Ready: puts per key kind (clusters, tasks, elections,
	// endpoints, events), from etcd's key versions; cluster creates included.
	EtcdPutsByKind map[string]int64 `json:"etcd_puts_by_kind"`
	// EtcdTxnsPerSecond: the controller's write requests per second during
	// convergence, to read against EtcdCeilingWritesPerSecond.
	EtcdTxnsPerSecond float64 `json:"etcd_txns_per_second"`
	StatusWrites      int64   `json:"status_writes"`
	Reconciles        int64   `json:"reconciles"`
	// MesosDials: TCP connections the controller dialled to the master, from
	// the start to Ready (converge_mesos_dials_total; reused connections are
	// not dialled again).
	MesosDials int64 `json:"mesos_dials"`

	// Status update arrival at the controller to ACKNOWLEDGE returned, during convergence.
	Acks            int     `json:"acks"`
	AckLatencyP50MS float64 `json:"ack_latency_p50_ms"`
	AckLatencyP99MS float64 `json:"ack_latency_p99_ms"`
	AckLatencyMaxMS float64 `json:"ack_latency_max_ms"`
	// The part of it until the ledger write was durable and the ACKNOWLEDGE
	// queued; the rest is the wait for an acknowledger and the HTTP call.
	AckDurableP50MS float64 `json:"ack_durable_p50_ms"`
	AckDurableP99MS float64 `json:"ack_durable_p99_ms"`

	// Process figures: etcd, localmesos and the controller share the process,
	// so these bound the controller's own from above.
	ControllerCPUSeconds float64 `json:"controller_cpu_seconds"`
	PeakRSSMB            float64 `json:"peak_rss_mb"`
	HeapMB               float64 `json:"heap_mb"`
	// ControllerHeapMB: the controller's share of HeapMB, from the heap
	// profile (see controllerHeapMB).
	ControllerHeapMB float64 `json:"controller_heap_mb"`

	// Converged and idle.
	SettleSeconds       float64 `json:"settle_seconds"`
	IdleSeconds         float64 `json:"idle_seconds"`
	SettleWrites        int64   `json:"settle_writes"`
	IdleWritesPerSecond float64 `json:"idle_writes_per_second"`
	IdleCPUPercent      float64 `json:"idle_cpu_percent"`
	IdleOffers          int64   `json:"idle_offers_received"`
	IdleDeclines        int64   `json:"idle_declines"`
	IdleReconciles      int64   `json:"idle_reconciles"`
	OffersSuppressed    bool    `json:"offers_suppressed"`

	// Before the failure, the wait until no reconcile ran for QuietFor: how
	// long until the last reconcile (the wait lasts QuietFor more) and how
	// many ran meanwhile, for the first wait, right after the idle window
	// (the tail of convergence: follower confirmations, resync sweeps).
	// QuietCapHit: a wait reached QuietCap without a quiet stretch.
	QuietForSeconds float64 `json:"quiet_for_seconds"`
	QuietSeconds    float64 `json:"quiet_seconds"`
	QuietReconciles int64   `json:"quiet_reconciles"`
	QuietCapHit     bool    `json:"quiet_cap_hit"`

	// One member (a cluster's master) failed among all tasks, once the
	// controller is quiet. OneFailureResyncs: resync sweeps from the start of
	// the quiet stretch to the end of the measurement; a sweep reconciles
	// every cluster, so when one fell inside, the measurement is repeated on
	// another cluster, up to 3 attempts (OneFailureAttempts). The figures are
	// the last attempt's.
	OneFailureAttempts        int     `json:"one_failure_attempts"`
	OneFailureResyncs         int64   `json:"one_failure_resyncs"`
	OneFailureTask            string  `json:"one_failure_task,omitempty"`
	OneFailureRecoverSeconds  float64 `json:"one_failure_recover_seconds"`
	OneFailureReconciles      int64   `json:"one_failure_reconciles"`
	OneFailureWrites          int64   `json:"one_failure_writes"`
	OneFailureTxns            int64   `json:"one_failure_txns"`
	OneFailureClustersTouched int     `json:"one_failure_clusters_touched"`

	EtcdCeilingWritesPerSecond float64 `json:"etcd_ceiling_writes_per_second"`
	EtcdCeilingClients         int     `json:"etcd_ceiling_clients"`
	// EtcdCeilingRatio: etcd_txns_per_second / etcd_ceiling_writes_per_second,
	// how much of the same etcd's raw write rate convergence used.
	EtcdCeilingRatio float64 `json:"etcd_ceiling_ratio"`

	// LoadAverage1m at the start and the end of the run (/proc/loadavg): the
	// machine is shared, and other load shows in every latency.
	LoadAverageStart float64 `json:"load_average_1m_start"`
	LoadAverageEnd   float64 `json:"load_average_1m_end"`

	// With --shards N (fleet.go): the clusters of each shard, the process
	// killed once half the clusters were Ready and how many were then, the
	// process that took its shard over and how long from the kill until its
	// framework was subscribed again; tasks running under another shard's
	// framework, and clusters whose tasks ran under two (both must be 0).
	Shards               int     `json:"shards,omitempty"`
	ShardClusters        []int   `json:"shard_clusters,omitempty"`
	ShardKilled          *int    `json:"shard_killed_process,omitempty"`
	ShardKilledAtReady   int     `json:"shard_killed_at_ready_clusters,omitempty"`
	ShardTakenOverBy     int     `json:"shard_taken_over_by_process,omitempty"`
	ShardTakeoverSeconds float64 `json:"shard_takeover_seconds,omitempty"`
	ShardTasksMisplaced  int     `json:"shard_tasks_misplaced"`
	ShardClustersSplit   int     `json:"shard_clusters_split"`

	Notes []string `json:"notes"`
}

// Writes are store.Stats differences.
type Writes struct {
	Txns    int64 `json:"txns"`
	Puts    int64 `json:"puts"`
	Deletes int64 `json:"deletes"`
	Reads   int64 `json:"reads"`
}

func diff(a, b store.Stats) Writes {
	return Writes{Txns: b.Txns - a.Txns, Puts: b.Puts - a.Puts, Deletes: b.Deletes - a.Deletes, Reads: b.Reads - a.Reads}
}

// Run runs the benchmark. It returns an error when a part fails to start or
// the clusters do not converge within o.Timeout.
func Run(ctx context.Context, o Options) (res Result, err error) {
	o.setDefaults()
	if o.Shards == 1 {
		o.Shards = 0
	}
	res = Result{
		Clusters: o.Clusters, Replicas: o.Replicas, Agents: o.Agents, Tasks: o.Clusters * o.Replicas,
		AllocationIntervalMS: ms(o.AllocationInterval), LaunchDelayMS: ms(o.LaunchDelay),
		ControllerWorkers: o.Workers, GOMAXPROCS: runtime.GOMAXPROCS(0),
		EtcdCeilingClients: o.CeilingClients,
		LoadAverageStart:   loadAverage(),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{o: o, res: &res}
	defer func() {
		r.stop()
		if err == nil && r.ctrlErr != nil {
			err = r.ctrlErr
		}
	}()
	for _, start := range []func(context.Context) error{r.startEtcd, r.startMesos, r.startControllers} {
		if err := start(ctx); err != nil {
			return res, err
		}
	}
	if err := r.converge(ctx); err != nil {
		return res, err
	}
	r.measureIdle()
	if !o.SkipFailure {
		if err := r.measureFailure(ctx); err != nil {
			return res, err
		}
	}
	if !o.SkipCeiling {
		res.EtcdCeilingWritesPerSecond, err = ceiling(ctx, r.user, o.CeilingClients, o.CeilingFor)
		if err != nil {
			return res, err
		}
		res.EtcdCeilingRatio = res.EtcdTxnsPerSecond / res.EtcdCeilingWritesPerSecond
		o.Progress("etcd ceiling: %.0f writes/s (%d clients, sequential single-key puts)", res.EtcdCeilingWritesPerSecond, o.CeilingClients)
	}
	if o.Shards > 0 {
		shardFigures(o, r.m, &res)
	}
	res.LoadAverageEnd = loadAverage()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.PeakRSSMB = float64(ru.Maxrss) / 1024 // kilobytes on Linux
	}
	res.Notes = append(resultNotes(), r.notes...)
	return res, nil
}

// run is one benchmark run: the parts it started, which its phases share,
// and how to stop each. stop undoes them in reverse, so that the
// controllers stop before the Mesos and etcd they talk to, and whatever
// started before a failure is stopped all the same.
type run struct {
	o   Options
	res *Result

	etcdURL       string
	user          *store.Store // the "users'" client: applies, watches, the ceiling
	m             *localmesos.Mesos
	fl            *fleet
	acks, durable *ackRecorder
	tracker       *tracker
	atReady       store.Stats // the controllers' writes when the last cluster was Ready

	stops   []func()
	ctrlErr error    // a controller that stopped by itself, seen at stop
	notes   []string // what went other than planned and was measured anyway
}

// onStop adds f to what stop runs, before everything added earlier.
func (r *run) onStop(f func()) { r.stops = append(r.stops, f) }

// stop stops what was started, last first.
func (r *run) stop() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
}

// startEtcd starts the embedded etcd (in o.Dir, else a temporary
// directory removed at the end) and the users' client. The controllers
// and the users have their own clients, so the controllers' Stats count
// only their own writes.
func (r *run) startEtcd(ctx context.Context) error {
	dir := r.o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "converge-bench-")
		if err != nil {
			return err
		}
		r.onStop(func() { os.RemoveAll(d) })
		dir = d
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	r.etcdURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	etcd, err := etcdtest.StartEmbedded(filepath.Join(dir, "etcd"), r.etcdURL)
	if err != nil {
		return err
	}
	r.onStop(etcd.Close)
	if r.user, err = store.New(ctx, store.Options{Endpoints: []string{r.etcdURL}}); err != nil {
		return err
	}
	r.onStop(func() { r.user.Close() })
	r.o.Progress("etcd %s (data in %s)", r.etcdURL, dir)
	return nil
}

// startMesos starts the local Mesos of simulated agents.
func (r *run) startMesos(ctx context.Context) error {
	o := r.o
	m, err := localmesos.New(localmesos.Options{
		Listen: "127.0.0.1:0", Agents: o.Agents, Simulate: true,
		Sim:                localmesos.SimOptions{LaunchDelay: o.LaunchDelay},
		AllocationInterval: o.AllocationInterval,
		Log:                o.Log.WithName("localmesos"),
	})
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	r.m = m
	r.onStop(func() { m.Close() })
	o.Progress("local Mesos %s: %d simulated agents, allocation interval %s, launch delay %s",
		m.URL(), o.Agents, o.AllocationInterval, o.LaunchDelay)
	return nil
}

// startControllers starts the controllers and waits until they are
// subscribed. A controller that stops by itself is reported at stop.
func (r *run) startControllers(ctx context.Context) error {
	r.acks, r.durable = &ackRecorder{}, &ackRecorder{}
	r.fl = newFleet(r.o, r.etcdURL, r.m, r.acks, r.durable)
	r.onStop(func() {
		r.fl.stop()
		select {
		case cerr := <-r.fl.errs:
			r.ctrlErr = fmt.Errorf("controller: %w", cerr)
		default:
		}
	})
	if err := r.fl.start(ctx); err != nil {
		return err
	}
	r.o.Progress("%d controller(s) subscribed (%d workers each)", max(r.o.Shards, 1), r.o.Workers)
	return nil
}

// baseline holds the counters at the first apply, which the convergence
// figures are measured from.
type baseline struct {
	start                    time.Time
	cpu                      time.Duration
	stats                    store.Stats
	reconciles, statusWrites float64
}

// converge applies the clusters, waits until every one is Ready with its
// master elected (profiling that stretch if asked), then measures it.
func (r *run) converge(ctx context.Context) error {
	o, res := r.o, r.res
	r.tracker = newTracker(o.Clusters, o.Replicas)
	watchCtx, stopWatch := context.WithCancel(ctx)
	r.onStop(stopWatch)
	go r.tracker.run(r.user.Watch(watchCtx, "", 0))
	if err := r.startProfiles(); err != nil {
		return err
	}
	b := baseline{
		cpu:          cpuTime(),
		stats:        r.fl.Stats(),
		reconciles:   r.fl.counter("converge_controller_reconciles_total"),
		statusWrites: r.fl.counter("converge_controller_status_writes_total"),
		start:        time.Now(),
	}
	r.tracker.start = b.start
	appliedAt, err := apply(ctx, r.user, o)
	if err != nil {
		return err
	}
	res.ApplySeconds = appliedAt.Sub(b.start).Seconds()
	res.ApplyWritesExcluded = int64(o.Clusters)
	o.Progress("applied %d clusters of %d replicas in %.2fs", o.Clusters, o.Replicas, res.ApplySeconds)

	stopTimeline := timeline(o, r.tracker, r.fl.registries, r.fl, r.acks, b.start)
	stopKiller := killMidRun(ctx, o, r.fl, r.tracker, res)
	if err := r.waitReady(ctx); err != nil {
		return err
	}
	stopTimeline()
	if err := stopKiller(); err != nil {
		return err
	}
	if o.BlockProfile != "" {
		if err := writeProfile("block", o.BlockProfile); err != nil {
			return err
		}
		runtime.SetBlockProfileRate(0)
	}
	return r.measureConvergence(ctx, b)
}

// startProfiles starts the CPU profile (stopped once every cluster is
// Ready) and block profiling, if asked.
func (r *run) startProfiles() error {
	if r.o.CPUProfile != "" {
		f, err := os.Create(r.o.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		stopProf := sync.OnceFunc(func() { pprof.StopCPUProfile(); f.Close() })
		r.onStop(stopProf)
		r.tracker.onAllReady = stopProf
	}
	if r.o.BlockProfile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		r.onStop(func() { runtime.SetBlockProfileRate(0) })
	}
	return nil
}

// waitReady waits until every cluster is Ready, within o.Timeout, unless a
// controller stops first (its error is put back for stop to report).
func (r *run) waitReady(ctx context.Context) error {
	select {
	case <-r.tracker.allReady:
		return nil
	case <-time.After(r.o.Timeout):
		return fmt.Errorf("not converged within %s: %d of %d clusters ready", r.o.Timeout, r.tracker.readyCount(), r.o.Clusters)
	case cerr := <-r.fl.errs:
		r.fl.errs <- cerr
		return fmt.Errorf("controller stopped before convergence: %v", cerr)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measureConvergence fills the convergence figures, from b to the moment
// the last cluster was Ready: rate, etcd writes, acknowledgement latency,
// CPU and heap.
func (r *run) measureConvergence(ctx context.Context, b baseline) error {
	o, res, fl := r.o, r.res, r.fl
	readyAt := r.tracker.readyAt()
	r.atReady = fl.Stats()
	cpu1 := cpuTime()
	ackSamples, durableSamples := r.acks.snapshot(), r.durable.snapshot()
	conv := readyAt.Sub(b.start)
	res.ConvergeSeconds = conv.Seconds()
	res.TasksPerSecond = float64(res.Tasks) / conv.Seconds()
	w := diff(b.stats, r.atReady)
	res.EtcdWrites = w
	res.EtcdWritesPerTask = float64(w.Puts+w.Deletes) / float64(res.Tasks)
	res.EtcdTxnsPerTask = float64(w.Txns) / float64(res.Tasks)
	res.EtcdTxnsPerSecond = float64(w.Txns) / conv.Seconds()
	var err error
	if res.EtcdPutsByKind, err = writesByKind(ctx, r.user); err != nil {
		return err
	}
	res.StatusWrites = int64(fl.counter("converge_controller_status_writes_total") - b.statusWrites)
	res.Reconciles = int64(fl.counter("converge_controller_reconciles_total") - b.reconciles)
	res.MesosDials = int64(fl.counter("converge_mesos_dials_total"))
	res.ControllerCPUSeconds = (cpu1 - b.cpu).Seconds()
	res.Acks = len(ackSamples)
	res.AckLatencyP50MS, res.AckLatencyP99MS, res.AckLatencyMaxMS = quantileMS(ackSamples, 0.5), quantileMS(ackSamples, 0.99), quantileMS(ackSamples, 1)
	res.AckDurableP50MS, res.AckDurableP99MS = quantileMS(durableSamples, 0.5), quantileMS(durableSamples, 0.99)
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	res.HeapMB = float64(mem.HeapAlloc) / (1 << 20)
	runtime.GC() // the heap profile is as of the last completed cycle
	res.ControllerHeapMB = controllerHeapMB()
	if o.MemProfile != "" {
		if err := writeProfile("heap", o.MemProfile); err != nil {
			return err
		}
	}
	o.Progress("converged in %.2fs: %d tasks Ready, masters elected", res.ConvergeSeconds, res.Tasks)
	return nil
}

// measureIdle watches the converged state for o.Idle, after o.Settle for
// the last writes of convergence to land: writes, CPU, offers.
func (r *run) measureIdle() {
	o, res, fl := r.o, r.res, r.fl
	res.SettleSeconds = o.Settle.Seconds()
	time.Sleep(o.Settle)
	stats2 := fl.Stats()
	res.SettleWrites = diff(r.atReady, stats2).Txns
	offers0 := fl.counter("converge_controller_offers_total")
	declines0 := fl.counter("converge_mesos_offers_declined_total")
	rec0 := fl.counter("converge_controller_reconciles_total")
	cpuIdle0 := cpuTime()
	idleStart := time.Now()
	time.Sleep(o.Idle)
	idle := time.Since(idleStart)
	cpuIdle1 := cpuTime()
	stats3 := fl.Stats()
	iw := diff(stats2, stats3)
	res.IdleSeconds = idle.Seconds()
	res.IdleWritesPerSecond = float64(iw.Txns) / idle.Seconds()
	res.IdleCPUPercent = 100 * (cpuIdle1 - cpuIdle0).Seconds() / idle.Seconds()
	res.IdleOffers = int64(fl.counter("converge_controller_offers_total") - offers0)
	res.IdleDeclines = int64(fl.counter("converge_mesos_offers_declined_total") - declines0)
	res.IdleReconciles = int64(fl.counter("converge_controller_reconciles_total") - rec0)
	res.OffersSuppressed = res.IdleOffers == 0 && outstandingOffers(r.m) == 0
	o.Progress("idle %.1fs: %.1f writes/s, %.1f%% CPU, %d offers", res.IdleSeconds, res.IdleWritesPerSecond, res.IdleCPUPercent, res.IdleOffers)
}

// resultNotes say how to read Result's figures.
func resultNotes() []string {
	return []string{
		"etcd, localmesos and the controller run in one process: controller_cpu_seconds (first apply to Ready), peak_rss_mb and heap_mb (after GC at Ready) are the whole process's, an upper bound on the controller's; controller_heap_mb is the live heap allocated in the controller, store and mesosbridge packages (runtime heap profile, scaled for sampling), without etcd's server, localmesos and the benchmark's",
		"etcd_writes_per_task counts key writes (puts+deletes) of the controller's store client from the first apply to Ready; etcd_txns_per_task counts its write requests (a batch is one); the applies (apply_writes_excluded, one create per cluster through another client) are excluded",
		"ack latency: a status update's arrival at the controller to its ACKNOWLEDGE call returning, which follows the durable ledger write; ack_durable_* is the part until the write was durable and the ACKNOWLEDGE queued",
		"idle: measured after settle_seconds; offers_suppressed means no offer reached the controller and none was outstanding",
		"one failure: a cluster's elected master is failed through localmesos's fault API once no reconcile has run for quiet_for_seconds (quiet_seconds: until the last reconcile, quiet_reconciles: how many ran meanwhile); counted until the cluster is Ready again with a new master and all replicas, and settle_seconds more; one_failure_resyncs counts resync sweeps from the quiet stretch's start to the end (retried on another cluster while not 0, one_failure_attempts at most 3)",
		"etcd_ceiling_writes_per_second: etcd_ceiling_clients goroutines doing sequential single-key puts against the same etcd after the run; etcd_ceiling_ratio = etcd_txns_per_second / etcd_ceiling_writes_per_second",
	}
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return f.Close()
}

// loadAverage is the 1-minute load average (0 where /proc/loadavg is absent).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscan(string(b), &l)
	return l
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func outstandingOffers(m *localmesos.Mesos) int {
	n := 0
	for _, fw := range m.State().Frameworks {
		n += len(fw.Offers)
	}
	return n
}

// ClusterName is the name of the i-th benchmark cluster.
func ClusterName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// NewCluster is the benchmark's cluster: replicas members of 0.1 cpu, 64 MiB and
// a port each, one per agent, with a position election, as a user would apply it.
// Members count as ready as soon as they run (minReadySeconds 0): the
// benchmark measures the controller, and the default 10 s would add a constant.
func NewCluster(i, replicas int) *v1alpha1.Cluster {
	r, minReady := int32(replicas), int32(0)
	cpus, mem := resource.MustParse("100m"), resource.MustParse("64Mi")
	c := &v1alpha1.Cluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: ClusterName(i), Namespace: v1alpha1.DefaultNamespace, Labels: map[string]string{"app": "bench"}},
		Spec: v1alpha1.ClusterSpec{
			Replicas: &r,
			Task: v1alpha1.TaskSpec{
				Command:   "exec mysqld --port=$PORT0",
				Resources: v1alpha1.Resources{CPUs: &cpus, Mem: &mem, Ports: 1},
			},
			Placement: v1alpha1.Placement{Spread: v1alpha1.SpreadHostname},
			Update:    v1alpha1.Update{MinReadySeconds: &minReady},
			Election: v1alpha1.Election{
				Strategy:        v1alpha1.ElectionPosition,
				PositionCommand: "mysql -Ne 'select @@gtid_executed'",
				PromoteCommand:  "/opt/bin/promote.sh",
			},
		},
	}
	v1alpha1.SetDefaults(c)
	return c
}

// apply creates the clusters in parallel, as concurrent `converge apply`s would.
func apply(ctx context.Context, st *store.Store, o Options) (time.Time, error) {
	next := atomic.Int64{}
	errs := make(chan error, o.ApplyParallelism)
	var wg sync.WaitGroup
	for w := 0; w < o.ApplyParallelism; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.Clusters {
					return
				}
				c := NewCluster(i, o.Replicas)
				if verrs := v1alpha1.Validate(c); len(verrs) > 0 {
					select {
					case errs <- fmt.Errorf("cluster %s: %w", c.Name, verrs.ToAggregate()):
					default:
					}
					return
				}
				if _, err := st.Create(ctx, c); err != nil {
					select {
					case errs <- fmt.Errorf("create cluster %s: %w", c.Name, err):
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}
