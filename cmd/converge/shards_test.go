package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestServeShards: two `converge serve --shards 2` replicas each lead their
// shard as its own Mesos framework, every cluster's tasks run under the
// framework of its shard, and when one replica stops, the other (standing by
// for that shard) takes it over: a change to one of its clusters converges,
// still under the shard's framework.
func TestServeShards(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startLocalMesos(ctx, t, localmesos.Options{Agents: 2})
	start := func(shard int) *serveReplica {
		return e.startServe(ctx, "serve", "--mesos-master", m.URL(), "--identity", fmt.Sprintf("replica-%d", shard),
			"--shards", "2", "--shard", fmt.Sprint(shard), "--http", "", "--lease-ttl", "2s")
	}
	a, b := start(0), start(1)
	defer b.cancel()
	defer a.cancel()

	// Two clusters in each shard.
	names := map[int][]string{}
	for i := 0; len(names[0]) < 2 || len(names[1]) < 2; i++ {
		n := fmt.Sprintf("sh%d", i)
		if s := controller.ShardOf("default/"+n, 2); len(names[s]) < 2 {
			names[s] = append(names[s], n)
		}
	}
	var docs []string
	for _, s := range []int{0, 1} {
		for _, n := range names[s] {
			docs = append(docs, manifest(n, 1, ""))
		}
	}
	f := e.file("shards.yaml", strings.Join(docs, "---\n"))
	expect(t, e.run("", "apply", "-f", f, "--wait", "--timeout", "60s"), 0, "ready")
	checkShardFrameworks(t, m, names)

	// Replica 1 stands by for shard 0 (after two lease TTLs); then replica 0 stops.
	waitFor(t, func() bool { return strings.Contains(b.out.String(), "/shards/0/leader") })
	a.cancel()
	select {
	case r := <-a.done:
		expect(t, r, 0, "converge serve stopped")
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	moved := names[0][0]
	expect(t, e.run("", "apply", "-f", e.file("moved.yaml", manifest(moved, 2, "")), "--wait", "--timeout", "60s"), 0,
		"cluster/"+moved+" ready (generation 2, 2/2)")
	checkShardFrameworks(t, m, names)

	expect(t, e.run("", "serve", "--mesos-master", m.URL(), "--shards", "2", "--shard", "2"), 2, "--shard 2 of --shards 2")
	expect(t, e.run("", "serve", "--mesos-master", m.URL(), "--shard", "1"), 2, "--shard needs --shards")
}

// startLocalMesos starts an in-process local Mesos on a free port with real
// processes, offering every 100 ms; it stops with the test.
func startLocalMesos(ctx context.Context, t *testing.T, o localmesos.Options) *localmesos.Mesos {
	t.Helper()
	o.Listen, o.WorkDir, o.AllocationInterval = "127.0.0.1:0", t.TempDir(), 100*time.Millisecond
	m, err := localmesos.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// serveReplica is one `converge serve` run in-process until cancelled.
type serveReplica struct {
	cancel context.CancelFunc
	out    *syncBuffer
	done   chan result
}

// startServe runs the converge command args (a `serve`) until ctx ends or
// the replica is cancelled.
func (e *env) startServe(ctx context.Context, args ...string) *serveReplica {
	rctx, rcancel := context.WithCancel(ctx)
	r := &serveReplica{cancel: rcancel, out: &syncBuffer{}, done: make(chan result, 1)}
	go func() { r.done <- e.runCtx(rctx, "", r.out, args...) }()
	return r
}

// checkShardFrameworks checks that every active task of each cluster runs
// under the framework of the cluster's shard, "converge-shard-<i>".
func checkShardFrameworks(t *testing.T, m *localmesos.Mesos, names map[int][]string) {
	t.Helper()
	shardOf := map[string]int{}
	for s, ns := range names {
		for _, n := range ns {
			shardOf[n] = s
		}
	}
	seen := map[string]int{}
	for _, fw := range m.State().Frameworks {
		for _, task := range fw.Tasks {
			_, cl, _, ok := controller.ParseTaskID(task.ID)
			if !ok {
				continue
			}
			seen[cl]++
			if want := fmt.Sprintf("converge-shard-%d", shardOf[cl]); fw.Name != want {
				t.Errorf("task %s of cluster %s runs under framework %q, want %q", task.ID, cl, fw.Name, want)
			}
		}
	}
	for n := range shardOf {
		if seen[n] == 0 {
			t.Errorf("cluster %s has no active task", n)
		}
	}
}
