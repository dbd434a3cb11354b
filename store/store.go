package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "/converge"

// DefaultEndpoint is the etcd endpoint used when Options.Endpoints is empty.
const DefaultEndpoint = "http://127.0.0.1:2379"

// DefaultDialTimeout bounds New's connection check when Options.DialTimeout is 0.
const DefaultDialTimeout = 5 * time.Second

// A stock etcd's limits (its --max-txn-ops and --max-request-bytes defaults).
// The store never sends a transaction over the limits it is configured with.
const (
	DefaultTxnOpsLimit       = 128
	DefaultRequestBytesLimit = 1536 * 1024
)

// Options configure New.
type Options struct {
	Endpoints   []string
	Prefix      string        // default "/converge"
	DialTimeout time.Duration // default 5s; New fails within it: "cannot reach etcd at <endpoints>: ..."
	TLS         *tls.Config
	// Username and Password authenticate with etcd auth (the password is never
	// logged or put into an error).
	Username, Password string
	// TxnOpsLimit and RequestBytesLimit are the etcd servers' flags --max-txn-ops and
	// --max-request-bytes; 0 means etcd's defaults. Raise them only for an etcd
	// configured so.
	TxnOpsLimit, RequestBytesLimit int
}

// String prints the options with the password redacted, so they may be logged.
func (o Options) String() string {
	pw := ""
	if o.Password != "" {
		pw = "<redacted>"
	}
	return fmt.Sprintf("{Endpoints:%v Prefix:%s DialTimeout:%s TLS:%t Username:%s Password:%s TxnOpsLimit:%d RequestBytesLimit:%d}",
		o.Endpoints, o.Prefix, o.DialTimeout, o.TLS != nil, o.Username, pw, o.TxnOpsLimit, o.RequestBytesLimit)
}

// GoString redacts the password for %#v too.
func (o Options) GoString() string { return "store.Options" + o.String() }

// Store is converge's etcd-backed store. It is safe for concurrent use.
// A fenced view (Fenced) shares the client and the Stats counters.
type Store struct {
	cli    *clientv3.Client
	prefix string
	owned  bool // Close closes cli
	fence  *fence
	stats  *counters
	limits txnLimits
	shard  string // "": unsharded (see Shard)
}

// txnLimits bound one transaction: operations at one nesting level, and the
// encoded request.
type txnLimits struct{ ops, bytes int }

type fence struct {
	key string
	rev int64
}

type counters struct {
	txns, puts, deletes, reads atomic.Int64
}

// Stats counts what the store asked of etcd since it was created. Txns is
// every transaction (each write is one); Puts and Deletes are the write
// operations inside them; Reads are ranges (Get, List, conflict checks).
// The benchmark reports etcd writes per task from them.
type Stats struct {
	Txns    int64 `json:"txns"`
	Puts    int64 `json:"puts"`
	Deletes int64 `json:"deletes"`
	Reads   int64 `json:"reads"`
}

// New connects to etcd and checks, within o.DialTimeout, that it answers
// (a read of <prefix>/framework): an unreachable etcd is an error
// ("cannot reach etcd at http://127.0.0.1:2379: context deadline exceeded"),
// never a hang.
func New(ctx context.Context, o Options) (*Store, error) {
	eps := o.Endpoints
	if len(eps) == 0 {
		eps = []string{DefaultEndpoint}
	}
	dt := o.DialTimeout
	if dt <= 0 {
		dt = DefaultDialTimeout
	}
	where := strings.Join(eps, ",")
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: dt,
		TLS:         o.TLS,
		Username:    o.Username,
		Password:    o.Password,
		Logger:      zap.NewNop(),
		// etcd's default 2 MiB receive limit is too small to list
		// thousands of clusters at once.
		MaxCallRecvMsgSize: 256 << 20,
	})
	if err != nil {
		return nil, connectError(where, o.Username, err)
	}
	s := NewFromClient(cli, o.Prefix)
	s.owned = true
	s.SetTxnLimits(o.TxnOpsLimit, o.RequestBytesLimit)
	cctx, cancel := context.WithTimeout(ctx, dt)
	defer cancel()
	if _, err := cli.Get(cctx, s.frameworkKey()); err != nil {
		_ = cli.Close()
		if o.TLS != nil && errors.Is(err, context.DeadlineExceeded) {
			// gRPC hides why the connection never came up; a failed TLS
			// handshake (no or wrong client certificate, unknown CA) is
			// the usual reason, so ask the first endpoint directly.
			if herr := probeTLS(eps[0], o.TLS, dt); herr != nil {
				err = fmt.Errorf("%w (TLS with %s: %v)", err, eps[0], herr)
			}
		}
		return nil, connectError(where, o.Username, err)
	}
	return s, nil
}

// probeTLS dials endpoint with cfg and reports why TLS fails there, or nil.
// With TLS 1.3 a server refuses a client certificate only after the client's
// side of the handshake, so it also waits briefly for that alert.
func probeTLS(endpoint string, cfg *tls.Config, timeout time.Duration) error {
	host := endpoint
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host = strings.TrimSuffix(host, "/")
	c := cfg.Clone()
	if c.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			c.ServerName = h
		}
	}
	d := &net.Dialer{Timeout: min(timeout, 2*time.Second)}
	conn, err := tls.DialWithDialer(d, "tcp", host, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var buf [1]byte
	if _, err := conn.Read(buf[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil // no alert: the handshake was accepted
		}
		return err
	}
	return nil
}

func connectError(where, user string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("etcd at %s rejected user %q: %w", where, user, err)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Errorf("etcd at %s: user %q may not read converge's keys: %w", where, user, err)
	}
	return fmt.Errorf("cannot reach etcd at %s: %w", where, err)
}

// NewFromClient wraps an existing client; Close does not close it.
// An empty prefix means DefaultPrefix; a trailing "/" is dropped.
func NewFromClient(cli *clientv3.Client, prefix string) *Store {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{cli: cli, prefix: prefix, stats: &counters{},
		limits: txnLimits{ops: DefaultTxnOpsLimit, bytes: DefaultRequestBytesLimit}}
}

// SetTxnLimits sets the etcd servers' per-transaction operation and request
// size limits (0 keeps etcd's default). Call it before using the store.
func (s *Store) SetTxnLimits(ops, bytes int) {
	if ops > 0 {
		s.limits.ops = ops
	}
	if bytes > 0 {
		s.limits.bytes = bytes
	}
}

// Close closes the etcd client if New created it.
func (s *Store) Close() error {
	if s.owned {
		return s.cli.Close()
	}
	return nil
}

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix returns the key prefix, without a trailing slash.
func (s *Store) Prefix() string { return s.prefix }

// LeaderPrefix is the election prefix of the controller replicas
// ("<prefix>/leader/"; a shard's: "<prefix>/shards/<name>/leader/").
func (s *Store) LeaderPrefix() string { return s.shardPrefix() + "/leader/" }

// Shard returns a view for one shard of the clusters (docs/design.md,
// "Sharding"): each shard is its own Mesos framework with its own leader, so
// its framework id and its leader election live under
// <prefix>/shards/<name>/; clusters, ledgers, elections, endpoints and events
// stay where they are (a cluster's shard is a function of its key).
func (s *Store) Shard(name string) *Store {
	v := *s
	v.owned = false
	v.shard = name
	return &v
}

func (s *Store) shardPrefix() string {
	if s.shard == "" {
		return s.prefix
	}
	return s.prefix + "/shards/" + s.shard
}

// Fenced returns a view whose every write is an etcd Txn guarded by
// CreateRevision(leaderKey) == leaderRev; when the guard fails the write
// returns ErrNotLeader. Reads are not fenced.
func (s *Store) Fenced(leaderKey string, leaderRev int64) *Store {
	v := *s
	v.owned = false
	v.fence = &fence{key: leaderKey, rev: leaderRev}
	return &v
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	return Stats{
		Txns:    s.stats.txns.Load(),
		Puts:    s.stats.puts.Load(),
		Deletes: s.stats.deletes.Load(),
		Reads:   s.stats.reads.Load(),
	}
}

// ErrNotLeader is returned by a fenced write when the leadership key it is
// fenced on is gone or belongs to another campaign.
var ErrNotLeader = errors.New("not the leader: leadership key is gone or was taken over; write refused")

// Sentinels behind IsNotFound, IsConflict and IsAlreadyExists; errors.Is
// matches them through any wrapping.
var (
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("conflict")
	ErrAlreadyExists = errors.New("already exists")
)

// apiError carries a user-facing message and a kind (one of the sentinels).
type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func notFound(ns, name string) error {
	return &apiError{ErrNotFound, fmt.Sprintf("cluster %s/%s not found", ns, name)}
}

func alreadyExists(ns, name string) error {
	return &apiError{ErrAlreadyExists, fmt.Sprintf("cluster %s/%s already exists", ns, name)}
}

func conflict(ns, name string, had, now int64) error {
	return &apiError{ErrConflict, fmt.Sprintf(
		"conflict: cluster %s/%s was modified (resourceVersion %d, now %d); get it and try again", ns, name, had, now)}
}

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is a resourceVersion conflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsAlreadyExists reports whether err says Create found the object already there.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// write runs ops as one transaction, conditioned on cmps and on the fence.
// When cmps fail, the Else branch runs orElse (typically a Get of the key
// whose revision was compared, so the caller can say what it found).
//
// Unfenced:  If(cmps) Then(ops) Else(orElse)
// Fenced:    If(fence) Then( Txn If(cmps) Then(ops) Else(orElse) )
//
// so a failed fence and a failed condition are told apart without a second
// round trip. ok is false when cmps failed; elseResp then holds orElse's
// responses. A failed fence is ErrNotLeader.
func (s *Store) write(ctx context.Context, cmps []clientv3.Cmp, ops, orElse []clientv3.Op) (rev int64, ok bool, elseResp []*pb.ResponseOp, err error) {
	s.count(ops)
	if s.fence == nil {
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(orElse...).Commit()
		if err != nil {
			return 0, false, nil, err
		}
		if !resp.Succeeded {
			return resp.Header.Revision, false, resp.Responses, nil
		}
		return resp.Header.Revision, true, nil, nil
	}
	inner := ops
	if len(cmps) > 0 || len(orElse) > 0 {
		inner = []clientv3.Op{clientv3.OpTxn(cmps, ops, orElse)}
	}
	resp, err := s.cli.Txn(ctx).If(s.fenceCmp()).Then(inner...).Commit()
	if err != nil {
		return 0, false, nil, err
	}
	if !resp.Succeeded {
		return resp.Header.Revision, false, nil, ErrNotLeader
	}
	if len(cmps) > 0 || len(orElse) > 0 {
		in := resp.Responses[0].GetResponseTxn()
		if in == nil {
			return 0, false, nil, fmt.Errorf("etcd answered a nested transaction without its response")
		}
		if !in.Succeeded {
			return resp.Header.Revision, false, in.Responses, nil
		}
	}
	return resp.Header.Revision, true, nil, nil
}

func (s *Store) fenceCmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.fence.key), "=", s.fence.rev)
}

func (s *Store) count(ops []clientv3.Op) {
	s.stats.txns.Add(1)
	var puts, dels int64
	for _, op := range ops {
		switch {
		case op.IsPut():
			puts++
		case op.IsDelete():
			dels++
		}
	}
	s.stats.puts.Add(puts)
	s.stats.deletes.Add(dels)
}

func (s *Store) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	s.stats.reads.Add(1)
	return s.cli.Get(ctx, key, opts...)
}
