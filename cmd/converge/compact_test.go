package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestServeCompactsEtcd: converge serve compacts etcd's history (a stock
// etcd keeps every revision until its quota stops all writes), and keeps
// working across compactions: a change made after one converges.
func TestServeCompactsEtcd(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startLocalMesos(ctx, t, localmesos.Options{Agents: 2})
	r := e.startServe(ctx, "serve", "--mesos-master", m.URL(), "--http", "", "--etcd-compaction-interval", "500ms")
	defer r.cancel()
	expect(t, e.run("", "apply", "-f", e.file("c.yaml", manifest("c", 1, "")), "--wait", "--timeout", "60s"), 0, "ready")
	old := e.rev()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.srv.Client().Get(ctx, "rev-probe", clientv3.WithRev(old))
		if errors.Is(err, rpctypes.ErrCompacted) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revision %d not compacted within 30s (last read: %v)", old, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	expect(t, e.run("", "apply", "-f", e.file("c2.yaml", manifest("c", 2, "")), "--wait", "--timeout", "60s"), 0,
		"cluster/c ready (generation 2, 2/2)")
	expect(t, e.run("", "serve", "--mesos-master", m.URL(), "--etcd-compaction-interval", "soon"), 2, "etcd-compaction-interval")
}
