package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
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
	// TxnOpsLimit and RequestBytesLimit: the etcd servers' flags --max-txn-ops and
	// --max-request-bytes (0: etcd's defaults).
	TxnOpsLimit, RequestBytesLimit int
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
	// gRPC retries a refused connection until the deadline; a TCP dial
	// knows at once that nothing listens there.
	if err := refused(ctx, o.Endpoints); err != nil {
		return nil, unreachable(where, timeout, err)
	}
	start := time.Now()
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
		return nil, unreachable(where, time.Since(start), err)
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
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, ctx.Err() // interrupted: nothing to explain
		}
		// The caller's deadline (wait --timeout) may pass first: the
		// same sentence either way, with the time actually waited.
		return nil, unreachable(where, time.Since(start), err)
	}
	st := store.NewFromClient(cli, prefix)
	st.SetTxnLimits(o.TxnOpsLimit, o.RequestBytesLimit)
	return st, nil
}

// refused reports the error of the last endpoint when every endpoint is known
// to be down at once: nothing listens on its port (connection refused) or its
// host name does not exist. It returns nil when any endpoint accepts a TCP
// connection, or cannot be judged (unix sockets, a dial timeout): gRPC and
// the first request then decide.
func refused(ctx context.Context, endpoints []string) error {
	var last error
	for _, ep := range endpoints {
		addr, ok := tcpAddress(ep)
		if !ok {
			return nil
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		var dns *net.DNSError
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			last = errConnRefused
		case errors.As(err, &dns) && dns.IsNotFound:
			last = fmt.Errorf("no such host %s", dns.Name)
		default:
			return nil
		}
	}
	return last
}

// errConnRefused is what every command says when nothing listens where etcd
// should be.
var errConnRefused = errors.New("connection refused")

// tcpAddress is the host:port an etcd endpoint URL dials ("http://h:p",
// "https://h:p" or a bare "h:p"); false for anything else.
func tcpAddress(ep string) (string, bool) {
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return "", false
	}
	return u.Host, true
}

func unreachable(where string, waited time.Duration, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrGRPCAuthFailed):
		return fmt.Errorf("etcd at %s rejected the credentials (--etcd-user, password from %s): %w", where, "CONVERGE_ETCD_PASSWORD", err)
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrGRPCPermissionDenied),
		errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrGRPCUserEmpty):
		return fmt.Errorf("etcd at %s refused access (give --etcd-user with a role on converge's prefix): %w", where, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s", waited.Round(100*time.Millisecond))
	}
	return fmt.Errorf("cannot reach etcd at %s: %w (is converge dev running?)", where, err)
}

// Disconnect closes the etcd client Connect opened.
func Disconnect(st *store.Store) {
	if st != nil {
		_ = st.Client().Close()
	}
}
