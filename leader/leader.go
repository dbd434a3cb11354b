// Package leader elects one active controller among `converge serve`
// replicas (issue 7), with etcd's concurrency.Election on <prefix>/leader/.
//
// The leader's work runs with a context that ends as soon as leadership is
// in doubt: the session's lease is lost, the election key is gone or taken
// over, or etcd has not answered for a third of the lease TTL, which is
// before the lease can expire on the server and a standby can win. Its
// writes go through a store fenced on the election key, so a late write
// from a deposed leader fails with store.ErrNotLeader instead of landing.
package leader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/converge-io/converge/store"
	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultTTL is the session (lease) TTL when none is given: a dead
// leader's key expires, and a standby takes over, within about this long.
const DefaultTTL = 5 * time.Second

// ErrLeadershipLost is the cause (context.Cause) of the leader context's
// end when leadership was lost rather than given up.
var ErrLeadershipLost = errors.New("leadership lost")

// Options configure RunWithOptions.
type Options struct {
	// Identity is the value of the election key: what Current reports.
	Identity string
	// TTL of the session lease; default DefaultTTL, at least 1s (etcd may
	// raise it to its minimum).
	TTL time.Duration
	// Log receives elections, losses and errors.
	Log logr.Logger
	// OnElected, if set, is called when this replica becomes leader, with
	// its election key and create revision, before fn runs.
	OnElected func(key string, rev int64)
}

// Run campaigns for leadership under st's prefix until ctx ends. Each time
// it is elected it calls fn with a context that is cancelled when
// leadership is lost (see the package comment) and with
// st.Fenced(election key, its create revision). When fn returns or the
// session dies it resigns and campaigns again with a fresh session. It
// returns nil when ctx ends, or an error if the etcd client is closed.
func Run(ctx context.Context, cli *clientv3.Client, st *store.Store, identity string, ttl time.Duration,
	fn func(ctx context.Context, fenced *store.Store) error) error {
	return RunWithOptions(ctx, cli, st, Options{Identity: identity, TTL: ttl}, fn)
}

// RunWithOptions is Run with logging and an election hook.
func RunWithOptions(ctx context.Context, cli *clientv3.Client, st *store.Store, o Options,
	fn func(ctx context.Context, fenced *store.Store) error) error {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < time.Second {
		o.TTL = time.Second
	}
	const minPause, maxPause = 100 * time.Millisecond, 5 * time.Second
	pause := minPause
	for {
		if ctx.Err() != nil {
			return nil
		}
		if cli.Ctx().Err() != nil {
			return fmt.Errorf("leader election %s: etcd client closed", st.LeaderPrefix())
		}
		began := time.Now()
		err := term(ctx, cli, st, o, fn)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			o.Log.Info("leadership term ended", "identity", o.Identity, "reason", err.Error())
		}
		if time.Since(began) > o.TTL {
			pause = minPause
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		pause = min(pause*2, maxPause)
	}
}

// term is one session: campaign, lead, resign.
func term(ctx context.Context, cli *clientv3.Client, st *store.Store, o Options,
	fn func(ctx context.Context, fenced *store.Store) error) error {
	secs := int(math.Ceil(o.TTL.Seconds()))
	// Grant the lease under a deadline (the session would wait forever for
	// an unreachable etcd).
	gctx, gcancel := context.WithTimeout(ctx, o.TTL)
	lease, err := cli.Grant(gctx, int64(secs))
	gcancel()
	if err != nil {
		return fmt.Errorf("grant session lease: %w", err)
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithContext(ctx))
	if err != nil {
		revoke(cli, lease.ID)
		return fmt.Errorf("new session: %w", err)
	}
	defer func() {
		sess.Orphan() // stop its keep-alives, then revoke under our own deadline
		revoke(cli, lease.ID)
	}()
	lost := sess.Done()

	el := concurrency.NewElection(sess, st.LeaderPrefix())
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	campaigned := make(chan error, 1)
	go func() { campaigned <- el.Campaign(cctx, o.Identity) }()
	select {
	case err := <-campaigned:
		if err != nil {
			return fmt.Errorf("campaign: %w", err)
		}
	case <-lost:
		return errors.New("session lease lost while campaigning")
	case <-ctx.Done():
		return ctx.Err()
	}
	key, rev := el.Key(), el.Rev()
	o.Log.Info("elected leader", "identity", o.Identity, "key", key, "revision", rev)
	if o.OnElected != nil {
		o.OnElected(key, rev)
	}

	lctx, lcancel := context.WithCancelCause(ctx)
	defer lcancel(nil)
	go func() {
		select {
		case <-lost:
			lcancel(fmt.Errorf("%w: session lease expired or revoked", ErrLeadershipLost))
		case <-lctx.Done():
		}
	}()
	go guard(lctx, lcancel, cli, key, rev, o.TTL)

	err = fn(lctx, st.Fenced(key, rev))
	if cause := context.Cause(lctx); cause != nil && errors.Is(cause, ErrLeadershipLost) {
		o.Log.Info("lost leadership", "identity", o.Identity, "reason", cause.Error())
		return cause
	}
	if err != nil {
		return fmt.Errorf("leader work: %w", err)
	}
	return nil
}

// guard ends the leader context when the election key is no longer ours, or
// when etcd has not confirmed it for TTL/3. Keep-alives refresh the lease
// every TTL/3, so a confirmation at time T means the lease lives until
// about T+2TTL/3 at least: the guard fires (after at most TTL/3 + 2*TTL/10)
// before a standby can be elected.
func guard(ctx context.Context, cancel context.CancelCauseFunc, cli *clientv3.Client, key string, rev int64, ttl time.Duration) {
	every := max(ttl/10, 50*time.Millisecond)
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gctx, gcancel := context.WithTimeout(ctx, every)
		resp, err := cli.Get(gctx, key)
		gcancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if time.Since(lastOK) > ttl/3 {
				cancel(fmt.Errorf("%w: etcd unreachable for %s: %v", ErrLeadershipLost, time.Since(lastOK).Round(time.Millisecond), err))
				return
			}
		case len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != rev:
			cancel(fmt.Errorf("%w: election key %s is gone", ErrLeadershipLost, key))
			return
		default:
			lastOK = time.Now()
		}
	}
}

// revoke gives up the lease (deleting the election key, so a standby takes
// over at once) under its own short deadline, whatever the caller's context.
func revoke(cli *clientv3.Client, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = cli.Revoke(ctx, id)
}

// Current returns the identity of the current leader under prefix (the
// store prefix, e.g. "/converge", or the election prefix itself), or ""
// when there is none.
func Current(ctx context.Context, cli *clientv3.Client, prefix string) (string, error) {
	lp := prefix
	if !strings.HasSuffix(lp, "/leader/") {
		lp = strings.TrimRight(prefix, "/") + "/leader/"
	}
	resp, err := cli.Get(ctx, lp, clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("read leader under %s: %w", lp, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
