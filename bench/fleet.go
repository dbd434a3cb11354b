package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// fleet is the benchmark's controllers. Unsharded: one controller, no leader
// election (as `converge serve` with one replica). With Options.Shards = N:
// N controller processes (each its own etcd client), process k campaigning
// to lead shard k and, once every shard has its leader, standing by for shard
// k+1 (mod N); each shard leader is its own Mesos framework
// (docs/design.md, "Sharding").
type fleet struct {
	o             Options
	etcdURL       string
	mesos         *localmesos.Mesos
	acks, durable *ackRecorder

	mu     sync.Mutex
	regs   []*prometheus.Registry // one per controller run: metrics register once per registry
	stores []*store.Store         // one per process
	procs  []*fleetProc
	leader []int // shard -> the process leading it (-1: none)
	errs   chan error
}

type fleetProc struct {
	ctx    context.Context // ends when the process is killed or stopped
	st     *store.Store
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newFleet(o Options, etcdURL string, m *localmesos.Mesos, acks, durable *ackRecorder) *fleet {
	f := &fleet{o: o, etcdURL: etcdURL, mesos: m, acks: acks, durable: durable, errs: make(chan error, 2*max(o.Shards, 1))}
	f.leader = make([]int, max(o.Shards, 1))
	for i := range f.leader {
		f.leader[i] = -1
	}
	return f
}

// frameworkName is the Mesos framework of shard s (unsharded: the one).
func (f *fleet) frameworkName(s int) string {
	if f.o.Shards == 0 {
		return "converge-bench"
	}
	return fmt.Sprintf("converge-bench-shard-%d", s)
}

// runController runs one controller until ctx ends.
func (f *fleet) runController(ctx context.Context, st *store.Store, shard controller.Shard) error {
	reg := prometheus.NewRegistry()
	f.mu.Lock()
	f.regs = append(f.regs, reg)
	f.mu.Unlock()
	return controller.Run(ctx, controller.Config{
		Store:          st,
		Workers:        f.o.Workers,
		ResyncInterval: f.o.ResyncInterval,
		Shard:          shard,
		Log:            f.o.Log.WithName("controller").WithValues("shard", shard.Index),
		Registerer:     reg,
		AckObserver:    func(total, d time.Duration) { f.acks.observe(total); f.durable.observe(d) },
	}, mesosbridge.Config{
		Masters:       f.mesos.URLs(),
		FrameworkName: f.frameworkName(shard.Index),
		Role:          "*",
		Log:           f.o.Log.WithName("mesos").WithValues("shard", shard.Index),
	})
}

// start starts the processes and waits until every shard's framework is
// subscribed.
func (f *fleet) start(ctx context.Context) error {
	n := max(f.o.Shards, 1)
	for k := 0; k < n; k++ {
		st, err := store.New(ctx, store.Options{Endpoints: []string{f.etcdURL}})
		if err != nil {
			return err
		}
		pctx, cancel := context.WithCancel(ctx)
		p := &fleetProc{ctx: pctx, st: st, cancel: cancel}
		f.mu.Lock()
		f.stores = append(f.stores, st)
		f.procs = append(f.procs, p)
		f.mu.Unlock()
		if f.o.Shards == 0 {
			f.leader[0] = 0
			f.goProc(p, func() error { return f.runController(pctx, st, controller.Shard{}) })
			continue
		}
		f.campaign(pctx, p, k, k)
	}
	if err := f.waitSubscribed(ctx, n); err != nil {
		return err
	}
	for k := 0; k < f.o.Shards; k++ { // standbys, once the primaries lead
		f.campaign(f.procs[k].ctx, f.procs[k], k, (k+1)%f.o.Shards)
	}
	return nil
}

func (f *fleet) goProc(p *fleetProc, run func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := run(); err != nil && !errors.Is(err, context.Canceled) {
			select {
			case f.errs <- err:
			default:
			}
		}
	}()
}

// campaign makes process k a candidate for shard s: elected, it runs the
// shard's controller on a store fenced on its election key.
func (f *fleet) campaign(ctx context.Context, p *fleetProc, k, s int) {
	shard := controller.Shard{Index: s, Count: f.o.Shards}
	sst := p.st.Shard(shard.Name())
	f.goProc(p, func() error {
		return leader.RunWithOptions(ctx, p.st.Client(), sst, leader.Options{
			Identity:  fmt.Sprintf("bench-process-%d", k),
			TTL:       f.o.ShardTTL,
			Log:       f.o.Log.WithName("leader").WithValues("shard", s),
			OnElected: func(string, int64) { f.mu.Lock(); f.leader[s] = k; f.mu.Unlock() },
		}, func(lctx context.Context, fenced *store.Store) error {
			return f.runController(lctx, fenced, shard)
		})
	})
}

// kill stops process k as a crash would: its etcd client goes first, so its
// leases are not revoked and expire after their TTL, then everything it runs.
func (f *fleet) kill(k int) {
	p := f.procs[k]
	_ = p.st.Client().Close()
	p.cancel()
}

// leaderOf returns the process leading shard s (-1: none).
func (f *fleet) leaderOf(s int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader[s]
}

// waitSubscribed waits until n frameworks are connected.
func (f *fleet) waitSubscribed(ctx context.Context, n int) error {
	deadline := time.After(60 * time.Second)
	for {
		connected := 0
		for _, fw := range f.mesos.State().Frameworks {
			if fw.Connected {
				connected++
			}
		}
		if connected >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-f.errs:
			return fmt.Errorf("controller stopped before subscribing: %w", err)
		case <-deadline:
			return fmt.Errorf("%d of %d controllers subscribed to local Mesos within 60s", connected, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends every process and waits for them.
func (f *fleet) stop() {
	for _, p := range f.procs {
		p.cancel()
	}
	for _, p := range f.procs {
		p.wg.Wait()
		_ = p.st.Close()
	}
}

// counter sums a counter family over every controller run.
func (f *fleet) counter(name string) float64 {
	f.mu.Lock()
	regs := append([]*prometheus.Registry(nil), f.regs...)
	f.mu.Unlock()
	var sum float64
	for _, r := range regs {
		sum += counter(r, name)
	}
	return sum
}

// registries returns the registries of every controller run so far.
func (f *fleet) registries() []*prometheus.Registry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*prometheus.Registry(nil), f.regs...)
}

// statser is what counts a store's requests: one store, or the fleet's.
type statser interface{ Stats() store.Stats }

// Stats sums the processes' store counters (the controllers' writes).
func (f *fleet) Stats() store.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s store.Stats
	for _, st := range f.stores {
		x := st.Stats()
		s.Txns += x.Txns
		s.Puts += x.Puts
		s.Deletes += x.Deletes
		s.Reads += x.Reads
	}
	return s
}

// killMidRun, with shards, kills process 0 once half the clusters are Ready
// and records its shard's takeover; stop waits for that and reports a
// takeover that did not happen.
func killMidRun(ctx context.Context, o Options, f *fleet, t *tracker, res *Result) (stop func() error) {
	if o.Shards == 0 {
		return func() error { return nil }
	}
	res.Shards = o.Shards
	done := make(chan error, 1)
	quit := make(chan struct{})
	go func() { done <- f.killAndWatch(ctx, o, t, res, quit) }()
	return func() error {
		close(quit)
		return <-done
	}
}

func (f *fleet) killAndWatch(ctx context.Context, o Options, t *tracker, res *Result, quit chan struct{}) error {
	const victim = 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for t.readyCount() < o.Clusters/2 {
		select {
		case <-quit:
			return errors.New("shards: converged before a shard leader was killed")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	killed := victim
	res.ShardKilled = &killed
	res.ShardKilledAtReady = t.readyCount()
	o.Progress("killing process %d (leader of shard %d) with %d of %d clusters Ready", victim, victim, res.ShardKilledAtReady, o.Clusters)
	at := time.Now()
	f.kill(victim)
	name := f.frameworkName(victim)
	for {
		// Taken over: another process leads the shard and its framework is
		// subscribed again (the killed one's stream ended with it).
		if by := f.leaderOf(victim); by != victim && by >= 0 && frameworkConnected(f.mesos, name) {
			res.ShardTakenOverBy = by
			res.ShardTakeoverSeconds = time.Since(at).Seconds()
			o.Progress("shard %d taken over by process %d after %.2fs", victim, by, res.ShardTakeoverSeconds)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func frameworkConnected(m *localmesos.Mesos, name string) bool {
	for _, fw := range m.State().Frameworks {
		if fw.Name == name && fw.Connected {
			return true
		}
	}
	return false
}

// shardFigures counts each shard's clusters and checks, from the master's
// state, that every task runs under its cluster's shard's framework.
func shardFigures(o Options, m *localmesos.Mesos, res *Result) {
	res.ShardClusters = make([]int, o.Shards)
	for i := 0; i < o.Clusters; i++ {
		res.ShardClusters[controller.ShardOf("default/"+ClusterName(i), o.Shards)]++
	}
	frameworksOf := map[string]map[string]bool{}
	for _, fw := range m.State().Frameworks {
		for _, task := range fw.Tasks {
			ns, name, _, ok := controller.ParseTaskID(task.ID)
			if !ok {
				continue
			}
			key := ns + "/" + name
			if fw.Name != fmt.Sprintf("converge-bench-shard-%d", controller.ShardOf(key, o.Shards)) {
				res.ShardTasksMisplaced++
			}
			if frameworksOf[key] == nil {
				frameworksOf[key] = map[string]bool{}
			}
			frameworksOf[key][fw.Name] = true
		}
	}
	for _, fws := range frameworksOf {
		if len(fws) > 1 {
			res.ShardClustersSplit++
		}
	}
}
