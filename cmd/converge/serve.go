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

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/store"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
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
		verbose         int
		unreachable     time.Duration
		api             apiFlags
		shards, shard   int
	)
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

The framework's secret is read from --secret-file, never from a flag value.`,
		Example: `  converge serve --mesos-master http://mesos-1:5050,http://mesos-2:5050 \
    --etcd-endpoints https://etcd-1:2379 --etcd-cacert ca.pem \
    --principal converge --secret-file /etc/converge/secret \
    --executor-uri http://artifacts/converge --http 0.0.0.0:8080`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms := cli.SplitEndpoints(masters)
			if len(ms) == 0 {
				return cli.Usage("--mesos-master is required: the Mesos masters' URLs, e.g. http://mesos-1:5050")
			}
			for _, m := range ms {
				if !strings.HasPrefix(m, "http://") && !strings.HasPrefix(m, "https://") {
					return cli.Usage("--mesos-master %q: want http://host:port or https://host:port", m)
				}
			}
			secret := ""
			if secretFile != "" {
				var err error
				if secret, err = mesosbridge.ReadSecretFile(secretFile); err != nil {
					return fmt.Errorf("--secret-file: %w", err)
				}
				if principal == "" {
					return cli.Usage("--secret-file needs --principal")
				}
			}
			if shards < 0 || (shards > 1 && (shard < 0 || shard >= shards)) {
				return cli.Usage("--shard %d of --shards %d: want 0 <= shard < shards", shard, shards)
			}
			if shards <= 1 && cmd.Flags().Changed("shard") {
				return cli.Usage("--shard needs --shards N (N > 1)")
			}
			if identity == "" {
				host, _ := os.Hostname()
				identity = fmt.Sprintf("%s-%d", host, os.Getpid())
			}
			ctx := cmd.Context()
			log := newLogger(g.errOut, verbose)
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)

			base := newRegistry()
			leading := prometheus.NewGauge(prometheus.GaugeOpts{Name: "converge_leader", Help: "The shards this replica leads (unsharded: 1 while it leads)."})
			base.MustRegister(leading)
			terms := &termGatherer{}
			ops, err := startOpsServer(httpAddr, prometheus.Gatherers{base, terms}, func(ctx context.Context) error {
				_, err := st.Client().Get(ctx, st.Prefix()+"/framework")
				return err
			})
			if err != nil {
				return err
			}
			defer ops.Close()

			fmt.Fprintf(g.out, "converge serve %s: etcd %s (prefix %s), Mesos %s, framework %q roles %q\n",
				identity, redactEndpoints(g.etcdEndpoints), st.Prefix(), strings.Join(ms, ","), frameworkName, strings.Join(roles, ","))
			if u := ops.URL(); u != "" {
				fmt.Fprintf(g.out, "  metrics %s/metrics, health %s/healthz, %s/readyz\n", u, u, u)
			}
			if executorURI == "" {
				fmt.Fprintln(g.errOut, "warning: no --executor-uri: clusters with election.strategy position and no executor of their own cannot elect a master")
			}
			// Every replica serves the API (it reads and writes the store, unfenced);
			// only the leader runs the controller.
			apiCtx, stopAPI := context.WithCancel(ctx)
			defer stopAPI()
			apiSrv, err := api.start(apiCtx, st, log)
			if err != nil {
				return err
			}
			if apiSrv != nil {
				fmt.Fprintf(g.out, "  kubernetes API %s\n", apiSrv.URL)
			}
			lead := func(ctx context.Context, shard controller.Shard) error {
				sst, name := st, frameworkName
				if shards > 1 {
					sst, name = st.Shard(shard.Name()), fmt.Sprintf("%s-shard-%d", frameworkName, shard.Index)
				}
				fmt.Fprintf(g.out, "  campaigning for leadership under %s (framework %q)\n", sst.LeaderPrefix(), name)
				return leader.RunWithOptions(ctx, st.Client(), sst, leader.Options{Identity: identity, TTL: leaseTTL, Log: log.WithName("leader").WithValues("shard", shard.Index)},
					func(lctx context.Context, fenced *store.Store) error {
						leading.Inc()
						defer leading.Dec()
						// Metrics of one leadership term; the next term registers afresh.
						reg := prometheus.NewRegistry()
						terms.set(shard.Index, reg)
						defer terms.set(shard.Index, nil)
						err := controller.Run(lctx, controller.Config{
							Store:              fenced,
							Shard:              shard,
							UnreachableTimeout: unreachable,
							ExecutorURI:        executorURI,
							ExecutorCommand:    executorCommand,
							Log:                log.WithName("controller").WithValues("shard", shard.Index),
							Registerer:         reg,
						}, mesosbridge.Config{
							Masters:         ms,
							FrameworkName:   name,
							Roles:           roles,
							Principal:       principal,
							Secret:          secret,
							CACertFile:      mesosCACert,
							FailoverTimeout: failoverTimeout,
							NewFramework:    newFramework,
							Log:             log.WithName("mesos").WithValues("shard", shard.Index),
						})
						if err != nil && !errors.Is(err, context.Canceled) {
							log.Error(err, "controller stopped", "shard", shard.Index)
						}
						return err
					})
			}
			err = runShards(ctx, shards, shard, leaseTTL, lead)
			if apiSrv != nil {
				stopAPI()
				_ = apiSrv.Wait()
			}
			fmt.Fprintln(g.out, "converge serve stopped")
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&masters, "mesos-master", "", "Mesos master URLs, comma-separated (http(s)://host:port)")
	f.StringVar(&frameworkName, "framework-name", "converge", "the Mesos framework name")
	f.StringSliceVar(&roles, "role", []string{"*", "converge"}, `the framework's Mesos roles (MULTI_ROLE; comma-separated or repeated): clusters may use any of them; persistent volumes need one other than "*"`)
	f.StringVar(&principal, "principal", "", "principal to authenticate to Mesos with")
	f.StringVar(&secretFile, "secret-file", "", "file holding the principal's secret")
	f.StringVar(&mesosCACert, "mesos-cacert", "", "CA certificate file to verify https masters")
	f.DurationVar(&failoverTimeout, "failover-timeout", 168*time.Hour, "how long Mesos keeps the framework's tasks while no scheduler is connected")
	f.StringVar(&httpAddr, "http", "127.0.0.1:8080", `address for /metrics, /healthz and /readyz ("" to disable)`)
	f.StringVar(&executorURI, "executor-uri", "", "where agents fetch the converge binary to run `converge executor` (position elections)")
	f.StringVar(&executorCommand, "executor-command", controller.DefaultExecutorCommand, "how the sandbox runs the fetched executor")
	f.BoolVar(&newFramework, "new-framework", false, "ignore the stored framework id and register a new framework (after Mesos removed the old one)")
	f.StringVar(&identity, "identity", "", "this replica's name in the leader election (default hostname-pid)")
	f.DurationVar(&leaseTTL, "lease-ttl", leader.DefaultTTL, "leader lease TTL: a dead leader is replaced within about this long")
	f.IntVar(&shards, "shards", 0, "split the clusters over this many shards, each its own Mesos framework with its own leader (docs/design.md, Sharding); the same N on every replica, never changed")
	f.IntVar(&shard, "shard", 0, "with --shards: the shard this replica campaigns to lead; it also stands by for the next one (shard+1 mod N)")
	api.register(cmd)
	f.IntVarP(&verbose, "verbose", "v", 0, "log verbosity (0: info and errors)")
	f.DurationVar(&unreachable, "unreachable-timeout", controller.DefaultUnreachableTimeout, "write off (stop counting, kill) a member whose agent is unreachable for this long; its ordinal is relaunched once Mesos reports it finished")
	return cmd
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
