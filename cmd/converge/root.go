package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

// Environment variables the global flags read.
const (
	envEtcdEndpoints = "CONVERGE_ETCD_ENDPOINTS"
	envEtcdPassword  = "CONVERGE_ETCD_PASSWORD"
)

// globals are the flags every client command shares.
type globals struct {
	streams
	etcdEndpoints string
	namespace     string
	etcdCACert    string
	etcdCert      string
	etcdKey       string
	etcdUser      string
	prefix        string
	// etcd's per-transaction limits (see store.Options).
	etcdTxnOps, etcdRequestBytes int
	root                         *cobra.Command
}

func newRootCmd(s streams) *cobra.Command {
	g := &globals{streams: s}
	root := &cobra.Command{
		Use:   "converge",
		Short: "Declarative clusters on Apache Mesos, driven the Kubernetes way",
		Long: `converge runs replicated services on Apache Mesos from YAML cluster specs kept in
etcd: apply a spec, and a level-triggered controller launches the members,
elects a master and keeps them converged.

Try it on one machine:
  converge dev                                  # etcd + local Mesos + controller
  converge apply -f manifests/examples/
  converge get clusters -w`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	g.root = root
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usage("%v", err) })

	endpoints := os.Getenv(envEtcdEndpoints)
	if endpoints == "" {
		endpoints = cli.DefaultEtcdEndpoint
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.etcdEndpoints, "etcd-endpoints", endpoints, "etcd client URLs, comma-separated (env "+envEtcdEndpoints+")")
	pf.StringVarP(&g.namespace, "namespace", "n", "", `namespace of the objects (default "default")`)
	pf.StringVar(&g.etcdCACert, "etcd-cacert", "", "CA certificate file to verify etcd's server certificate")
	pf.StringVar(&g.etcdCert, "etcd-cert", "", "client certificate file for etcd")
	pf.StringVar(&g.etcdKey, "etcd-key", "", "client key file for etcd")
	pf.StringVar(&g.etcdUser, "etcd-user", "", "etcd user name (password from env "+envEtcdPassword+")")
	pf.StringVar(&g.prefix, "prefix", store.DefaultPrefix, "etcd key prefix converge keeps its objects under")
	pf.IntVar(&g.etcdTxnOps, "etcd-max-txn-ops", store.DefaultTxnOpsLimit,
		"the etcd servers' --max-txn-ops: converge never sends a transaction with more operations (raise only for an etcd configured so; default is etcd's)")
	pf.IntVar(&g.etcdRequestBytes, "etcd-max-request-bytes", store.DefaultRequestBytesLimit,
		"the etcd servers' --max-request-bytes: converge never sends a larger transaction (raise only for an etcd configured so; default is etcd's)")

	root.AddCommand(
		newApplyCmd(g),
		newGetCmd(g),
		newDescribeCmd(g),
		newDeleteCmd(g),
		newDiffCmd(g),
		newWaitCmd(g),
		newSwitchoverCmd(g),
		newEndpointsCmd(g),
		newVersionCmd(g),
		newDevCmd(g),
		newServeCmd(g),
		newKubeconfigCmd(g),
		newLocalMesosCmd(g),
		newExecutorCmd(g),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(g))
	}
	wrapRunE(root)
	return root
}

// extraCommands lets further files of this package (e.g. bench.go) add
// commands from an init function without editing this one.
var extraCommands []func(g *globals) *cobra.Command

// wrapRunE makes every error a command returns a user-fixable failure
// (exit 1) unless it already carries a code; errors cobra itself returns
// (unknown command, bad arguments) stay usage errors (exit 2).
func wrapRunE(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return cli.Fail(run(cmd, args))
		}
	}
	for _, sub := range c.Commands() {
		wrapRunE(sub)
	}
}

// ns is the namespace of -n, "default" when not given.
func (g *globals) ns() string {
	if g.namespace == "" {
		return v1alpha1.DefaultNamespace
	}
	return g.namespace
}

// namespaceSet reports whether -n was given.
func (g *globals) namespaceSet() bool {
	return g.root.PersistentFlags().Changed("namespace")
}

// readManifests reads and decodes every document of files (files,
// directories or - for stdin) into the namespace of -n.
func (g *globals) readManifests(files []string) ([]cli.Manifest, error) {
	srcs, err := cli.ReadSources(files, g.in)
	if err != nil {
		return nil, err
	}
	return cli.DecodeSources(srcs, cli.DecodeOptions{Namespace: g.ns(), NamespaceSet: g.namespaceSet()})
}

func (g *globals) etcdOptions() cli.EtcdOptions {
	return cli.EtcdOptions{
		Endpoints: cli.SplitEndpoints(g.etcdEndpoints),
		Prefix:    g.prefix,
		CACert:    g.etcdCACert,
		Cert:      g.etcdCert,
		Key:       g.etcdKey,
		Username:  g.etcdUser,
		Password:  os.Getenv(envEtcdPassword),

		TxnOpsLimit:       g.etcdTxnOps,
		RequestBytesLimit: g.etcdRequestBytes,
	}
}

// connect opens the store; close it with cli.Disconnect.
func (g *globals) connect(ctx context.Context) (*store.Store, error) {
	return cli.Connect(ctx, g.etcdOptions())
}

// noArgs, exactArgs and friends return usage errors (exit 2) with
// kubectl-like text.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return cli.Usage("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
