package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"

	"github.com/converge-io/converge/store"
)

// KubeconfigFile is where converge dev writes its kubeconfig, in its data dir.
const KubeconfigFile = "kubeconfig"

// Running is a started API server.
type Running struct {
	// URL is https://host:port.
	URL string
	// Kubeconfig is the path of the kubeconfig written (converge dev only).
	Kubeconfig string
	done       chan error
}

// Wait returns when the server has stopped (its context ended) with why.
func (r *Running) Wait() error { return <-r.done }

// Start builds the server and serves it in the background until ctx ends.
func Start(ctx context.Context, cfg Config) (*Running, error) {
	srv, err := New(cfg)
	if err != nil {
		return nil, err
	}
	r := &Running{URL: "https://" + srv.Addr().String(), done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx) }()
	return r, nil
}

// StartDev is converge dev's API server: certificates it makes itself under
// dataDir/pki (a CA, a serving certificate for listen's host, a client
// certificate for DevUser), and dataDir/kubeconfig to reach it with.
func StartDev(ctx context.Context, st *store.Store, dataDir, listen string, log logr.Logger) (*Running, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--api-listen %q: %w", listen, err)
	}
	pki, err := EnsureDevPKI(filepath.Join(dataDir, "pki"), host)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("kubernetes API: listen on %s: %w", listen, err)
	}
	r, err := Start(ctx, Config{
		Store: st, Listener: ln, CertFile: pki.CertFile, KeyFile: pki.KeyFile,
		ClientCAFile: pki.CAFile, Log: log,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	kc, err := pki.Kubeconfig(r.URL)
	if err == nil {
		r.Kubeconfig = filepath.Join(dataDir, KubeconfigFile)
		err = os.WriteFile(r.Kubeconfig, kc, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return r, nil
}

// ReadDevKubeconfig returns the kubeconfig converge dev wrote in dataDir.
func ReadDevKubeconfig(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, KubeconfigFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no kubeconfig at %s: start `converge dev --data-dir %s` (it serves the Kubernetes API on --api-listen and writes one)", path, dataDir)
	}
	return b, err
}
