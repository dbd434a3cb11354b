package main

import (
	"context"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/kubeapi"
	"github.com/converge-io/converge/store"
)

// startDevAPI serves the Kubernetes API for converge dev on listen ("": not
// at all) until stop is called or ctx ends.
func startDevAPI(ctx context.Context, st *store.Store, dataDir, listen string, log logr.Logger) (*kubeapi.Running, context.CancelFunc, error) {
	if listen == "" {
		return nil, func() {}, nil
	}
	actx, stop := context.WithCancel(ctx)
	r, err := kubeapi.StartDev(actx, st, dataDir, listen, log.WithName("kubeapi"))
	if err != nil {
		stop()
		return nil, nil, err
	}
	return r, stop, nil
}

// apiFlags are converge serve's Kubernetes API flags.
type apiFlags struct {
	listen, cert, key, clientCA, tokenFile string
}

func (a *apiFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.listen, "api-listen", "", `address to serve the Kubernetes API on for kubectl, Flux and Argo CD (TLS; "" to not serve it)`)
	f.StringVar(&a.cert, "api-cert", "", "the API's serving certificate (PEM)")
	f.StringVar(&a.key, "api-key", "", "the serving certificate's key (PEM)")
	f.StringVar(&a.clientCA, "api-client-ca", "", "CA whose client certificates authenticate (user: the common name)")
	f.StringVar(&a.tokenFile, "api-token-file", "", "static bearer tokens, one per line: token,user,uid[,\"group1,group2\"]")
}

// start serves the API until ctx ends; nil when --api-listen is empty.
func (a *apiFlags) start(ctx context.Context, st *store.Store, log logr.Logger) (*kubeapi.Running, error) {
	if a.listen == "" {
		return nil, nil
	}
	if a.cert == "" || a.key == "" {
		return nil, cli.Usage("--api-listen needs --api-cert and --api-key")
	}
	if a.clientCA == "" && a.tokenFile == "" {
		return nil, cli.Usage("--api-listen needs --api-client-ca or --api-token-file: anonymous requests are refused")
	}
	return kubeapi.Start(ctx, kubeapi.Config{
		Store: st, Listen: a.listen, CertFile: a.cert, KeyFile: a.key,
		ClientCAFile: a.clientCA, TokenFile: a.tokenFile, Log: log.WithName("kubeapi"),
	})
}

func newKubeconfigCmd(_ *globals) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the kubeconfig of a running converge dev (for kubectl)",
		Long: `kubeconfig prints the kubeconfig that converge dev wrote in its data dir:
its Kubernetes API's address, certificate authority and client certificate.`,
		Example: `  converge kubeconfig > ~/.kube/converge && export KUBECONFIG=~/.kube/converge
  kubectl get clusters`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := kubeapi.ReadDevKubeconfig(dataDir)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", ".data", "converge dev's data directory")
	return cmd
}
