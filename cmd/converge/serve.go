package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/store"
)

// serveFlags are converge serve's flags.
type serveFlags struct {
	masters         string
	frameworkName   string
	roles           []string
	principal       string
	secretFile      string
	mesosCACert     string
	failoverTimeout time.Duration
	httpAddr        string
	executorURI     string
	executorCommand string
	newFramework    bool
	identity        string
	leaseTTL        time.Duration
	compaction      time.Duration // --etcd-compaction-interval
	verbose         int
	unreachable     time.Duration
	api             apiFlags
	shards, shard   int
}

func newServeCmd(g *globals) *cobra.Command {
	var fl serveFlags
	cmd := &cobra.Command{
		Use:   "serve --mesos-master URL[,URL...]",
		Short: "Run the controller against a real etcd and a real Mesos (several replicas: one leads)",
		Long: `serve runs the controller in production: it reads clusters from etcd
(--etcd-endpoints) and runs their tasks as a Mesos framework, over the v1
scheduler HTTP API of the masters given (several for an HA Mesos: the leader
is found and followed).

Run two or three replicas: they elect a leader in etcd (<prefix>/leader/); only
the leader subscribes to Mesos and writes, through a store fenced on its
leadership, and a standby takes over within the lease TTL when it dies.

Every replica, standby or leader, can serve the Kubernetes API for kubectl,
Flux and Argo CD (--api-listen, with --api-cert and --api-key, and
--api-client-ca and/or --api-token-file: anonymous requests are refused); it
reads and writes the same etcd, so a write through a standby is the
leader's to run.

The framework's secret is read from --secret-file, never from a flag value.`,
		Example: `  converge serve --mesos-master http://mesos-1:5050,http://mesos-2:5050 \
    --etcd-endpoints https://etcd-1:2379 --etcd-cacert ca.pem \
    --principal converge --secret-file /etc/converge/secret \
    --executor-uri http://artifacts/converge --http 0.0.0.0:8080`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := &serveRun{g: g, fl: &fl}
			if err := s.check(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			s.log = newLogger(g.errOut, fl.verbose)
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			s.st = st
			defer startCompactor(st, fl.compaction, s.log)()
			ops, err := s.startOps()
			if err != nil {
				return err
			}
			defer ops.Close()
			s.printBanner(ops)
			// Every replica serves the API (it reads and writes the store, unfenced);
			// only the leader runs the controller.
			apiCtx, stopAPI := context.WithCancel(ctx)
			defer stopAPI()
			apiSrv, err := fl.api.start(apiCtx, st, s.log)
			if err != nil {
				return err
			}
			if apiSrv != nil {
				fmt.Fprintf(g.out, "  kubernetes API %s\n", apiSrv.URL)
			}
			err = runShards(ctx, fl.shards, fl.shard, fl.leaseTTL, s.lead)
			if apiSrv != nil {
				stopAPI()
				_ = apiSrv.Wait()
			}
			fmt.Fprintln(g.out, "converge serve stopped")
			return err
		},
	}
	fl.register(cmd)
	return cmd
}

func (fl *serveFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&fl.masters, "mesos-master", "", "Mesos master URLs, comma-separated (http(s)://host:port)")
	f.StringVar(&fl.frameworkName, "framework-name", "converge", "the Mesos framework name")
	f.StringSliceVar(&fl.roles, "role", []string{"*", "converge"}, `the framework's Mesos roles (MULTI_ROLE; comma-separated or repeated): clusters may use any of them; persistent volumes need one other than "*"`)
	f.StringVar(&fl.principal, "principal", "", "principal to authenticate to Mesos with")
	f.StringVar(&fl.secretFile, "secret-file", "", "file holding the principal's secret")
	f.StringVar(&fl.mesosCACert, "mesos-cacert", "", "CA certificate file to verify https masters")
	f.DurationVar(&fl.failoverTimeout, "failover-timeout", 168*time.Hour, "how long Mesos keeps the framework's tasks while no scheduler is connected")
	f.StringVar(&fl.httpAddr, "http", "127.0.0.1:8080", `address for /metrics, /healthz and /readyz ("" to disable)`)
	f.StringVar(&fl.executorURI, "executor-uri", "", "where agents fetch the converge binary to run `converge executor` (position elections)")
	f.StringVar(&fl.executorCommand, "executor-command", controller.DefaultExecutorCommand, "how the sandbox runs the fetched executor")
	f.BoolVar(&fl.newFramework, "new-framework", false, "ignore the stored framework id and register a new framework (after Mesos removed the old one)")
	f.StringVar(&fl.identity, "identity", "", "this replica's name in the leader election (default hostname-pid)")
	f.DurationVar(&fl.leaseTTL, "lease-ttl", leader.DefaultTTL, "leader lease TTL: a dead leader is replaced within about this long")
	f.IntVar(&fl.shards, "shards", 0, "split the clusters over this many shards, each its own Mesos framework with its own leader (docs/design.md, Sharding); the same N on every replica, never changed")
	f.IntVar(&fl.shard, "shard", 0, "with --shards: the shard this replica campaigns to lead; it also stands by for the next one (shard+1 mod N)")
	fl.api.register(cmd)
	registerCompaction(cmd, &fl.compaction)
	f.IntVarP(&fl.verbose, "verbose", "v", 0, "log verbosity (0: info and errors)")
	f.DurationVar(&fl.unreachable, "unreachable-timeout", controller.DefaultUnreachableTimeout, "write off (stop counting, kill) a member whose agent is unreachable for this long; its ordinal is relaunched once Mesos reports it finished")
}

// serveRun is one run of converge serve: its checked flags, the store, and
// the metrics that outlive a leadership term.
type serveRun struct {
	g      *globals
	fl     *serveFlags
	ms     []string // the Mesos masters' URLs
	secret string   // the framework's secret, read from --secret-file
	log    logr.Logger
	st     *store.Store

	leading prometheus.Gauge
	terms   *termGatherer
}

// check reads the flags that need more than parsing (the masters, the
// secret, the shard), so that a mistake is a usage error before etcd is
// dialled, and names this replica if --identity was not given.
func (s *serveRun) check(cmd *cobra.Command) error {
	fl := s.fl
	s.ms = cli.SplitEndpoints(fl.masters)
	if len(s.ms) == 0 {
		return cli.Usage("--mesos-master is required: the Mesos masters' URLs, e.g. http://mesos-1:5050")
	}
	for _, m := range s.ms {
		if !strings.HasPrefix(m, "http://") && !strings.HasPrefix(m, "https://") {
			return cli.Usage("--mesos-master %q: want http://host:port or https://host:port", m)
		}
	}
	if fl.secretFile != "" {
		var err error
		if s.secret, err = mesosbridge.ReadSecretFile(fl.secretFile); err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		if fl.principal == "" {
			return cli.Usage("--secret-file needs --principal")
		}
	}
	if fl.shards < 0 || (fl.shards > 1 && (fl.shard < 0 || fl.shard >= fl.shards)) {
		return cli.Usage("--shard %d of --shards %d: want 0 <= shard < shards", fl.shard, fl.shards)
	}
	if fl.shards <= 1 && cmd.Flags().Changed("shard") {
		return cli.Usage("--shard needs --shards N (N > 1)")
	}
	if fl.identity == "" {
		host, _ := os.Hostname()
		fl.identity = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return nil
}

// startOps serves metrics and health. The replica's own metrics stay; each
// leadership term's controller metrics join through s.terms while it lasts.
func (s *serveRun) startOps() (*opsServer, error) {
	base := newRegistry()
	s.leading = prometheus.NewGauge(prometheus.GaugeOpts{Name: "converge_leader", Help: "The shards this replica leads (unsharded: 1 while it leads)."})
	base.MustRegister(s.leading)
	s.terms = &termGatherer{}
	return startOpsServer(s.fl.httpAddr, prometheus.Gatherers{base, s.terms}, func(ctx context.Context) error {
		_, err := s.st.Client().Get(ctx, s.st.Prefix()+"/framework")
		return err
	})
}

// printBanner says what this replica talks to (etcd passwords redacted).
func (s *serveRun) printBanner(ops *opsServer) {
	fl, out := s.fl, s.g.out
	fmt.Fprintf(out, "converge serve %s: etcd %s (prefix %s), Mesos %s, framework %q roles %q\n",
		fl.identity, redactEndpoints(s.g.etcdEndpoints), s.st.Prefix(), strings.Join(s.ms, ","), fl.frameworkName, strings.Join(fl.roles, ","))
	if u := ops.URL(); u != "" {
		fmt.Fprintf(out, "  metrics %s/metrics, health %s/healthz, %s/readyz\n", u, u, u)
	}
	if fl.executorURI == "" {
		fmt.Fprintln(s.g.errOut, "warning: no --executor-uri: clusters with election.strategy position and no executor of their own cannot elect a master")
	}
}

// lead campaigns for one shard's leadership (unsharded: the only one) and
// runs the controller for each term won, through a store fenced on it.
func (s *serveRun) lead(ctx context.Context, shard controller.Shard) error {
	fl := s.fl
	sst, name := s.st, fl.frameworkName
	if fl.shards > 1 {
		sst, name = s.st.Shard(shard.Name()), fmt.Sprintf("%s-shard-%d", fl.frameworkName, shard.Index)
	}
	fmt.Fprintf(s.g.out, "  campaigning for leadership under %s (framework %q)\n", sst.LeaderPrefix(), name)
	return leader.RunWithOptions(ctx, s.st.Client(), sst, leader.Options{Identity: fl.identity, TTL: fl.leaseTTL, Log: s.log.WithName("leader").WithValues("shard", shard.Index)},
		func(lctx context.Context, fenced *store.Store) error {
			return s.runTerm(lctx, fenced, shard, name)
		})
}

// runTerm runs the controller for one leadership term of shard, as Mesos
// framework name, with metrics of its own: the next term registers afresh.
func (s *serveRun) runTerm(lctx context.Context, fenced *store.Store, shard controller.Shard, name string) error {
	fl := s.fl
	s.leading.Inc()
	defer s.leading.Dec()
	reg := prometheus.NewRegistry()
	s.terms.set(shard.Index, reg)
	defer s.terms.set(shard.Index, nil)
	err := controller.Run(lctx, controller.Config{
		Store:              fenced,
		Shard:              shard,
		UnreachableTimeout: fl.unreachable,
		ExecutorURI:        fl.executorURI,
		ExecutorCommand:    fl.executorCommand,
		Log:                s.log.WithName("controller").WithValues("shard", shard.Index),
		Registerer:         reg,
	}, mesosbridge.Config{
		Masters:         s.ms,
		FrameworkName:   name,
		Roles:           fl.roles,
		Principal:       fl.principal,
		Secret:          s.secret,
		CACertFile:      fl.mesosCACert,
		FailoverTimeout: fl.failoverTimeout,
		NewFramework:    fl.newFramework,
		Log:             s.log.WithName("mesos").WithValues("shard", shard.Index),
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error(err, "controller stopped", "shard", shard.Index)
	}
	return err
}

// termGatherer gathers the metrics of the current leadership terms (one per
// shard this replica leads), if any.
type termGatherer struct {
	mu   sync.Mutex
	regs map[int]*prometheus.Registry
}

func (t *termGatherer) set(shard int, r *prometheus.Registry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.regs == nil {
		t.regs = map[int]*prometheus.Registry{}
	}
	if r == nil {
		delete(t.regs, shard)
		return
	}
	t.regs[shard] = r
}

// Gather reads one term's metrics; with two shards led at once their
// families would collide, so only the lowest shard's are served.
func (t *termGatherer) Gather() ([]*dto.MetricFamily, error) {
	t.mu.Lock()
	var r *prometheus.Registry
	low := -1
	for s, reg := range t.regs {
		if low < 0 || s < low {
			low, r = s, reg
		}
	}
	t.mu.Unlock()
	if r == nil {
		return nil, nil
	}
	return r.Gather()
}

// runShards leads: unsharded, one campaign; with shards > 1, a campaign for
// shard and, after two lease TTLs (so that replicas started together each
// win their own shard first), a standby campaign for the next shard, which
// it wins when that shard's leader dies (docs/design.md, Sharding).
func runShards(ctx context.Context, shards, shard int, ttl time.Duration, lead func(context.Context, controller.Shard) error) error {
	if shards <= 1 {
		return lead(ctx, controller.Shard{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- lead(ctx, controller.Shard{Index: shard, Count: shards}) }()
	go func() {
		t := time.NewTimer(2 * ttl)
		defer t.Stop()
		select {
		case <-ctx.Done():
			errs <- nil
			return
		case <-t.C:
		}
		errs <- lead(ctx, controller.Shard{Index: (shard + 1) % shards, Count: shards})
	}()
	err := <-errs
	cancel()
	if err2 := <-errs; err == nil {
		err = err2
	}
	return err
}

// redactEndpoints masks passwords in comma-separated URLs before they are printed.
func redactEndpoints(list string) string {
	parts := cli.SplitEndpoints(list)
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil {
			parts[i] = u.Redacted()
		} else if strings.Contains(p, "@") {
			parts[i] = "<unparsable URL>"
		}
	}
	return strings.Join(parts, ",")
}
