package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/store"
)

// Config configures the controller.
type Config struct {
	// Store is where clusters, the ledger and elections live; possibly a fenced
	// view (HA), in which case a lost leadership stops the controller.
	Store *store.Store
	// Workers reconciling clusters in parallel (default 16: a reconcile mostly
	// waits on etcd and Mesos round trips, and etcd commits concurrent writes
	// together).
	Workers int
	// ResyncInterval: every cluster is looked at again this often (default
	// 5m), a safety net: every change the controller acts on arrives as an
	// event (watch, status update, offer, message) and every deadline the
	// planner sees is a requeue. At 30 s a sweep of 10,000 clusters was most
	// of the reconciles after convergence (15,343 in the 56 s to quiet).
	ResyncInterval time.Duration
	// UnreachableTimeout: an UNREACHABLE member stops counting after it and is
	// killed; its ordinal is relaunched once Mesos reports it finished (default 60s).
	UnreachableTimeout time.Duration
	// StallAfter: needs that no offer fits for this long make a cluster Stalled
	// with reason NoOfferFits (default 10s).
	StallAfter time.Duration
	// FrameworkName labels converge's reservations as its own (Run sets it
	// from the Mesos config; default "converge"); Principal is put in them.
	FrameworkName string
	Principal     string
	// Roles are the framework's roles (Run sets them from the Mesos config);
	// a cluster whose spec.role is not among them can get no offer and is
	// Stalled saying so. Empty: not checked.
	Roles []string
	// ExecutorURI is where agents fetch `converge executor` from (executable), for
	// clusters with election strategy position and no executor of their own.
	ExecutorURI string
	// ExecutorCommand runs it in the sandbox (default "./converge executor").
	ExecutorCommand string
	Log             logr.Logger
	Registerer      prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AckObserver, when set, is called for every acknowledged update with
	// total, the time from its arrival at the controller to the return of its
	// ACKNOWLEDGE call, and durable, the part until its ledger write was
	// durable and the ACKNOWLEDGE queued (the rest waits for a free
	// acknowledger and the HTTP round trip). It must not block. total also
	// feeds converge_controller_ack_latency_seconds.
	AckObserver func(total, durable time.Duration)
	// Shard, when its Count is above 1, limits the controller to the
	// clusters of that shard (shard.go); Store is then the shard's view
	// (store.Store.Shard) and the Mesos framework the shard's own.
	Shard Shard
	// Failpoint, when set, is called at each checkpoint boundary with its name
	// (the Failpoint* constants). A non-nil error stops the controller there as
	// a crash would: the step in progress is abandoned and Run returns the
	// error. Crash tests (issue 7) use it; production leaves it nil.
	Failpoint func(name string) error
}

// Failpoints: the checkpoint boundaries Config.Failpoint is called at.
const (
	FailpointLaunchBeforeCheckpoint = "launch/before-checkpoint" // launch records built, not written
	FailpointLaunchAfterCheckpoint  = "launch/after-checkpoint"  // launch records durable, no ACCEPT sent
	FailpointLaunchAfterAccept      = "launch/after-accept"      // ACCEPT calls returned
	FailpointAckBefore              = "ack/before"               // update durable, ACKNOWLEDGE not sent
	FailpointAckAfter               = "ack/after"                // ACKNOWLEDGE returned
	FailpointElectionBeforePersist  = "election/before-persist"  // election record decided, not written
	FailpointElectionAfterPersist   = "election/after-persist"   // election record durable, no message sent
	FailpointPublishBefore          = "publish/before"           // endpoints decided, not written
	FailpointPublishAfter           = "publish/after"            // endpoints durable
	FailpointStatusBefore           = "status/before"            // status decided, not written
)

// errFailpoint wraps the error of a failpoint that fired.
var errFailpoint = errors.New("failpoint")

// failpoint calls Config.Failpoint; when it fires, the controller stops (as a
// crash) and the caller abandons what it was doing.
func (c *Controller) failpoint(name string) bool {
	if c.cfg.Failpoint == nil {
		return false
	}
	if err := c.cfg.Failpoint(name); err != nil {
		c.fail(fmt.Errorf("%w %s: %w", errFailpoint, name, err))
		return true
	}
	return false
}

// Defaults.
const (
	DefaultWorkers            = 16
	DefaultResyncInterval     = 5 * time.Minute
	DefaultUnreachableTimeout = 60 * time.Second
	DefaultExecutorCommand    = "./converge executor"
	// Decline refusals: long for offers nobody needs (offers are also suppressed
	// then), short while someone needs resources or before reconciliation.
	refuseUnneeded = 120
	refuseShort    = 5
	refuseAfterUse = 1
	// acknowledgers send ACKNOWLEDGE calls in parallel: each is an HTTP round
	// trip, and a burst of launches brings two updates per task (4 of them
	// made 20,000 acks of 10,000 launches wait seconds).
	acknowledgers = 32
)

// Controller reconciles every Cluster of its store with Mesos.
type Controller struct {
	cfg   Config
	log   logr.Logger
	now   func() time.Time
	m     *metrics
	queue workqueue.TypedRateLimitingInterface[string]

	writes   chan *writeOp
	offersCh chan []mesos.Offer
	acks     *ackQueue
	loaded   chan struct{}
	loadOnce sync.Once
	loadErr  error
	fatal    chan error
	fatalOne sync.Once

	bridge mesosbridge.Bridge

	// updateWrites carries status updates' writes, which the writer commits
	// before the others (see submitUpdate).
	updateWrites chan *writeOp

	mu    sync.Mutex
	rooms map[string]*room // key -> everything held about the cluster (room.go)
	// needy and volumeKeys index rooms, so that offer matching and the
	// release bookkeeping walk only the clusters they concern.
	needy      map[string]bool                // keys with members to launch
	volumeKeys map[string]bool                // clusters with volumes in their spec or ledger (noteVolumesLocked)
	leaseFloor time.Time                      // first subscription (see Input.LeaseFloor)
	lastOffers time.Time                      // when the last offers arrived
	agents     map[string][]mesos.Attribute   // agent id -> attributes (from offers)
	killSent   map[string]bool                // task ids whose kill the bridge retries
	released   map[string]bool                // reservation ids seen gone after their release
	releasing  map[string]*store.VolumeRecord // reservations of deleted clusters, by agent id + "/" + id
	subscribed bool
	reconciled bool
	// newDemand: a cluster came to need offers since the last Suppress/Revive
	// decision. Offers declined meanwhile carry long filters (refuseUnneeded)
	// that only a REVIVE clears, so new demand revives even while offers are
	// already wanted; the bridge rate-limits REVIVEs.
	newDemand bool

	wantOffers *bool // last Suppress/Revive decision, nil: none made on this subscription
	// offerMu serialises Suppress/Revive decisions with their calls: decided
	// under mu but sent after it, a SUPPRESS decided first could reach Mesos
	// after a REVIVE decided later, leaving offers suppressed while wantOffers
	// says revived (a new cluster then waited forever for offers).
	offerMu sync.Mutex
}

// New checks cfg and returns a controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Store == nil {
		return nil, errors.New("controller: Config.Store is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.UnreachableTimeout <= 0 {
		cfg.UnreachableTimeout = DefaultUnreachableTimeout
	}
	if cfg.StallAfter <= 0 {
		cfg.StallAfter = defaultStallAfter
	}
	if cfg.ExecutorCommand == "" {
		cfg.ExecutorCommand = DefaultExecutorCommand
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	c := &Controller{
		cfg: cfg, log: cfg.Log, now: cfg.Now,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedMaxOfRateLimiter(
				workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
			),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "converge-clusters"}),
		writes:     make(chan *writeOp, 4096),
		offersCh:   make(chan []mesos.Offer, 64),
		acks:       newAckQueue(),
		loaded:     make(chan struct{}),
		fatal:      make(chan error, 1),
		rooms:      map[string]*room{},
		needy:      map[string]bool{},
		agents:     map[string][]mesos.Attribute{},
		killSent:   map[string]bool{},
		released:   map[string]bool{},
		releasing:  map[string]*store.VolumeRecord{},
		volumeKeys: map[string]bool{},
	}
	c.updateWrites = make(chan *writeOp, 4096)
	m, err := newMetrics(cfg.Registerer, c)
	if err != nil {
		return nil, err
	}
	c.m = m
	return c, nil
}

// Run loads the ledger, builds the mesosbridge client from mcfg (its State is
// cfg.Store and its ReconcileTasks the ledger's non-terminal tasks), and runs the
// bridge and the controller until ctx ends or a fatal error (framework removed,
// leadership lost).
func Run(ctx context.Context, cfg Config, mcfg mesosbridge.Config) error {
	c, err := New(cfg)
	if err != nil {
		return err
	}
	if err := c.load(ctx); err != nil {
		return err
	}
	if c.cfg.FrameworkName == "" {
		c.cfg.FrameworkName = mcfg.FrameworkName
	}
	if c.cfg.Principal == "" {
		c.cfg.Principal = mcfg.Principal
	}
	if len(c.cfg.Roles) == 0 && len(mcfg.Roles) > 0 {
		c.cfg.Roles = append([]string(nil), mcfg.Roles...)
	}
	if len(c.cfg.Roles) == 0 {
		role := mcfg.Role
		if role == "" {
			role = v1alpha1.DefaultRole
		}
		c.cfg.Roles = []string{role}
	}
	mcfg.State = cfg.Store
	mcfg.ReconcileTasks = c.ReconcileTasks
	if mcfg.Log.GetSink() == nil {
		mcfg.Log = cfg.Log.WithName("mesos")
	}
	if mcfg.Registerer == nil {
		mcfg.Registerer = cfg.Registerer
	}
	b, err := mesosbridge.New(mcfg)
	if err != nil {
		return fmt.Errorf("mesos client: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bridgeErr := make(chan error, 1)
	go func() { bridgeErr <- b.Run(ctx) }()
	cerr := c.Run(ctx, b)
	cancel()
	berr := <-bridgeErr
	if cerr != nil && !errors.Is(cerr, context.Canceled) {
		return cerr
	}
	if berr != nil && !errors.Is(berr, context.Canceled) {
		return fmt.Errorf("mesos: %w", berr)
	}
	return nil
}

// load reads the ledger and the election records (once).
func (c *Controller) load(ctx context.Context) error {
	c.loadOnce.Do(func() {
		tasks, err := c.cfg.Store.ListAllTasks(ctx)
		if err != nil {
			c.loadErr = fmt.Errorf("load the task ledger: %w", err)
			return
		}
		els, err := c.cfg.Store.ListElections(ctx)
		if err != nil {
			c.loadErr = fmt.Errorf("load election records: %w", err)
			return
		}
		c.mu.Lock()
		for i := range tasks {
			r := tasks[i]
			key := r.Namespace + "/" + r.Cluster
			if !c.cfg.Shard.Owns(key) {
				continue
			}
			c.putTaskLocked(key, r.ID, &r)
		}
		for key, e := range els {
			if !c.cfg.Shard.Owns(key) {
				continue
			}
			e := e
			c.roomLocked(key).election = &e
		}
		c.mu.Unlock()
		c.log.Info("ledger loaded", "tasks", len(tasks), "elections", len(els))
		close(c.loaded)
	})
	return c.loadErr
}

// ReconcileTasks returns the ledger's non-terminal tasks, for the bridge's
// explicit reconciliation after every (re)subscribe. It waits until Run has loaded
// the ledger.
func (c *Controller) ReconcileTasks() []mesosbridge.ReconcileTask {
	<-c.loaded
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []mesosbridge.ReconcileTask
	for _, rm := range c.rooms {
		for _, r := range rm.tasks {
			if !finished(r.State) {
				out = append(out, mesosbridge.ReconcileTask{TaskID: r.ID, AgentID: r.AgentID})
			}
		}
	}
	return out
}

// Ready reports whether the controller has loaded its state and is subscribed
// to Mesos (for /readyz).
func (c *Controller) Ready() bool {
	select {
	case <-c.loaded:
	default:
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subscribed
}

func (c *Controller) fail(err error) {
	c.fatalOne.Do(func() { c.fatal <- err })
}

// Run drives Mesos through b until ctx ends or a fatal error.
func (c *Controller) Run(ctx context.Context, b mesosbridge.Bridge) error {
	if err := c.load(ctx); err != nil {
		return err
	}
	c.bridge = b
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	clusters, rev, err := c.cfg.Store.List(ctx, "", nil)
	if err != nil {
		return fmt.Errorf("list clusters: %w", err)
	}
	clusters = slices.DeleteFunc(clusters, func(cl *v1alpha1.Cluster) bool {
		return !c.cfg.Shard.Owns(cl.Namespace + "/" + cl.Name)
	})
	c.mu.Lock()
	for _, cl := range clusters {
		c.setClusterLocked(cl)
	}
	c.mu.Unlock()
	for _, cl := range clusters {
		c.queue.Add(cl.Namespace + "/" + cl.Name)
	}
	c.dropDeletedLedgers(ctx)

	var wg sync.WaitGroup
	start := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	writerCtx, stopWriter := context.WithCancel(context.Background())
	var writerWG sync.WaitGroup
	writerWG.Add(1)
	go func() { defer writerWG.Done(); c.runWriter(writerCtx) }()
	start(func() { c.watch(ctx, rev) })
	start(func() { c.runOffers(ctx) })
	for i := 0; i < acknowledgers; i++ {
		start(func() { c.runAcks(ctx) })
	}
	for i := 0; i < c.cfg.Workers; i++ {
		start(func() {
			for c.processNext(ctx) {
			}
		})
	}
	start(func() { c.resync(ctx) })

	err = c.mesosLoop(ctx, b)
	cancel()
	c.queue.ShutDown()
	wg.Wait()
	stopWriter()
	writerWG.Wait()
	return err
}

// dropDeletedLedgers kills the tasks of ledger entries whose cluster is gone (a
// cluster deleted while no controller ran, without our finalizer).
func (c *Controller) dropDeletedLedgers(ctx context.Context) {
	c.mu.Lock()
	var gone []string
	for key, rm := range c.rooms {
		if rm.cluster == nil && len(rm.tasks) > 0 {
			gone = append(gone, key)
		}
	}
	c.mu.Unlock()
	for _, key := range gone {
		c.forgetCluster(ctx, key)
	}
}

func (c *Controller) mesosLoop(ctx context.Context, b mesosbridge.Bridge) error {
	events := b.Events()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-c.fatal:
			return err
		case ev, ok := <-events:
			if !ok {
				// The bridge closes its events when it stops; when that is
				// because ctx ended, ctx says so a moment later at most (a
				// parent's cancellation reaches derived contexts after its own
				// Done channel closes).
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
					return errors.New("the Mesos client stopped")
				}
			}
			if err := c.handleMesos(ctx, b, ev); err != nil {
				return err
			}
		}
	}
}

func (c *Controller) handleMesos(ctx context.Context, b mesosbridge.Bridge, ev mesosbridge.Event) error {
	switch ev.Type {
	case mesosbridge.EventSubscribed:
		c.log.Info("subscribed to Mesos", "frameworkID", ev.FrameworkID)
		c.mu.Lock()
		c.subscribed, c.reconciled = true, false
		if c.leaseFloor.IsZero() {
			c.leaseFloor = c.now()
		}
		c.wantOffers = nil
		c.mu.Unlock()
		c.syncOfferInterest(ctx)
	case mesosbridge.EventDisconnected:
		c.log.Info("disconnected from Mesos; the bridge reconnects")
		c.mu.Lock()
		c.subscribed, c.reconciled = false, false
		c.mu.Unlock()
	case mesosbridge.EventReconciled:
		c.log.Info("reconciliation done: launching what is missing")
		c.mu.Lock()
		c.reconciled = true
		keys := c.clusterKeysLocked()
		c.mu.Unlock()
		c.enqueue(keys)
		// One implicit reconciliation: Mesos then reports every task it runs for
		// the framework, so tasks the ledger does not know (orphans) are found
		// and killed now rather than at the next periodic round.
		go func() {
			if err := b.Reconcile(ctx, nil); err != nil {
				c.log.V(1).Info("implicit reconciliation not sent", "error", err.Error())
			}
		}()
	case mesosbridge.EventOffers:
		select {
		case c.offersCh <- ev.Offers:
		case <-ctx.Done():
		}
	case mesosbridge.EventRescind:
		// Offers are used or declined as they arrive; nothing is held.
	case mesosbridge.EventUpdate:
		if ev.Status != nil {
			c.handleUpdate(ctx, *ev.Status)
		}
	case mesosbridge.EventMessage:
		if ev.Message != nil {
			c.handleMessage(ev.Message)
		}
	case mesosbridge.EventFailure:
		c.log.V(1).Info("failure reported by Mesos", "agentID", ev.AgentID, "executorID", ev.ExecutorID)
	case mesosbridge.EventFrameworkRemoved:
		return fmt.Errorf("the Mesos master removed the framework (%s): start a new framework", ev.Error)
	case mesosbridge.EventError:
		c.log.Info("error from the Mesos master", "message", ev.Error)
	}
	return nil
}

// watch follows the store's clusters.
func (c *Controller) watch(ctx context.Context, rev int64) {
	for ev := range c.cfg.Store.Watch(ctx, "", rev) {
		if ev.Object == nil {
			continue
		}
		key := ev.Object.Namespace + "/" + ev.Object.Name
		if !c.cfg.Shard.Owns(key) {
			continue
		}
		switch ev.Type {
		case store.Deleted:
			c.forgetCluster(ctx, key)
		default:
			c.cacheCluster(ev.Object)
			c.queue.Add(key)
		}
	}
}

func rvOf(c *v1alpha1.Cluster) int64 {
	v, _ := strconv.ParseInt(c.ResourceVersion, 10, 64)
	return v
}

// forgetCluster drops a deleted cluster's room; its tasks that still run are
// killed (the store removed their ledger with the object).
func (c *Controller) forgetCluster(ctx context.Context, key string) {
	c.mu.Lock()
	var kill []store.TaskRecord
	if rm := c.dropRoomLocked(key); rm != nil {
		for _, r := range rm.tasks {
			if !finished(r.State) {
				kill = append(kill, *r)
			}
		}
	}
	c.mu.Unlock()
	for _, r := range kill {
		c.log.Info("killing a task of a deleted cluster", "cluster", key, "taskID", r.ID)
		c.killTask(ctx, r.ID, r.AgentID)
	}
	c.syncOfferInterest(ctx)
}

func (c *Controller) killTask(ctx context.Context, id, agentID string) {
	c.mu.Lock()
	sent := c.killSent[id]
	c.killSent[id] = true
	c.mu.Unlock()
	if sent || c.bridge == nil {
		return
	}
	c.m.kills.Inc()
	if err := c.bridge.Kill(ctx, id, agentID); err != nil {
		c.log.Error(err, "kill", "taskID", id)
	}
}

// clusterKeysLocked returns the keys of every known cluster; c.mu is held.
func (c *Controller) clusterKeysLocked() []string {
	keys := make([]string, 0, len(c.rooms))
	for k, rm := range c.rooms {
		if rm.cluster != nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// enqueue adds keys to the work queue.
func (c *Controller) enqueue(keys []string) {
	for _, k := range keys {
		c.queue.Add(k)
	}
}

func (c *Controller) resync(ctx context.Context) {
	t := time.NewTicker(c.cfg.ResyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.m.resyncs.Inc() // before the sweep's reconciles can finish, so a reader sees it first
		c.mu.Lock()
		keys := c.clusterKeysLocked()
		c.mu.Unlock()
		c.enqueue(keys)
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	start := time.Now()
	requeue, err := c.reconcile(ctx, key)
	c.m.reconciles.Inc()
	c.m.reconcileSeconds.Observe(time.Since(start).Seconds())
	switch {
	case err != nil && ctx.Err() == nil:
		c.m.reconcileErrors.Inc()
		c.log.Error(err, "reconcile", "cluster", key)
		c.queue.AddRateLimited(key)
	case err == nil:
		c.queue.Forget(key)
		if requeue > 0 {
			c.queue.AddAfter(key, requeue)
		}
	}
	return true
}

func splitKey(key string) (ns, name string) {
	ns, name, _ = strings.Cut(key, "/")
	return ns, name
}

// inputLocked builds the planner's input for key from the caches (c.mu held).
// It returns nil when the cluster is unknown.
func (c *Controller) inputLocked(key string) *Input {
	rm := c.rooms[key]
	if rm == nil || rm.cluster == nil {
		return nil
	}
	view, specErrors := rm.viewLocked()
	in := &Input{
		Cluster:            view.DeepCopy(),
		SpecErrors:         specErrors,
		Reconciled:         c.reconciled,
		Now:                c.now(),
		UnreachableTimeout: c.cfg.UnreachableTimeout,
		StallAfter:         c.cfg.StallAfter,
		Answers:            rm.answers,
		Promoted:           rm.promoted,
		Demoted:            rm.demoted,
		LeaseFloor:         c.leaseFloor,
		Unplaced:           rm.unplaced,
	}
	in.Tasks = make([]store.TaskRecord, 0, len(rm.tasks))
	for _, r := range rm.tasks {
		in.Tasks = append(in.Tasks, *r)
	}
	if e := rm.election; e != nil {
		ec := *e
		in.Election = &ec
	}
	if l := rm.lease; l != nil {
		in.Lease = *l // its Followed map is replaced, never changed in place
	}
	return in
}

// reconcile moves one cluster one safe step: plan, persist, act, write status.
// It returns when to look at the cluster again (0: at the next event).
func (c *Controller) reconcile(ctx context.Context, key string) (time.Duration, error) {
	if known, err := c.loadEndpoints(ctx, key); err != nil || !known {
		return 0, err
	}
	c.mu.Lock()
	in := c.inputLocked(key)
	raw := c.clusterLocked(key)
	published := c.roomLocked(key).endpoints
	c.mu.Unlock()
	if in == nil {
		return 0, nil
	}
	out := Plan(*in)
	next := &requeue{d: out.RequeueAfter}

	// Finalizer first: nothing is launched for a cluster we could lose track of.
	if out.AddFinalizer {
		obj := raw.DeepCopy()
		obj.Finalizers = append(obj.Finalizers, v1alpha1.Finalizer)
		upd, err := c.cfg.Store.Update(ctx, obj)
		if err != nil {
			return 0, c.storeErr(ctx, key, fmt.Errorf("add finalizer: %w", err))
		}
		c.cacheCluster(upd)
		raw = upd
	}
	if err := c.persistPlan(ctx, key, in, out, published, next); err != nil {
		return 0, err
	}
	// Act: kills (election messages go after the status: a promoted master is
	// in status.master before it is told).
	for _, k := range out.Kills {
		c.killTask(ctx, k.TaskID, k.AgentID)
	}
	raw, err := c.writeStatus(ctx, key, raw, &out.Status, next)
	if err != nil {
		return 0, err
	}
	c.sendElectionMessages(ctx, key, out)
	if out.RemoveFinalizer {
		c.noteReleases(key)
		obj := raw.DeepCopy()
		obj.Finalizers = slices.DeleteFunc(obj.Finalizers, func(f string) bool { return f == v1alpha1.Finalizer })
		if _, err := c.cfg.Store.Update(ctx, obj); err != nil {
			return 0, c.storeErr(ctx, key, fmt.Errorf("remove finalizer: %w", err))
		}
		c.log.Info("every task is terminal: finalizer removed", "cluster", key)
	}
	c.noteDemand(key, in, out, next)
	c.syncOfferInterest(ctx)
	return next.d, nil
}

// requeue is when a reconcile wants its cluster looked at again: the
// earliest of what its steps ask (0: not at all).
type requeue struct{ d time.Duration }

func (r *requeue) at(d time.Duration) {
	if r.d == 0 || d < r.d {
		r.d = d
	}
}

// loadEndpoints reads key's published endpoints into its room the first
// time; known is false when the cluster is not (or no longer) known.
func (c *Controller) loadEndpoints(ctx context.Context, key string) (known bool, err error) {
	c.mu.Lock()
	known = c.clusterLocked(key) != nil
	loaded := known && c.roomLocked(key).epLoaded
	c.mu.Unlock()
	if !known || loaded {
		return known, nil
	}
	ns, name := splitKey(key)
	ep, err := c.cfg.Store.GetEndpoints(ctx, ns, name)
	if err != nil {
		return false, fmt.Errorf("read endpoints: %w", err)
	}
	c.mu.Lock()
	if r := c.rooms[key]; r != nil && !r.epLoaded {
		r.endpoints, r.epLoaded = ep, true
	}
	c.mu.Unlock()
	return true, nil
}

// persistPlan writes, in one transaction, what the plan decided before it is
// acted on: kills, records forgotten, the election record, the endpoints to
// publish and the events.
func (c *Controller) persistPlan(ctx context.Context, key string, in *Input, out Output, published *store.Endpoints, next *requeue) error {
	op := &writeOp{}
	for _, k := range out.Kills {
		if !k.New {
			continue
		}
		if k.Duplicate {
			c.m.duplicates.Inc()
		}
		reason := k.Reason
		op.tasks = append(op.tasks, taskWrite{key: key, id: k.TaskID, mut: func(r *store.TaskRecord) (bool, []store.Event) {
			if r.KillRequested || finished(r.State) {
				return false, nil
			}
			r.KillRequested, r.KillReason, r.UpdatedAt = true, reason, c.now()
			return true, nil
		}})
	}
	for _, id := range out.Forget {
		op.tasks = append(op.tasks, taskWrite{key: key, id: id, forget: true})
	}
	if out.Election != nil {
		op.elections = map[string]store.ElectionRecord{key: *out.Election}
	}
	if c.publishNow(key, in, out, published, next) {
		op.endpoints = map[string]store.Endpoints{key: *out.Endpoints}
	}
	op.addEvents(key, out.Events...)
	if out.Election != nil && c.failpoint(FailpointElectionBeforePersist) ||
		len(op.endpoints) > 0 && c.failpoint(FailpointPublishBefore) {
		return errFailpoint
	}
	if err := c.write(ctx, op); err != nil {
		return fmt.Errorf("persist the plan: %w", err)
	}
	if out.Election != nil && c.failpoint(FailpointElectionAfterPersist) ||
		len(op.endpoints) > 0 && c.failpoint(FailpointPublishAfter) {
		return errFailpoint
	}
	if out.Election != nil && (in.Election == nil || in.Election.Epoch != out.Election.Epoch || in.Election.Phase != out.Election.Phase) {
		// (a record that only notes the master's position is no election step)
		c.m.elections.WithLabelValues(out.Election.Phase).Inc()
		c.log.Info("election", "cluster", key, "epoch", out.Election.Epoch, "phase", out.Election.Phase, "master", out.Election.MasterTaskID)
	}
	if len(op.endpoints) > 0 {
		c.mu.Lock()
		c.roomLocked(key).lastEP = c.now()
		c.mu.Unlock()
	}
	return nil
}

// publishNow says whether the plan's endpoints are to be written now. Where
// the strategy elects a master, nothing is published before the first
// master: clients of such a service need it. A master change, or the cluster
// becoming Ready, is published at once; other member changes at most every
// writeMinInterval, so members coming up together cost one write.
func (c *Controller) publishNow(key string, in *Input, out Output, published *store.Endpoints, next *requeue) bool {
	noMasterYet := in.Cluster.Spec.Election.Strategy != v1alpha1.ElectionNone && out.Endpoints != nil &&
		out.Endpoints.Master == nil && (published == nil || published.Master == nil)
	if out.Endpoints == nil || noMasterYet || sameJSON(out.Endpoints, published) {
		return false
	}
	masterChanged := published == nil || !sameJSON(published.Master, out.Endpoints.Master)
	wait := c.sinceLast(key, func(r *room) time.Time { return r.lastEP })
	if masterChanged || wait <= 0 || readyTrue(&out.Status) {
		return true
	}
	next.at(wait)
	return false
}

// writeStatus writes the planned status when it changed, and at most every
// writeMinInterval unless it becomes Ready or the master changes (progress
// reports coalesce; the outcome is prompt). It returns the object as the
// store last returned it.
func (c *Controller) writeStatus(ctx context.Context, key string, raw *v1alpha1.Cluster, st *v1alpha1.ClusterStatus, next *requeue) (*v1alpha1.Cluster, error) {
	if sameJSON(&raw.Status, st) {
		return raw, nil
	}
	if wait := c.sinceLast(key, func(r *room) time.Time { return r.lastStatus }); wait > 0 && !readyTrue(st) && sameJSON(raw.Status.Master, st.Master) {
		next.at(wait)
		return raw, nil
	}
	c.mu.Lock()
	c.roomLocked(key).lastStatus = c.now()
	c.mu.Unlock()
	if c.failpoint(FailpointStatusBefore) {
		return nil, errFailpoint
	}
	// One round trip, conditioned on raw's resourceVersion (a conflict
	// re-reads it).
	upd, err := c.cfg.Store.UpdateStatusOf(ctx, raw, *st)
	c.m.statusWrites.Inc()
	if err != nil {
		return nil, c.storeErr(ctx, key, fmt.Errorf("write status: %w", err))
	}
	c.cacheCluster(upd)
	return upd, nil
}

// noteDemand keeps the needy index and the cluster's stall diagnosis: a
// cluster with members to launch waits for offers; no offer round at all
// for a while (every agent's resources in use) is a diagnosis too, since no
// matching ever runs to give one.
func (c *Controller) noteDemand(key string, in *Input, out Output, next *requeue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rm := c.rooms[key]
	if rm == nil {
		return // deleted meanwhile
	}
	if len(out.Needs) == 0 {
		delete(c.needy, key)
		rm.needySince, rm.unplaced = time.Time{}, nil
		return
	}
	now := c.now()
	if !c.needy[key] {
		c.newDemand = true
		rm.needySince = now
	}
	c.needy[key] = true
	rm.demand++
	since := rm.needySince
	if c.lastOffers.After(since) {
		since = c.lastOffers
	}
	idle := now.Sub(since)
	switch {
	case rm.unplaced != nil:
	case idle >= c.cfg.StallAfter:
		rm.unplaced = &Unplaced{Since: since, Reason: fmt.Sprintf("no offers from Mesos for %s: every agent's resources are in use, or no agent serves role %q", idle.Round(time.Second), in.Cluster.Spec.Role)}
		next.at(10 * time.Millisecond)
	default:
		next.at(c.cfg.StallAfter - idle)
	}
}

// writeMinInterval spaces a cluster's progress writes (status, member lists).
const writeMinInterval = time.Second

// sinceLast returns how long to wait before key's next write of the kind
// whose last time last reads (<= 0: now).
func (c *Controller) sinceLast(key string, last func(*room) time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := last(c.roomLocked(key))
	if t.IsZero() {
		return 0
	}
	return writeMinInterval - c.now().Sub(t)
}

func readyTrue(st *v1alpha1.ClusterStatus) bool {
	r := v1alpha1.FindCondition(st.Conditions, v1alpha1.ConditionReady)
	return r != nil && r.Status == "True"
}

// storeErr handles a failed object write: on a conflict the object is re-read
// (the watch will also deliver it) and the key retried.
func (c *Controller) storeErr(ctx context.Context, key string, err error) error {
	if errors.Is(err, store.ErrNotLeader) {
		c.fail(err)
		return err
	}
	if store.IsConflict(err) || store.IsNotFound(err) {
		ns, name := splitKey(key)
		fresh, gerr := c.cfg.Store.Get(ctx, ns, name)
		switch {
		case gerr == nil:
			c.cacheCluster(fresh)
		case store.IsNotFound(gerr):
			c.forgetCluster(ctx, key)
			return nil
		}
	}
	return err
}

func (c *Controller) cacheCluster(obj *v1alpha1.Cluster) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setClusterLocked(obj)
}

// sameJSON compares what two values would be stored as.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// sendElectionMessages sends position queries and promote, at most once per
// resend interval per cluster unless the election just moved.
func (c *Controller) sendElectionMessages(ctx context.Context, key string, out Output) {
	msgs := append(append([]Message(nil), out.Queries...), out.Follows...)
	if out.Promote != nil {
		msgs = append(msgs, *out.Promote)
	}
	if out.Demote != nil {
		msgs = append(msgs, *out.Demote)
	}

	if len(msgs) == 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	rm := c.roomLocked(key)
	resend := out.Election != nil || now.Sub(rm.lastSent) >= electionResendInterval*9/10
	sent := rm.sentMsgs
	if sent == nil {
		sent = map[string]bool{}
		rm.sentMsgs = sent
	}
	var send []Message
	for _, m := range msgs {
		// A message not sent yet (a member that joined the election, a new
		// epoch) goes at once; the rest are re-sent once per interval.
		id := fmt.Sprintf("%s/%d/%s/%d", m.Msg.Type, m.Msg.Epoch, m.Msg.TaskID, m.Msg.Seq)
		if resend || !sent[id] {
			send = append(send, m)
			sent[id] = true
		}
	}
	if resend {
		rm.lastSent = now
		// Forget what the current round no longer asks for.
		for id := range sent {
			keep := false
			for _, m := range msgs {
				if id == fmt.Sprintf("%s/%d/%s/%d", m.Msg.Type, m.Msg.Epoch, m.Msg.TaskID, m.Msg.Seq) {
					keep = true
				}
			}
			if !keep {
				delete(sent, id)
			}
		}
	}
	c.mu.Unlock()
	// In parallel: each is an HTTP round trip, and the worker waits for them
	// (one after another, a cluster of 10 held a worker ~25ms per round).
	var wg sync.WaitGroup
	for _, m := range send {
		wg.Add(1)
		go func(m Message) {
			defer wg.Done()
			if err := c.bridge.SendMessage(ctx, m.AgentID, m.ExecutorID, m.Msg.Encode()); err != nil {
				c.log.V(1).Info("election message not sent; it is re-sent", "cluster", key, "type", m.Msg.Type, "taskID", m.Msg.TaskID, "error", err.Error())
			}
		}(m)
	}
	wg.Wait()
}

// syncOfferInterest suppresses offers when no cluster needs any, and revives
// them when one does.
func (c *Controller) syncOfferInterest(ctx context.Context) {
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	c.mu.Lock()
	// Offers are wanted to launch, and to release reservations.
	want := len(c.needy) > 0 || len(c.pendingReleases()) > 0
	revive := want && c.newDemand
	c.newDemand = false
	if !c.subscribed || c.bridge == nil || (c.wantOffers != nil && *c.wantOffers == want && !revive) {
		c.mu.Unlock()
		return
	}
	c.wantOffers = &want
	c.mu.Unlock()
	var err error
	if want {
		err = c.bridge.Revive(ctx)
	} else {
		err = c.bridge.Suppress(ctx)
	}
	if err != nil {
		c.log.V(1).Info("suppress/revive failed; retried on the next change", "revive", want, "error", err.Error())
		c.mu.Lock()
		c.wantOffers = nil
		c.mu.Unlock()
	}
}
