package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/kubeapi"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// devFlags are converge dev's flags.
type devFlags struct {
	lm            localMesosFlags
	dataDir       string
	etcdClientURL string
	mesosListen   string
	httpAddr      string
	apiListen     string
	verbose       int
	unreachable   time.Duration
	compaction    time.Duration // --etcd-compaction-interval
}

func newDevCmd(g *globals) *cobra.Command {
	var fl devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on one machine: embedded etcd, local Mesos and the controller",
		Long: `dev runs converge whole in one process, for trying it, demos and tests: an
embedded etcd (data under --data-dir), a local Mesos whose agents run tasks as
real processes (sandboxes under --data-dir), and the controller. Ctrl-C stops
it cleanly; the data stays for the next run (delete --data-dir to start over).`,
		Example: `  converge dev
  converge dev --agents 5 --data-dir /tmp/converge`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d := &devRun{g: g, fl: &fl, log: newLogger(g.errOut, fl.verbose)}
			defer d.stop()
			if err := d.start(ctx); err != nil {
				return err
			}
			d.printBanner()
			return d.wait(ctx)
		},
	}
	fl.lm.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.dataDir, "data-dir", ".data", "directory for etcd's data and the task sandboxes")
	f.StringVar(&fl.etcdClientURL, "etcd-client-url", cli.DefaultEtcdEndpoint, "where the embedded etcd serves clients")
	f.StringVar(&fl.mesosListen, "mesos-listen", "127.0.0.1:5050", "address of the local Mesos master")
	f.StringVar(&fl.httpAddr, "http", "127.0.0.1:8080", `address for /metrics, /healthz and /readyz ("" to disable)`)
	registerCompaction(cmd, &fl.compaction)
	f.StringVar(&fl.apiListen, "api-listen", "127.0.0.1:6443", `address of the Kubernetes API for kubectl (TLS; writes <data-dir>/kubeconfig; "" to disable)`)
	f.IntVarP(&fl.verbose, "verbose", "v", 0, "log verbosity (0: info and errors)")
	// Short here: after a restart of dev, the tasks of the previous local Mesos
	// are gone for good, and members on a lost agent are replaced quickly.
	f.DurationVar(&fl.unreachable, "unreachable-timeout", 10*time.Second, "write off (stop counting, kill) a member whose agent is unreachable for this long; its ordinal is relaunched once Mesos reports it finished")
	return cmd
}

// devRun is one run of converge dev: the parts it started, in the order
// they depend on each other (data dir, etcd, store, local Mesos,
// controller, ops server, API), and how to stop each. stop undoes them in
// reverse, so that the controller stops before the Mesos and etcd it talks
// to, and whatever started before a failure is stopped all the same.
type devRun struct {
	g   *globals
	fl  *devFlags
	log logr.Logger

	dir      string // the data dir, absolute
	st       *store.Store
	m        *localmesos.Mesos
	exe      string // this binary, which agents fetch as the executor
	ctrlCtx  context.Context
	ctrlDone chan error
	ops      *opsServer
	api      *kubeapi.Running

	stops []func()
}

// onStop adds f to what stop runs, before everything added earlier.
func (d *devRun) onStop(f func()) { d.stops = append(d.stops, f) }

// stop stops what was started, last first.
func (d *devRun) stop() {
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
}

// start starts every part in turn; on an error, the parts started so far
// are left for stop.
func (d *devRun) start(ctx context.Context) error {
	if err := d.lockDataDir(); err != nil {
		return err
	}
	if err := d.startEtcd(ctx); err != nil {
		return err
	}
	if err := d.startMesos(ctx); err != nil {
		return err
	}
	reg := newRegistry()
	if err := d.startController(ctx, reg); err != nil {
		return err
	}
	if err := d.startOps(reg); err != nil {
		return err
	}
	return d.startAPI(ctx)
}

// lockDataDir makes the data dir and takes it for this process, so that a
// second converge dev on it fails at once rather than hang in etcd's lock.
func (d *devRun) lockDataDir() error {
	abs, err := filepath.Abs(d.fl.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	lock, err := lockDataDir(abs)
	if err != nil {
		return err
	}
	d.dir = abs
	d.onStop(lock.Release)
	return nil
}

// startEtcd starts the embedded etcd and connects the store to it.
func (d *devRun) startEtcd(ctx context.Context) error {
	etcd, err := startDevEtcd(filepath.Join(d.dir, "etcd"), d.fl.etcdClientURL)
	if err != nil {
		return fmt.Errorf("%w (is another converge dev or etcd already listening there? use --etcd-client-url)", err)
	}
	d.onStop(func() {
		etcd.Close()
		fmt.Fprintln(d.g.out, "etcd stopped")
	})
	opts := d.g.etcdOptions()
	opts.Endpoints = []string{d.fl.etcdClientURL}
	st, err := cli.Connect(ctx, opts)
	if err != nil {
		return err
	}
	d.st = st
	d.onStop(func() { cli.Disconnect(st) })
	d.onStop(startCompactor(st, d.fl.compaction, d.log))
	return nil
}

// startMesos starts the local Mesos, whose stop kills the tasks gracefully.
func (d *devRun) startMesos(ctx context.Context) error {
	sandboxes := filepath.Join(d.dir, "sandboxes")
	m, err := localmesos.New(d.fl.lm.options(d.fl.mesosListen, sandboxes, 1, d.log.WithName("localmesos")))
	if err != nil {
		return err
	}
	// Not ctx: localmesos closes (SIGKILLs every task) when its
	// context ends, and Ctrl-C must stop tasks gracefully (below).
	if err := m.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("%w (is another converge dev or Mesos already listening there? use --mesos-listen)", err)
	}
	d.m = m
	d.onStop(func() {
		// As a kill: SIGTERM, each task's grace period, SIGKILL
		// (databases get to shut down cleanly).
		fmt.Fprintln(d.g.out, "stopping tasks (SIGTERM, then SIGKILL after their kill grace period; Ctrl-C again kills them now)")
		// A second Ctrl-C ends the wait: Shutdown then SIGKILLs.
		again, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := m.Shutdown(again); err != nil {
			fmt.Fprintf(d.g.errOut, "local Mesos: %v\n", err)
		}
		fmt.Fprintln(d.g.out, "local Mesos stopped")
	})
	return nil
}

// startController runs the controller against the local Mesos, with this
// very binary as the executor; its result arrives on d.ctrlDone.
func (d *devRun) startController(ctx context.Context, reg prometheus.Registerer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary to serve as the executor: %w", err)
	}
	d.exe = exe
	ctrlCtx, stopCtrl := context.WithCancel(ctx)
	d.ctrlCtx = ctrlCtx
	d.onStop(stopCtrl)
	d.ctrlDone = make(chan error, 1)
	go func() {
		d.ctrlDone <- controller.Run(ctrlCtx, controller.Config{
			Store:              d.st,
			UnreachableTimeout: d.fl.unreachable,
			// Agents fetch this very binary for `converge executor`.
			ExecutorURI:     exe,
			ExecutorCommand: "./" + filepath.Base(exe) + " executor",
			Log:             d.log.WithName("controller"),
			Registerer:      reg,
		}, mesosbridge.Config{
			Masters:       d.m.URLs(),
			FrameworkName: "converge",
			// "*" and "converge": clusters of role converge (those
			// with volumes need a role other than "*") get offers.
			Roles: []string{"*", "converge"},
			Log:   d.log.WithName("mesos"),
		})
	}()
	d.onStop(func() {
		stopCtrl()
		if err := <-d.ctrlDone; err != nil {
			fmt.Fprintf(d.g.errOut, "controller: %v\n", err)
		}
		fmt.Fprintln(d.g.out, "controller stopped")
	})
	return nil
}

// startOps serves metrics and health; ready while the controller runs and
// etcd answers.
func (d *devRun) startOps(reg prometheus.Gatherer) error {
	ops, err := startOpsServer(d.fl.httpAddr, reg, func(ctx context.Context) error {
		if d.ctrlCtx.Err() != nil {
			return errors.New("controller stopped")
		}
		_, err := d.st.Client().Get(ctx, d.st.Prefix()+"/framework")
		return err
	})
	if err != nil {
		return err
	}
	d.ops = ops
	d.onStop(ops.Close)
	return nil
}

// startAPI serves the Kubernetes API for kubectl, unless --api-listen is "".
func (d *devRun) startAPI(ctx context.Context) error {
	api, stopAPI, err := startDevAPI(ctx, d.st, d.dir, d.fl.apiListen, d.log)
	if err != nil {
		return err
	}
	if api == nil {
		return nil
	}
	d.api = api
	d.onStop(func() {
		stopAPI()
		_ = api.Wait()
		fmt.Fprintln(d.g.out, "kubernetes API stopped")
	})
	return nil
}

// printBanner says where each part serves and what to try next.
func (d *devRun) printBanner() {
	out, m := d.g.out, d.m
	fmt.Fprintf(out, "converge dev is running (data in %s)\n", d.dir)
	fmt.Fprintf(out, "  etcd         %s\n", d.fl.etcdClientURL)
	fmt.Fprintf(out, "  controller   framework converge on %s (executor: %s)\n", m.URL(), d.exe)
	fmt.Fprintf(out, "  local Mesos  %s  (%d agents; state: %s/master/state; sandboxes in %s)\n", m.URL(), d.fl.lm.agents, m.URL(), filepath.Join(d.dir, "sandboxes"))
	if u := d.ops.URL(); u != "" {
		fmt.Fprintf(out, "  metrics      %s/metrics  (health: %s/healthz, %s/readyz)\n", u, u, u)
	}
	if d.api != nil {
		fmt.Fprintf(out, "  kubernetes   %s  (kubectl: export KUBECONFIG=%s)\n", d.api.URL, d.api.Kubeconfig)
	}
	fmt.Fprintln(out, "Try, in another terminal:")
	if d.fl.etcdClientURL != cli.DefaultEtcdEndpoint {
		fmt.Fprintf(out, "  export %s=%s\n", envEtcdEndpoints, d.fl.etcdClientURL)
	}
	fmt.Fprintln(out, "  converge apply -f manifests/examples/")
	fmt.Fprintln(out, "  converge get clusters -w")
	if d.api != nil {
		fmt.Fprintf(out, "  export KUBECONFIG=%s; kubectl get clusters -w\n", d.api.Kubeconfig)
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
}

// wait runs until Ctrl-C (a clean stop) or until the controller ends on
// its own (an error).
func (d *devRun) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		fmt.Fprintln(d.g.out, "stopping converge dev")
		return nil
	case err := <-d.ctrlDone:
		d.ctrlDone <- nil // for the stop, which reads it again
		if err == nil {
			err = errors.New("stopped")
		}
		return fmt.Errorf("controller: %w", err)
	}
}
