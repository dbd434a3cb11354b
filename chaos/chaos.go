// Package chaos is converge's fault suite (issue 7): it runs the real thing
// as separate processes (a 3-member etcd cluster of embedded members, the
// local Mesos over HTTP with two masters and simulated tasks, two or three
// `converge serve` replicas), injects faults for a while (SIGKILL of the
// leading and standby controllers, SIGKILL and restart of an etcd member,
// task failures, agent loss and return, Mesos master failover, dropped and
// duplicated status updates, scaling), checks invariants continuously
// against GET /master/state and the store, then stops the faults, waits
// for every cluster to converge and reports what it injected, what held,
// how long convergence took and how long a standby took to take over.
//
// `make chaos` runs it for 10 minutes (`converge chaos`); a short form
// runs in `go test ./chaos/`.
package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/mesosbridge/masterstate"
	"github.com/converge-io/converge/store"
)

// Config configures Run.
type Config struct {
	// Binary is the converge binary run for every process.
	Binary string
	// Dir holds data directories and each process's log.
	Dir string
	// Duration of the fault phase.
	Duration time.Duration
	// FaultEvery is the mean pause between two faults (default 4s).
	FaultEvery time.Duration
	// Controllers: `converge serve` replicas (default 3).
	Controllers int
	// Clusters of Replicas members each (defaults 4 and 3).
	Clusters int
	Replicas int32
	// Agents of the local Mesos (default 6), Masters (default 2).
	Agents, Masters int
	// ConvergeTimeout bounds the wait for convergence after the faults
	// stop (default 3m).
	ConvergeTimeout time.Duration
	// Seed of the fault schedule (0: the time).
	Seed int64
	// Out receives progress lines and the report.
	Out io.Writer
}

func (c *Config) defaults() {
	if c.FaultEvery <= 0 {
		c.FaultEvery = 4 * time.Second
	}
	if c.Controllers <= 0 {
		c.Controllers = 3
	}
	if c.Clusters <= 0 {
		c.Clusters = 4
	}
	if c.Replicas <= 0 {
		c.Replicas = 3
	}
	if c.Agents <= 0 {
		c.Agents = 6
	}
	if c.Masters <= 0 {
		c.Masters = 2
	}
	if c.ConvergeTimeout <= 0 {
		c.ConvergeTimeout = 3 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// Invariant is one property and whether it held.
type Invariant struct {
	Name       string   `json:"name"`
	Held       bool     `json:"held"`
	Detail     string   `json:"detail,omitempty"`
	Violations []string `json:"violations,omitempty"`
}

// Report is what Run found.
type Report struct {
	Seed            int64          `json:"seed"`
	FaultSeconds    float64        `json:"fault_seconds"`
	Injected        map[string]int `json:"injected"`
	Invariants      []Invariant    `json:"invariants"`
	Converged       bool           `json:"converged"`
	ConvergeSeconds float64        `json:"converge_seconds"`
	// TakeoverSeconds: from the SIGKILL of the leading controller to the
	// standby's first action (its SUBSCRIBE: the framework is connected to
	// Mesos again), one per leader kill; ElectionSeconds to the standby's
	// election (leader.Current names it).
	TakeoverSeconds    []float64 `json:"takeover_seconds"`
	TakeoverMaxSeconds float64   `json:"takeover_max_seconds"`
	ElectionSeconds    []float64 `json:"election_seconds"`
}

// OK reports whether every invariant held and every cluster converged.
func (r *Report) OK() bool {
	if !r.Converged {
		return false
	}
	for _, inv := range r.Invariants {
		if !inv.Held {
			return false
		}
	}
	return true
}

// Print writes the report for a human.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos: %.0fs of faults (seed %d)\n", r.FaultSeconds, r.Seed)
	var names []string
	for k := range r.Injected {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprint(w, "injected:")
	for _, k := range names {
		fmt.Fprintf(w, " %s=%d", k, r.Injected[k])
	}
	fmt.Fprintln(w)
	for _, inv := range r.Invariants {
		verdict := "held"
		if !inv.Held {
			verdict = fmt.Sprintf("VIOLATED (%d)", len(inv.Violations))
		}
		fmt.Fprintf(w, "invariant %-34s %s", inv.Name, verdict)
		if inv.Detail != "" {
			fmt.Fprintf(w, "  [%s]", inv.Detail)
		}
		fmt.Fprintln(w)
		for i, v := range inv.Violations {
			if i == 10 {
				fmt.Fprintf(w, "    ... %d more\n", len(inv.Violations)-10)
				break
			}
			fmt.Fprintf(w, "    %s\n", v)
		}
	}
	if r.Converged {
		fmt.Fprintf(w, "converged: every cluster Ready and matching Mesos %.1fs after the last blow (leader SIGKILL + a member of each cluster failed + master failover)\n", r.ConvergeSeconds)
	} else {
		fmt.Fprintf(w, "converged: NO (gave up after %.0fs)\n", r.ConvergeSeconds)
	}
	fmt.Fprintf(w, "takeover_seconds: %s (max %.2f)\n", floats(r.TakeoverSeconds), r.TakeoverMaxSeconds)
	fmt.Fprintf(w, "election_seconds: %s\n", floats(r.ElectionSeconds))
	if r.OK() {
		fmt.Fprintln(w, "result: PASS (zero invariant violations, full convergence)")
	} else {
		fmt.Fprintln(w, "result: FAIL")
	}
}

func floats(v []float64) string {
	if len(v) == 0 {
		return "none measured"
	}
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(s, " ")
}

const prefix = store.DefaultPrefix

// chaosSecret is the value of a password in every cluster's task env: no
// process log may ever contain it, whatever the faults made them log.
const chaosSecret = "chaos-db-pa55w0rd-never-logged"

// secretInLogs lists the process logs of dir that contain chaosSecret.
func secretInLogs(dir string) []string {
	var out []string
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", l, err))
			continue
		}
		if n := bytes.Count(b, []byte(chaosSecret)); n > 0 {
			out = append(out, fmt.Sprintf("%s: %d occurrences", filepath.Base(l), n))
		}
	}
	return out
}

// suite is one run.
type suite struct {
	cfg     Config
	rng     *rand.Rand
	etcd    []*proc
	etcdEP  []string
	mesos   *proc
	masters []string
	ctrls   []*proc
	st      *store.Store
	http    *http.Client
	mon     *monitor

	mu       sync.Mutex
	injected map[string]int
	down     map[string]bool // "etcd/m1", "agent/127.0.0.3", "ctrl/c0": out until healed
	report   Report
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func (s *suite) count(fault string) {
	s.mu.Lock()
	s.injected[fault]++
	s.mu.Unlock()
}

// Run runs the suite and returns its report; the error is for a suite that
// could not run at all (a process that never came up).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	s := &suite{
		cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)),
		http:     &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		injected: map[string]int{}, down: map[string]bool{},
	}
	s.report.Seed = cfg.Seed
	defer s.stopAll()
	if err := s.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := s.startMesos(ctx); err != nil {
		return nil, err
	}
	st, err := store.New(ctx, store.Options{Endpoints: s.etcdEP, DialTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	s.st = st
	s.startControllers()
	s.logf("up: etcd %s; Mesos %s; %d controllers (logs in %s)", strings.Join(s.etcdEP, ","), strings.Join(s.masters, ","), len(s.ctrls), cfg.Dir)

	s.mon = newMonitor(s)
	monCtx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	monDone := s.mon.start(monCtx)

	if err := s.createClusters(ctx); err != nil {
		return nil, err
	}
	// Faults start once everything is up and converged once, so that the
	// figures are about recovery, not about the first launch.
	if d, ok := s.waitConverged(ctx, cfg.ConvergeTimeout); !ok {
		s.logf("initial convergence failed after %s", d)
	} else {
		s.logf("initial convergence in %.1fs", d.Seconds())
	}

	began := time.Now()
	s.faults(ctx, cfg.Duration)
	s.report.FaultSeconds = time.Since(began).Seconds()

	s.storm(ctx)
	s.logf("faults stopped; healing everything")
	s.heal(ctx)
	d, ok := s.waitConverged(ctx, cfg.ConvergeTimeout)
	s.report.Converged, s.report.ConvergeSeconds = ok, d.Seconds()
	s.logf("convergence after faults: %v in %.1fs", ok, d.Seconds())
	// Let the monitor see the converged world a little longer.
	time.Sleep(2 * time.Second)
	stopMon()
	<-monDone
	s.report.Injected = s.injected
	s.report.Invariants = s.mon.verdicts(ctx, ok)
	leaks := secretInLogs(cfg.Dir)
	s.report.Invariants = append(s.report.Invariants, Invariant{Name: "no secret in any process log", Held: len(leaks) == 0,
		Violations: leaks, Detail: "task env DB_PASSWORD of every cluster"})
	return &s.report, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *suite) startEtcd(ctx context.Context) error {
	const n = 3
	var peers []string
	type urls struct{ client, peer string }
	var us []urls
	for i := 0; i < n; i++ {
		cp, err := freePort()
		if err != nil {
			return err
		}
		pp, err := freePort()
		if err != nil {
			return err
		}
		u := urls{fmt.Sprintf("http://127.0.0.1:%d", cp), fmt.Sprintf("http://127.0.0.1:%d", pp)}
		us = append(us, u)
		peers = append(peers, fmt.Sprintf("m%d=%s", i, u.peer))
	}
	for i, u := range us {
		name := fmt.Sprintf("m%d", i)
		p := newProc(s.cfg.Dir, "etcd-"+name, s.cfg.Binary, "chaos-etcd-member",
			"--name", name, "--dir", filepath.Join(s.cfg.Dir, "etcd", name),
			"--client-url", u.client, "--peer-url", u.peer, "--initial-cluster", strings.Join(peers, ","))
		if err := p.start(); err != nil {
			return err
		}
		s.etcd = append(s.etcd, p)
		s.etcdEP = append(s.etcdEP, u.client)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := store.New(cctx, store.Options{Endpoints: s.etcdEP, DialTimeout: 3 * time.Second})
		cancel()
		if err == nil {
			st.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("etcd cluster did not come up (logs in %s): %w", s.cfg.Dir, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var mastersLine = regexp.MustCompile(`masters:\s+(\S.*?) \(leader`)

func (s *suite) startMesos(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.mesos = newProc(s.cfg.Dir, "local-mesos", s.cfg.Binary, "local-mesos", "--simulate",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--masters", fmt.Sprint(s.cfg.Masters),
		"--agents", fmt.Sprint(s.cfg.Agents))
	if err := s.mesos.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b, _ := os.ReadFile(s.mesos.log)
		if m := mastersLine.FindSubmatch(b); m != nil {
			for _, u := range strings.Split(string(m[1]), ",") {
				s.masters = append(s.masters, strings.TrimSpace(u))
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("local Mesos did not come up (log %s)", s.mesos.log)
}

func (s *suite) startControllers() {
	for i := 0; i < s.cfg.Controllers; i++ {
		id := fmt.Sprintf("c%d", i)
		p := newProc(s.cfg.Dir, "serve-"+id, s.cfg.Binary, "serve",
			"--etcd-endpoints", strings.Join(s.etcdEP, ","),
			"--mesos-master", strings.Join(s.masters, ","),
			"--identity", id, "--http=", "--failover-timeout", "1h", "-v", "2")
		if err := p.start(); err != nil {
			s.logf("start %s: %v", id, err)
		}
		s.ctrls = append(s.ctrls, p)
	}
}

func (s *suite) stopAll() {
	var wg sync.WaitGroup
	for _, p := range append(append([]*proc{}, s.ctrls...), s.mesos) {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(5 * time.Second) }(p)
	}
	wg.Wait()
	for _, p := range s.etcd {
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(5 * time.Second) }(p)
	}
	wg.Wait()
}

func clusterName(i int) string { return fmt.Sprintf("chaos-%d", i) }

func (s *suite) createClusters(ctx context.Context) error {
	for i := 0; i < s.cfg.Clusters; i++ {
		r := s.cfg.Replicas
		c := &v1alpha1.Cluster{}
		c.Name = clusterName(i)
		c.Labels = map[string]string{"suite": "chaos"}
		c.Spec.Replicas = &r
		c.Spec.Task.Command = "sleep 100000"
		c.Spec.Task.Env = map[string]string{"DB_PASSWORD": chaosSecret}
		cpu, mem := resource.MustParse("100m"), resource.MustParse("32Mi")
		c.Spec.Task.Resources = v1alpha1.Resources{CPUs: &cpu, Mem: &mem, Ports: 1}
		c.Spec.Election.Timeout = &metav1.Duration{Duration: 5 * time.Second}
		// The suite fails members far more often than any service fails by
		// itself; a back-off capped at the default 5m would outlast the
		// convergence timeout. Capped at 10s it is still exercised.
		c.Spec.Restart.MaxBackoff = &metav1.Duration{Duration: 10 * time.Second}
		switch i % 3 {
		case 0:
			c.Spec.Election.Strategy = v1alpha1.ElectionPosition
			c.Spec.Election.PositionCommand = "cat position"
			c.Spec.Election.PromoteCommand = "touch promoted"
		case 1:
			c.Spec.Election.Strategy = v1alpha1.ElectionOrdinal
		}
		v1alpha1.SetDefaults(c)
		if errs := v1alpha1.Validate(c); len(errs) > 0 {
			return fmt.Errorf("chaos cluster: %v", errs.ToAggregate())
		}
		created, err := s.st.Create(ctx, c)
		if err != nil {
			return fmt.Errorf("create %s: %w", c.Name, err)
		}
		s.mon.expect(created)
	}
	return nil
}

// ourFramework reads GET /master/state from the first master that answers
// it and returns converge's framework in it (the zero Framework and false
// if Mesos does not know it).
func (s *suite) ourFramework(ctx context.Context) (masterstate.Framework, bool, error) {
	var last error
	for _, u := range s.masters {
		st, err := masterstate.Get(ctx, s.http, u)
		if err != nil {
			last = err
			continue
		}
		if f, ok := st.Framework(frameworkName); ok {
			return *f, true, nil
		}
		return masterstate.Framework{}, false, nil
	}
	return masterstate.Framework{}, false, last
}

func (s *suite) postFault(ctx context.Context, path string) error {
	var last error
	for _, u := range s.masters {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u+path, nil)
		resp, err := s.http.Do(req)
		if err != nil {
			last = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("POST %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
			continue
		}
		return nil
	}
	return last
}

func (s *suite) leaderIdentity(ctx context.Context) string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	id, err := leader.Current(cctx, s.st.Client(), prefix)
	if err != nil {
		return ""
	}
	return id
}

func (s *suite) ctrl(id string) *proc {
	for _, p := range s.ctrls {
		if p.name == "serve-"+id {
			return p
		}
	}
	return nil
}
