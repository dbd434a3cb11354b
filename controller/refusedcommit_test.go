package controller

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// TestRefusedCheckpointDeclinesShortly: etcd refuses a launch checkpoint
// (its quota reached: "mvcc: database space exceeded", nothing applied), so
// the offer it was for launches nothing and is declined. Its launch is
// still needed, so the decline carries the short filter (refuseShort), not
// the one for offers nobody needs (refuseUnneeded): Mesos's allocator keeps
// declined resources from the framework for filters.refuse_seconds
// (HierarchicalAllocatorProcess::recoverResources in
// src/master/allocator/mesos/hierarchical.cpp installs a RefusedOfferFilter
// for it), and with one agent a long filter would keep the member from its
// only agent that long. The term goes on (a refused write is no unknown
// outcome) and the member launches on the agent's next offer.
func TestRefusedCheckpointDeclinesShortly(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true, Agents: 1})
	proxy := e.proxies[0]
	refused := &atomic.Int32{}
	callsBefore := &atomic.Int32{} // scheduler calls recorded before the refusal
	refuse := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if tr, ok := req.(*pb.TxnRequest); ok && strings.Contains(tr.String(), "TASK_STAGING") && refused.CompareAndSwap(0, 1) {
			callsBefore.Store(int32(len(proxy.seen(func(seenCall) bool { return true }))))
			return rpctypes.ErrGRPCNoSpace
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	e.cfg.Store = store.NewFromClient(etcdClientWith(t, e, refuse), "/converge")
	e.start()
	e.create(newCluster("quota", 1))

	// The first DECLINE after the refusal is that round's: its one offer.
	var decline *seenCall
	e.eventually(20*time.Second, "a launch checkpoint refused, then its offer declined", func() bool {
		if refused.Load() == 0 {
			return false
		}
		for _, c := range proxy.seen(func(seenCall) bool { return true })[callsBefore.Load():] {
			if c.Type == scheduler.Call_DECLINE {
				decline = &c
				return true
			}
		}
		return false
	})
	if decline.RefuseSeconds == nil || *decline.RefuseSeconds != refuseShort {
		t.Fatalf("the offer whose launch is still needed was declined with refuse_seconds %v, want %d (refuseShort)", fmtSeconds(decline.RefuseSeconds), refuseShort)
	}
	e.waitReady("quota")
	if n := e.metric("converge_controller_ledger_commits_unknown_total", nil); n != 0 {
		t.Errorf("a refused commit counted as of unknown outcome (%v)", n)
	}
}

func fmtSeconds(p *float64) any {
	if p == nil {
		return "unset"
	}
	return *p
}
