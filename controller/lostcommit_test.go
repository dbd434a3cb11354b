package controller

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// loseResponses returns an etcd client whose first Txn carrying a launch
// checkpoint (a task record in TASK_STAGING) reaches etcd and commits, but
// whose response is lost on the way back: the caller sees an error for a
// write that is durable, as when a connection drops or a deadline passes
// after etcd applied the request.
func loseResponses(t *testing.T, e *env) (*clientv3.Client, *atomic.Int32) {
	t.Helper()
	lost := &atomic.Int32{}
	lose := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if tr, ok := req.(*pb.TxnRequest); ok && err == nil && strings.Contains(tr.String(), `TASK_STAGING`) && lost.CompareAndSwap(0, 1) {
			return grpcstatus.Error(codes.Unavailable, "injected: the transaction's response was lost")
		}
		return err
	}
	return etcdClientWith(t, e, lose), lost
}

// etcdClientWith returns a client of e's etcd whose unary calls (Txn among
// them) go through interceptor: the network between the controller and
// etcd, as the test makes it.
func etcdClientWith(t *testing.T, e *env, interceptor grpc.UnaryClientInterceptor) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: e.etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(interceptor)},
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// startLeading runs the controller as converge serve does: in leadership
// terms, each with a store fenced by its election key.
func (e *env) startLeading(cli *clientv3.Client) {
	st := store.NewFromClient(cli, "/converge")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- leader.RunWithOptions(ctx, cli, st, leader.Options{Identity: "test", TTL: 2 * time.Second},
			func(ctx context.Context, fenced *store.Store) error {
				cfg := e.cfg
				reg := prometheus.NewRegistry() // each term's controller registers anew
				cfg.Store, cfg.Registerer = fenced, reg
				e.mu.Lock()
				e.reg = reg
				e.mu.Unlock()
				return Run(ctx, cfg, e.bridgeConfig())
			})
	}()
	e.mu.Lock()
	e.cancel, e.done = cancel, done
	e.mu.Unlock()
}

// TestLostCommitResponse: etcd commits a launch checkpoint but its answer is
// lost. The write's outcome is unknown, so the controller must not go on
// from a cache that lacks what etcd holds (it would launch the ordinal
// again under a new id and leave the first record behind: a phantom member
// that shows up after the next restart as an extra task being killed as a
// duplicate). It ends its term, re-reads the ledger under a new fence, and
// Mesos's reconciliation resolves the record that was never launched.
func TestLostCommitResponse(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	cli, lost := loseResponses(t, e)
	e.startLeading(cli)
	defer e.stop()
	e.create(newCluster("lost", 3))
	e.waitReady("lost")
	if lost.Load() == 0 {
		t.Fatalf("no launch checkpoint's response was lost: the fault was not injected")
	}
	e.checkConverged("lost", 3)
	e.eventually(20*time.Second, "the etcd ledger to hold exactly the 3 members (no phantom record)", func() bool {
		recs, err := e.st.ListTasks(context.Background(), "default", "lost")
		if err != nil {
			return false
		}
		live := 0
		for _, r := range recs {
			if !finished(r.State) {
				live++
			}
		}
		return live == 3
	})
	for _, ev := range e.events("lost") {
		if ev.Reason == "Killing" && strings.Contains(ev.Message, "duplicate") {
			t.Errorf("a duplicate member was killed: %s", ev.Message)
		}
	}
	if c := e.get("lost"); c.Status.Replicas != 3 {
		t.Errorf("status.replicas %d, want 3", c.Status.Replicas)
	}
}
