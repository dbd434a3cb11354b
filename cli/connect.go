package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/converge-io/converge/store"
)

// DefaultEtcdEndpoint is where `converge dev` serves etcd.
const DefaultEtcdEndpoint = "http://127.0.0.1:2379"

// DefaultConnectTimeout bounds how long a command waits for an unreachable etcd.
const DefaultConnectTimeout = 5 * time.Second

// EtcdOptions say how to reach etcd; they come from the global flags.
type EtcdOptions struct {
	Endpoints []string
	Prefix    string
	CACert    string
	Cert      string
	Key       string
	Username  string
	Password  string
	// Timeout for the first contact (default 5s).
	Timeout time.Duration
}

// String prints the options with the password redacted, so they may be logged.
func (o EtcdOptions) String() string {
	pw := ""
	if o.Password != "" {
		pw = "<redacted>"
	}
	return fmt.Sprintf("{Endpoints:%v Prefix:%s CACert:%s Cert:%s Key:%s Username:%s Password:%s Timeout:%s}",
		o.Endpoints, o.Prefix, o.CACert, o.Cert, o.Key, o.Username, pw, o.Timeout)
}

// GoString redacts the password for %#v too.
func (o EtcdOptions) GoString() string { return "cli.EtcdOptions" + o.String() }

// SplitEndpoints turns "a,b , c" into a list, dropping empty items.
func SplitEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// TLSConfig builds the client TLS configuration from the certificate flags, or
// nil when none is set.
func (o EtcdOptions) TLSConfig() (*tls.Config, error) {
	if o.CACert == "" && o.Cert == "" && o.Key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("etcd CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA certificate %s: no PEM certificate found", o.CACert)
		}
		cfg.RootCAs = pool
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, errors.New("--etcd-cert and --etcd-key must be given together")
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Connect opens the store (close it with Disconnect) and proves etcd answers within the timeout, so a
// command against an etcd that is not running fails in seconds with a message
// that says where it looked, never hangs.
func Connect(ctx context.Context, o EtcdOptions) (*store.Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints given (--etcd-endpoints)")
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	tlsCfg, err := o.TLSConfig()
	if err != nil {
		return nil, err
	}
	where := strings.Join(o.Endpoints, ",")
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: timeout,
		TLS:         tlsCfg,
		Username:    o.Username,
		Password:    o.Password,
		Context:     ctx,
		Logger:      zap.NewNop(), // its retry warnings are noise on a terminal
		// Listing thousands of clusters needs more than etcd's default 2 MiB.
		MaxCallRecvMsgSize: 256 << 20,
	})
	if err != nil {
		return nil, unreachable(where, timeout, err)
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = "/converge"
	}
	pingCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A linearizable read of one key proves the cluster has a leader and that
	// we may read (credentials, TLS), without the cost of a range. The key is
	// under the prefix: an etcd user's role may cover nothing else.
	if _, err := cli.Get(pingCtx, strings.TrimRight(prefix, "/")+"/framework", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unreachable(where, timeout, err)
	}
	return store.NewFromClient(cli, prefix), nil
}

func unreachable(where string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrGRPCAuthFailed):
		return fmt.Errorf("etcd at %s rejected the credentials (--etcd-user, password from %s): %w", where, "CONVERGE_ETCD_PASSWORD", err)
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrGRPCPermissionDenied),
		errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrGRPCUserEmpty):
		return fmt.Errorf("etcd at %s refused access (give --etcd-user with a role on converge's prefix): %w", where, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s", timeout)
	}
	return fmt.Errorf("cannot reach etcd at %s (is converge dev running?): %w", where, err)
}

// Disconnect closes the etcd client Connect opened.
func Disconnect(st *store.Store) {
	if st != nil {
		_ = st.Client().Close()
	}
}
