package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// localMesosFlags are the local Mesos options dev and local-mesos share.
type localMesosFlags struct {
	agents          int
	agentResources  string
	agentAttributes string
	simulate        bool
	// Sandbox garbage collection and the fetcher cache, as the Mesos
	// agent's --gc_delay, --gc_disk_headroom, --disk_watch_interval and
	// --fetcher_cache_size.
	gcDelay           time.Duration
	gcDiskHeadroom    float64
	diskWatchInterval time.Duration
	fetcherCacheMB    int64
	// how long a partitioned agent stays registered (Mesos: failed health
	// checks, --agent_ping_timeout x --max_agent_ping_timeouts)
	agentUnreachableAfter time.Duration
	// relative URIs are fetched from under it (Mesos --frameworks_home)
	frameworksHome string
}

func (f *localMesosFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.agents, "agents", 3, "number of agents (each its own loopback hostname 127.0.0.N and port range)")
	fl.StringVar(&f.agentResources, "agent-resources", "cpus:4;mem:8192;disk:65536;ports:[31000-31999]", "each agent's resources, Mesos --resources syntax")
	fl.StringVar(&f.agentAttributes, "agent-attributes", "", `agent attributes template, e.g. "rack:r{i%3};zone:z1" ({i} is the agent index)`)
	fl.BoolVar(&f.simulate, "simulate", false, "run no processes: tasks are simulated state machines (for scale)")
	fl.DurationVar(&f.gcDelay, "gc-delay", 15*time.Minute, "remove a terminated executor's sandbox this long after it ended, sooner when the disk fills (Mesos --gc_delay; negative: never)")
	fl.Float64Var(&f.gcDiskHeadroom, "gc-disk-headroom", 0.1, "sandboxes older than gc-delay * (1 - this - disk usage) are removed at each disk check, 0 to 1 (Mesos --gc_disk_headroom)")
	fl.DurationVar(&f.diskWatchInterval, "disk-watch-interval", time.Minute, "how often the disk usage is checked (Mesos --disk_watch_interval)")
	fl.DurationVar(&f.agentUnreachableAfter, "agent-unreachable-after", 5*time.Second, "how long after POST /fault/agent/partition the master marks the agent unreachable (Mesos: 15s --agent_ping_timeout x 5 --max_agent_ping_timeouts = 75s)")
	fl.StringVar(&f.frameworksHome, "frameworks-home", ".", "relative local paths in task URIs are fetched from under this directory (Mesos --frameworks_home; default: where converge runs)")
	fl.Int64Var(&f.fetcherCacheMB, "fetcher-cache-mb", 2048, "size of the fetcher cache for URIs with cache: true, in MiB (Mesos --fetcher_cache_size; 0: no cache)")
}

func (f *localMesosFlags) options(listen, workDir string, masters int, log logr.Logger) localmesos.Options {
	// Zero means "none" on the command line, as for the Mesos agent, but
	// "default" in localmesos.Options.
	headroom, cacheMB := f.gcDiskHeadroom, f.fetcherCacheMB
	if headroom == 0 {
		headroom = -1
	}
	if cacheMB == 0 {
		cacheMB = -1
	}
	return localmesos.Options{
		Listen:          listen,
		Masters:         masters,
		Agents:          f.agents,
		AgentResources:  f.agentResources,
		AgentAttributes: f.agentAttributes,
		WorkDir:         workDir,
		Simulate:        f.simulate,
		Log:             log,

		GCDelay:           f.gcDelay,
		GCDiskHeadroom:    headroom,
		DiskWatchInterval: f.diskWatchInterval,
		FetcherCacheSize:  cacheMB << 20,

		AgentUnreachableAfter: f.agentUnreachableAfter,
		FrameworksHome:        absPath(f.frameworksHome),
	}
}

// absPath makes p absolute against the working directory ("" stays "").
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func newLocalMesosCmd(g *globals) *cobra.Command {
	var (
		lm      localMesosFlags
		listen  string
		workDir string
		masters int
		verbose int
		auth    mesosAuthFlags
	)
	cmd := &cobra.Command{
		Use:   "local-mesos",
		Short: "Run a local Mesos (masters and agents) speaking the v1 HTTP APIs",
		Long: `local-mesos runs an in-process Mesos master and agents that speak Mesos's v1
scheduler and executor HTTP APIs, run tasks as real local processes in per-task
sandboxes (or, with --simulate, as state machines) and serve /master/state and
/fault/... for fault injection. It is what converge dev runs; alone it serves
any v1 framework.`,
		Example: `  converge local-mesos --agents 5
  converge local-mesos --simulate --agents 1000 --masters 3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			opts := lm.options(listen, workDir, masters, newLogger(g.errOut, verbose).WithName("localmesos"))
			if err := auth.apply(&opts); err != nil {
				return err
			}
			m, err := localmesos.New(opts)
			if err != nil {
				return err
			}
			// Not ctx, which would SIGKILL every task at Ctrl-C: Shutdown
			// stops them as kills do (SIGTERM, grace period, SIGKILL).
			if err := m.Start(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			defer func() { _ = m.Shutdown(context.Background()) }()
			fmt.Fprintf(g.out, "local Mesos: %d agents%s\n", lm.agents, map[bool]string{true: " (simulated)", false: ""}[lm.simulate])
			fmt.Fprintf(g.out, "  masters:  %s (leader %s)\n", strings.Join(m.URLs(), ", "), m.URL())
			fmt.Fprintf(g.out, "  state:    curl %s/master/state\n", m.URL())
			if workDir != "" {
				fmt.Fprintf(g.out, "  sandboxes under %s\n", workDir)
			}
			fmt.Fprintln(g.out, "Press Ctrl-C to stop.")
			<-ctx.Done()
			fmt.Fprintln(g.out, "stopping local Mesos")
			return nil
		},
	}
	lm.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5050", "address of the (first) master")
	cmd.Flags().StringVar(&workDir, "work-dir", "", "directory for task sandboxes (default: a temporary one, removed on exit)")
	cmd.Flags().IntVarP(&verbose, "verbose", "v", 0, "log verbosity (0: info and errors)")
	cmd.Flags().IntVar(&masters, "masters", 1, "number of masters; one leads, the others redirect to it")
	cmd.Flags().StringVar(&auth.principal, "principal", "", "require HTTP basic authentication of schedulers as this principal")
	cmd.Flags().StringVar(&auth.secretFile, "secret-file", "", "file holding the principal's secret (with --principal)")
	return cmd
}

// mesosAuthFlags make the local Mesos require framework authentication, as a
// master started with --authenticate_http_frameworks does.
type mesosAuthFlags struct {
	principal, secretFile string
}

func (f mesosAuthFlags) apply(o *localmesos.Options) error {
	if (f.principal == "") != (f.secretFile == "") {
		return cli.Usage("--principal and --secret-file go together")
	}
	if f.principal == "" {
		return nil
	}
	secret, err := mesosbridge.ReadSecretFile(f.secretFile)
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	o.Principal, o.Secret = f.principal, secret
	return nil
}
