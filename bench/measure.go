package bench

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// converged reports whether a cluster is Ready (at its generation) with all
// replicas ready and its master elected.
func converged(c *v1alpha1.Cluster, replicas int) bool {
	return v1alpha1.IsReady(c) && c.Status.Master != nil && int(c.Status.ReadyReplicas) == replicas
}

// tracker follows the store's watch: which clusters are converged, when the
// last one got there, and (during the failure phase) which clusters changed.
type tracker struct {
	n, replicas int
	start       time.Time
	allReady    chan struct{}
	onAllReady  func()

	mu       sync.Mutex
	ready    map[string]bool
	count    int
	lastAt   time.Time
	listener func(store.WatchEvent)
}

func newTracker(n, replicas int) *tracker {
	return &tracker{n: n, replicas: replicas, allReady: make(chan struct{}), ready: map[string]bool{}}
}

func (t *tracker) run(events <-chan store.WatchEvent) {
	for ev := range events {
		if ev.Object == nil {
			continue
		}
		key := ev.Object.Namespace + "/" + ev.Object.Name
		ok := ev.Type != store.Deleted && converged(ev.Object, t.replicas)
		t.mu.Lock()
		if ok != t.ready[key] {
			t.ready[key] = ok
			if ok {
				t.count++
			} else {
				t.count--
			}
			if ok && t.count == t.n && t.lastAt.IsZero() {
				t.lastAt = time.Now()
				if t.onAllReady != nil {
					t.onAllReady()
				}
				close(t.allReady)
			}
		}
		l := t.listener
		t.mu.Unlock()
		if l != nil {
			l(ev)
		}
	}
}

func (t *tracker) readyCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}

func (t *tracker) readyAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastAt
}

func (t *tracker) setListener(l func(store.WatchEvent)) {
	t.mu.Lock()
	t.listener = l
	t.mu.Unlock()
}

// ackRecorder keeps every ack latency the controller reports.
type ackRecorder struct {
	mu sync.Mutex
	d  []time.Duration
}

func (a *ackRecorder) observe(d time.Duration) {
	a.mu.Lock()
	a.d = append(a.d, d)
	a.mu.Unlock()
}

func (a *ackRecorder) snapshot() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]time.Duration(nil), a.d...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// quantileMS of sorted samples (nearest rank), in milliseconds.
func quantileMS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return ms(sorted[i])
}

// counter sums the samples of a counter family of reg (0 if absent).
func counter(reg *prometheus.Registry, name string) float64 {
	fams, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum
}

// oneFailure fails the elected master of cluster name and counts what it
// costs until that cluster is converged again under a new master.
func oneFailure(ctx context.Context, o Options, res *Result, name string, m *localmesos.Mesos, ctrl statser, user *store.Store, t *tracker, count func(string) float64) error {
	ns := v1alpha1.DefaultNamespace
	c, err := user.Get(ctx, ns, name)
	if err != nil {
		return fmt.Errorf("one failure: %w", err)
	}
	if c.Status.Master == nil {
		return fmt.Errorf("one failure: cluster %s/%s has no master", ns, name)
	}
	failed := c.Status.Master.TaskID
	target := ns + "/" + name
	var mu sync.Mutex
	touched := map[string]bool{}
	recovered := make(chan time.Time, 1)
	t.setListener(func(ev store.WatchEvent) {
		key := ev.Object.Namespace + "/" + ev.Object.Name
		mu.Lock()
		touched[key] = true
		mu.Unlock()
		if key != target || !converged(ev.Object, o.Replicas) || ev.Object.Status.Master.TaskID == failed {
			return
		}
		for _, ts := range ev.Object.Status.Tasks {
			if ts.ID == failed {
				return
			}
		}
		select {
		case recovered <- time.Now():
		default:
		}
	})
	defer t.setListener(nil)

	stats0 := ctrl.Stats()
	rec0 := count("converge_controller_reconciles_total")
	start := time.Now()
	if err := m.FailTask(failed); err != nil {
		return fmt.Errorf("one failure: %w", err)
	}
	select {
	case at := <-recovered:
		res.OneFailureRecoverSeconds = at.Sub(start).Seconds()
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("one failure: cluster %s did not recover within 2m after task %s failed", target, failed)
	case <-ctx.Done():
		return ctx.Err()
	}
	// Let the last writes of the recovery land.
	time.Sleep(o.Settle)
	w := diff(stats0, ctrl.Stats())
	res.OneFailureTask = failed
	res.OneFailureReconciles = int64(count("converge_controller_reconciles_total") - rec0)
	res.OneFailureWrites = w.Puts + w.Deletes
	res.OneFailureTxns = w.Txns
	mu.Lock()
	res.OneFailureClustersTouched = len(touched)
	mu.Unlock()
	return nil
}

// ceiling measures the raw durable write rate of etcd: clients goroutines, each
// putting its own key in a loop (one write in flight per goroutine), for d.
func ceiling(ctx context.Context, st *store.Store, clients int, d time.Duration) (float64, error) {
	cli := st.Client()
	val := strings.Repeat("x", 512) // about a ledger record
	prefix := st.Prefix() + "-bench-ceiling/"
	var mu sync.Mutex
	var total int64
	var firstErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			key := fmt.Sprintf("%s%03d", prefix, i)
			var n int64
			for time.Now().Before(deadline) {
				if _, err := cli.Put(ctx, key, val); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					break
				}
				n++
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, fmt.Errorf("etcd ceiling: %w", firstErr)
	}
	_, _ = cli.Delete(context.Background(), prefix, clientv3.WithPrefix())
	return float64(total) / elapsed.Seconds(), nil
}

// timeline reports convergence progress every o.Timeline until stopped.
func timeline(o Options, t *tracker, regs func() []*prometheus.Registry, st statser, acks *ackRecorder, start time.Time) (stop func()) {
	if o.Timeline <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(o.Timeline)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			states := map[string]float64{}
			var queue, rsum, rcount float64
			for _, reg := range regs() { // summed over the shards' controllers
				fams, err := reg.Gather()
				if err != nil {
					continue
				}
				for _, f := range fams {
					switch f.GetName() {
					case "converge_controller_tasks":
						for _, m := range f.GetMetric() {
							for _, l := range m.GetLabel() {
								states[strings.TrimPrefix(l.GetValue(), "TASK_")] += m.GetGauge().GetValue()
							}
						}
					case "converge_controller_reconcile_duration_seconds":
						h := f.GetMetric()[0].GetHistogram()
						rsum += h.GetSampleSum()
						rcount += float64(h.GetSampleCount())
					case "converge_controller_queue_depth":
						queue += f.GetMetric()[0].GetGauge().GetValue()
					}
				}
			}
			keys := make([]string, 0, len(states))
			for k := range states {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var b strings.Builder
			for _, k := range keys {
				fmt.Fprintf(&b, " %s=%.0f", k, states[k])
			}
			acks.mu.Lock()
			na := len(acks.d)
			acks.mu.Unlock()
			mean := 0.0
			if rcount > 0 {
				mean = 1000 * rsum / rcount
			}
			o.Progress("t=%5.1fs ready=%d tasks:%s acks=%d queue=%.0f txns=%d reconciles=%.0f (mean %.1fms)",
				time.Since(start).Seconds(), t.readyCount(), b.String(), na, queue, st.Stats().Txns, rcount, mean)
		}
	}()
	return func() { close(done); wg.Wait() }
}

// controllerHeapMB estimates the live heap of the controller's side of the
// process from the runtime's heap profile (as of the last GC, scaled for
// sampling as pprof does): allocations made in the controller, store and
// mesosbridge packages, leaving out those made on behalf of etcd's server and
// raft, localmesos, and this benchmark. The store's watch decodes for the
// benchmark's own tracker count as the controller's, so the figure leans high.
func controllerHeapMB() float64 {
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+50)
		var ok bool
		n, ok = runtime.MemProfile(recs, false)
		if ok {
			recs = recs[:n]
			break
		}
	}
	const mod = "github.com/converge-io/converge/"
	rate := int64(runtime.MemProfileRate)
	var total float64
	for i := range recs {
		r := &recs[i]
		count, bytes := r.InUseObjects(), r.InUseBytes()
		if count == 0 || bytes == 0 {
			continue
		}
		ours, other := false, false
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			fn := f.Function
			switch {
			case strings.HasPrefix(fn, mod+"mesosbridge/localmesos."), strings.HasPrefix(fn, mod+"bench."),
				strings.HasPrefix(fn, "go.etcd.io/etcd/server/"), strings.HasPrefix(fn, "go.etcd.io/raft/"):
				other = true
			case strings.HasPrefix(fn, mod+"controller."), strings.HasPrefix(fn, mod+"store."),
				strings.HasPrefix(fn, mod+"mesosbridge."):
				ours = true
			}
			if !more || other {
				break
			}
		}
		if !ours || other {
			continue
		}
		scaled := float64(bytes)
		if rate > 1 {
			avg := float64(bytes) / float64(count)
			scaled /= 1 - math.Exp(-avg/float64(rate))
		}
		total += scaled
	}
	return total / (1 << 20)
}

// writesByKind counts the puts every live key under the store's prefix has
// had (etcd's key version), by kind: the second path element (clusters,
// tasks, elections, endpoints, events, framework). Cluster creates count.
func writesByKind(ctx context.Context, st *store.Store) (map[string]int64, error) {
	resp, err := st.Client().Get(ctx, st.Prefix()+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("count writes by key kind: %w", err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		kind, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), st.Prefix()+"/"), "/")
		out[kind] += kv.Version
	}
	return out, nil
}
