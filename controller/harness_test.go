package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

// env is one test world: a real embedded etcd, a localmesos over HTTP, and a
// controller (restartable) driving it through a real mesosbridge client.
type env struct {
	t     *testing.T
	etcd  *etcdtest.Server
	st    *store.Store
	mesos *localmesos.Mesos
	// proxies stand between the bridge and each master (mesosproxy_test.go).
	proxies []*mesosProxy
	cfg     Config

	mu     sync.Mutex
	reg    *prometheus.Registry // the running controller's and bridge's metrics
	cancel context.CancelFunc
	done   chan error
}

func testLogger(t *testing.T) logr.Logger {
	if os.Getenv("CONTROLLER_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { t.Log(prefix, args) }, funcr.Options{Verbosity: 1})
}

func newEnv(t *testing.T, o localmesos.Options) *env {
	t.Helper()
	e := &env{t: t}
	e.etcd = etcdtest.Start(t)
	e.st = store.NewFromClient(e.etcd.Client(), "/converge")
	if o.Agents == 0 {
		o.Agents = 3
	}
	if !o.Simulate && o.WorkDir == "" {
		o.WorkDir = t.TempDir()
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 500 * time.Millisecond
	}
	if o.AllocationInterval == 0 {
		o.AllocationInterval = 50 * time.Millisecond
	}
	if o.ResendInterval == 0 {
		o.ResendInterval = 300 * time.Millisecond
	}
	if o.Sim.LaunchDelay == 0 {
		o.Sim.LaunchDelay = 20 * time.Millisecond
	}
	o.Log = testLogger(t).WithName("localmesos")
	m, err := localmesos.New(o)
	if err != nil {
		t.Fatalf("localmesos.New: %v", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("localmesos.Start: %v", err)
	}
	e.mesos = m
	e.proxies = newMesosProxies(t, m.URLs())
	e.cfg = Config{
		Store: e.st, Workers: 4, ResyncInterval: 300 * time.Millisecond,
		UnreachableTimeout: time.Second, StallAfter: time.Second, Roles: []string{"*"},
		Log: testLogger(t).WithName("controller"),
	}
	t.Cleanup(func() {
		e.stop()
		_ = m.Close()
	})
	return e
}

func (e *env) bridgeConfig() mesosbridge.Config {
	var masters []string
	for _, p := range e.proxies {
		masters = append(masters, p.URL())
	}
	return mesosbridge.Config{
		Masters: masters, FrameworkName: "converge-test", Hostname: "localhost", Roles: e.cfg.Roles,
		FailoverTimeout:  time.Hour,
		ReconcileBackoff: 200 * time.Millisecond, ReconcileMaxBackoff: time.Second,
		ReconnectBackoff: 50 * time.Millisecond, ReconnectMaxBackoff: time.Second,
		KillRetry: 300 * time.Millisecond, KillMaxRetry: time.Second,
		ReviveInterval: 100 * time.Millisecond, CallTimeout: 5 * time.Second,
		Log: testLogger(e.t).WithName("bridge"),
	}
}

// start runs a controller through Run, the wiring converge serve uses, with
// fresh metrics (e.metric reads them).
func (e *env) start() {
	e.t.Helper()
	cfg, reg := e.cfg, prometheus.NewRegistry()
	cfg.Registerer = reg
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, e.bridgeConfig()) }()
	e.mu.Lock()
	e.reg, e.cancel, e.done = reg, cancel, done
	e.mu.Unlock()
}

// metric sums the samples of the running controller's metric name whose
// labels include labels (counters, gauges; histograms count samples).
func (e *env) metric(name string, labels map[string]string) float64 {
	e.t.Helper()
	e.mu.Lock()
	reg := e.reg
	e.mu.Unlock()
	mfs, err := reg.Gather()
	if err != nil {
		e.t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == k && lp.GetValue() == v
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func (e *env) stop() {
	e.mu.Lock()
	cancel, done := e.cancel, e.done
	e.cancel, e.done = nil, nil
	e.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			e.t.Errorf("controller: %v", err)
		}
	case <-time.After(15 * time.Second):
		e.t.Errorf("controller did not stop")
	}
}

func newCluster(name string, replicas int32, mods ...func(*v1alpha1.Cluster)) *v1alpha1.Cluster {
	c := &v1alpha1.Cluster{}
	c.Name = name
	c.Spec.Replicas = &replicas
	c.Spec.Task.Command = "sleep 1000"
	cpu, mem := resource.MustParse("100m"), resource.MustParse("32Mi")
	c.Spec.Task.Resources = v1alpha1.Resources{CPUs: &cpu, Mem: &mem, Ports: 1}
	c.Spec.Task.Env = map[string]string{"DB_PASSWORD": "s3cr3t-value"}
	c.Spec.Election.Timeout = &metav1.Duration{Duration: 3 * time.Second}
	// Ready as soon as members run: these tests are about launching, killing
	// and electing; crashloop_test.go is about minReadySeconds.
	minReady := int32(0)
	c.Spec.Update.MinReadySeconds = &minReady
	for _, m := range mods {
		m(c)
	}
	v1alpha1.SetDefaults(c)
	return c
}

func (e *env) create(c *v1alpha1.Cluster) *v1alpha1.Cluster {
	e.t.Helper()
	if errs := v1alpha1.Validate(c); len(errs) > 0 {
		e.t.Fatalf("invalid test cluster: %v", errs)
	}
	out, err := e.st.Create(context.Background(), c)
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	return out
}

// update re-reads the cluster, applies f to its spec and writes it.
func (e *env) update(name string, f func(*v1alpha1.Cluster)) {
	e.t.Helper()
	for i := 0; i < 20; i++ {
		c, err := e.st.Get(context.Background(), "default", name)
		if err != nil {
			e.t.Fatalf("get: %v", err)
		}
		f(c)
		if _, err = e.st.Update(context.Background(), c); err == nil {
			return
		} else if !store.IsConflict(err) {
			e.t.Fatalf("update: %v", err)
		}
	}
	e.t.Fatalf("update: conflicts")
}

func (e *env) get(name string) *v1alpha1.Cluster {
	c, err := e.st.Get(context.Background(), "default", name)
	if err != nil {
		return nil
	}
	return c
}

// waitFor polls until cond holds for the cluster (nil when gone).
func (e *env) waitFor(name string, timeout time.Duration, what string, cond func(c *v1alpha1.Cluster) bool) *v1alpha1.Cluster {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var c *v1alpha1.Cluster
	for time.Now().Before(deadline) {
		c = e.get(name)
		if cond(c) {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c != nil {
		b, _ := json.MarshalIndent(c.Status, "", "  ")
		e.t.Fatalf("timed out waiting for %s of %s; status:\n%s", what, name, b)
	}
	e.t.Fatalf("timed out waiting for %s of %s (gone)", what, name)
	return nil
}

func clusterReady(c *v1alpha1.Cluster) bool { return c != nil && v1alpha1.IsReady(c) }

func (e *env) waitReady(name string) *v1alpha1.Cluster {
	e.t.Helper()
	return e.waitFor(name, 20*time.Second, "Ready", clusterReady)
}

// masterState reads ground truth the way an operator would.
func (e *env) masterState() localmesos.State {
	e.t.Helper()
	resp, err := http.Get(e.mesos.URL() + "/master/state")
	if err != nil {
		e.t.Fatalf("GET /master/state: %v", err)
	}
	defer resp.Body.Close()
	var s localmesos.State
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		e.t.Fatalf("decode /master/state: %v", err)
	}
	return s
}

// activeTasks are the tasks Mesos runs (not terminal), by id.
func (e *env) activeTasks() map[string]string {
	out := map[string]string{}
	for _, fw := range e.masterState().Frameworks {
		for _, t := range fw.Tasks {
			if !IsTerminalState(t.State) {
				out[t.ID] = t.State
			}
		}
		for _, t := range fw.UnreachableTasks {
			out[t.ID] = t.State
		}
	}
	return out
}

// checkConverged checks Mesos runs exactly the cluster's status tasks: one per
// ordinal, none unknown to the ledger.
func (e *env) checkConverged(name string, replicas int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = e.convergedProblem(name, replicas)
		if last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("not converged: %s", last)
}

func (e *env) convergedProblem(name string, replicas int) string {
	c := e.get(name)
	if c == nil {
		return "cluster gone"
	}
	ledger, err := e.st.ListTasks(context.Background(), "default", name)
	if err != nil {
		return err.Error()
	}
	known := map[string]store.TaskRecord{}
	for _, r := range ledger {
		known[r.ID] = r
	}
	active := e.activeTasks()
	ords := map[int32]int{}
	for id, state := range active {
		ns, cl, ord, ok := ParseTaskID(id)
		if !ok || ns != "default" || cl != name {
			continue
		}
		if _, ok := known[id]; !ok {
			return fmt.Sprintf("task %s (%s) runs but the ledger does not know it", id, state)
		}
		ords[ord]++
	}
	if len(ords) != replicas {
		return fmt.Sprintf("%d ordinals active, want %d: %v", len(ords), replicas, ords)
	}
	for o, n := range ords {
		if n != 1 || int(o) >= replicas {
			return fmt.Sprintf("ordinal %d has %d tasks (want one each of 0..%d)", o, n, replicas-1)
		}
	}
	return ""
}

func taskOf(c *v1alpha1.Cluster, ordinal int32) v1alpha1.TaskStatus {
	for _, t := range c.Status.Tasks {
		if t.Ordinal == ordinal && !strings.HasPrefix(t.Message, "killing") {
			return t
		}
	}
	return v1alpha1.TaskStatus{}
}

func (e *env) events(name string) []store.Event {
	evs, err := e.st.ListEvents(context.Background(), "default", name)
	if err != nil {
		e.t.Fatalf("events: %v", err)
	}
	return evs
}

func hasEventReason(evs []store.Event, reason string) bool {
	for _, ev := range evs {
		if ev.Reason == reason {
			return true
		}
	}
	return false
}

func sortedIDs(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// positional makes c elect by replication position under converge executor.
func positional(c *v1alpha1.Cluster) {
	c.Spec.Election.Strategy = v1alpha1.ElectionPosition
	c.Spec.Election.PositionCommand = "cat position"
	c.Spec.Election.PromoteCommand = "touch promoted"
}
