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

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

func newDevCmd(g *globals) *cobra.Command {
	var (
		lm            localMesosFlags
		dataDir       string
		etcdClientURL string
		mesosListen   string
		httpAddr      string
		apiListen     string
		verbose       int
		unreachable   time.Duration
	)
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
			log := newLogger(g.errOut, verbose)
			abs, err := filepath.Abs(dataDir)
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
			defer lock.Release()

			etcd, err := startDevEtcd(filepath.Join(abs, "etcd"), etcdClientURL)
			if err != nil {
				return fmt.Errorf("%w (is another converge dev or etcd already listening there? use --etcd-client-url)", err)
			}
			defer func() {
				etcd.Close()
				fmt.Fprintln(g.out, "etcd stopped")
			}()
			opts := g.etcdOptions()
			opts.Endpoints = []string{etcdClientURL}
			st, err := cli.Connect(ctx, opts)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)

			sandboxes := filepath.Join(abs, "sandboxes")
			m, err := localmesos.New(lm.options(mesosListen, sandboxes, 1, log.WithName("localmesos")))
			if err != nil {
				return err
			}
			// Not ctx: localmesos closes (SIGKILLs every task) when its
			// context ends, and Ctrl-C must stop tasks gracefully (below).
			if err := m.Start(context.WithoutCancel(ctx)); err != nil {
				return fmt.Errorf("%w (is another converge dev or Mesos already listening there? use --mesos-listen)", err)
			}
			defer func() {
				// As a kill: SIGTERM, each task's grace period, SIGKILL
				// (databases get to shut down cleanly).
				fmt.Fprintln(g.out, "stopping tasks (SIGTERM, then SIGKILL after their kill grace period; Ctrl-C again kills them now)")
				// A second Ctrl-C ends the wait: Shutdown then SIGKILLs.
				again, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				if err := m.Shutdown(again); err != nil {
					fmt.Fprintf(g.errOut, "local Mesos: %v\n", err)
				}
				fmt.Fprintln(g.out, "local Mesos stopped")
			}()

			reg := newRegistry()
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this binary to serve as the executor: %w", err)
			}
			ctrlCtx, stopCtrl := context.WithCancel(ctx)
			defer stopCtrl()
			ctrlDone := make(chan error, 1)
			go func() {
				ctrlDone <- controller.Run(ctrlCtx, controller.Config{
					Store:              st,
					UnreachableTimeout: unreachable,
					// Agents fetch this very binary for `converge executor`.
					ExecutorURI:     exe,
					ExecutorCommand: "./" + filepath.Base(exe) + " executor",
					Log:             log.WithName("controller"),
					Registerer:      reg,
				}, mesosbridge.Config{
					Masters:       m.URLs(),
					FrameworkName: "converge",
					// "*" and "converge": clusters of role converge (those
					// with volumes need a role other than "*") get offers.
					Roles: []string{"*", "converge"},
					Log:   log.WithName("mesos"),
				})
			}()
			defer func() {
				stopCtrl()
				if err := <-ctrlDone; err != nil {
					fmt.Fprintf(g.errOut, "controller: %v\n", err)
				}
				fmt.Fprintln(g.out, "controller stopped")
			}()

			ops, err := startOpsServer(httpAddr, reg, func(ctx context.Context) error {
				if ctrlCtx.Err() != nil {
					return errors.New("controller stopped")
				}
				_, err := st.Client().Get(ctx, st.Prefix()+"/framework")
				return err
			})
			if err != nil {
				return err
			}
			defer ops.Close()

			api, stopAPI, err := startDevAPI(ctx, st, abs, apiListen, log)
			if err != nil {
				return err
			}
			if api != nil {
				defer func() {
					stopAPI()
					_ = api.Wait()
					fmt.Fprintln(g.out, "kubernetes API stopped")
				}()
			}

			fmt.Fprintf(g.out, "converge dev is running (data in %s)\n", abs)
			fmt.Fprintf(g.out, "  etcd         %s\n", etcdClientURL)
			fmt.Fprintf(g.out, "  controller   framework converge on %s (executor: %s)\n", m.URL(), exe)
			fmt.Fprintf(g.out, "  local Mesos  %s  (%d agents; state: %s/master/state; sandboxes in %s)\n", m.URL(), lm.agents, m.URL(), sandboxes)
			if u := ops.URL(); u != "" {
				fmt.Fprintf(g.out, "  metrics      %s/metrics  (health: %s/healthz, %s/readyz)\n", u, u, u)
			}
			if api != nil {
				fmt.Fprintf(g.out, "  kubernetes   %s  (kubectl: export KUBECONFIG=%s)\n", api.URL, api.Kubeconfig)
			}
			fmt.Fprintln(g.out, "Try, in another terminal:")
			if etcdClientURL != cli.DefaultEtcdEndpoint {
				fmt.Fprintf(g.out, "  export %s=%s\n", envEtcdEndpoints, etcdClientURL)
			}
			fmt.Fprintln(g.out, "  converge apply -f manifests/examples/")
			fmt.Fprintln(g.out, "  converge get clusters -w")
			if api != nil {
				fmt.Fprintf(g.out, "  export KUBECONFIG=%s; kubectl get clusters -w\n", api.Kubeconfig)
			}
			fmt.Fprintln(g.out, "Press Ctrl-C to stop.")

			select {
			case <-ctx.Done():
				fmt.Fprintln(g.out, "stopping converge dev")
				return nil
			case err := <-ctrlDone:
				ctrlDone <- nil // for the deferred stop
				if err == nil {
					err = errors.New("stopped")
				}
				return fmt.Errorf("controller: %w", err)
			}
		},
	}
	lm.register(cmd)
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", ".data", "directory for etcd's data and the task sandboxes")
	f.StringVar(&etcdClientURL, "etcd-client-url", cli.DefaultEtcdEndpoint, "where the embedded etcd serves clients")
	f.StringVar(&mesosListen, "mesos-listen", "127.0.0.1:5050", "address of the local Mesos master")
	f.StringVar(&httpAddr, "http", "127.0.0.1:8080", `address for /metrics, /healthz and /readyz ("" to disable)`)
	f.StringVar(&apiListen, "api-listen", "127.0.0.1:6443", `address of the Kubernetes API for kubectl (TLS; writes <data-dir>/kubeconfig; "" to disable)`)
	f.IntVarP(&verbose, "verbose", "v", 0, "log verbosity (0: info and errors)")
	// Short here: after a restart of dev, the tasks of the previous local Mesos
	// are gone for good, and members on a lost agent are replaced quickly.
	f.DurationVar(&unreachable, "unreachable-timeout", 10*time.Second, "write off (stop counting, kill) a member whose agent is unreachable for this long; its ordinal is relaunched once Mesos reports it finished")
	return cmd
}
