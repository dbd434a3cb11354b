package leader_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	prefix = "/t"
	ttl    = 2 * time.Second // etcd's minimum with default timings
)

// campaigner is one controller replica: its own client, store and Run.
type campaigner struct {
	name    string
	cli     *clientv3.Client
	st      *store.Store
	cancel  context.CancelFunc
	done    chan error
	elected chan term // each time it starts leading
}

// term is one leadership term as fn saw it.
type term struct {
	fenced *store.Store
	ctx    context.Context
	ended  chan struct{} // closed when fn returned
}

// referee checks that fn never runs in two replicas at once.
type referee struct {
	running  atomic.Int32
	overlaps atomic.Int32
}

func start(t *testing.T, srv *etcdtest.Server, name string, ref *referee) *campaigner {
	t.Helper()
	cli, err := srv.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	c := &campaigner{name: name, cli: cli, st: store.NewFromClient(cli, prefix), cancel: cancel,
		done: make(chan error, 1), elected: make(chan term, 10)}
	go func() {
		c.done <- leader.Run(ctx, cli, c.st, name, ttl, func(ctx context.Context, fenced *store.Store) error {
			if ref.running.Add(1) > 1 {
				ref.overlaps.Add(1)
			}
			tm := term{fenced: fenced, ctx: ctx, ended: make(chan struct{})}
			c.elected <- tm
			<-ctx.Done()
			ref.running.Add(-1)
			close(tm.ended)
			return ctx.Err()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return within 10s of cancel", name)
		}
	})
	return c
}

func waitElected(t *testing.T, c *campaigner, within time.Duration) term {
	t.Helper()
	select {
	case tm := <-c.elected:
		return tm
	case <-time.After(within):
		t.Fatalf("%s not elected within %s", c.name, within)
	}
	return term{}
}

func waitEnded(t *testing.T, tm term, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-tm.ended:
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("%s: leader work still running after %s", what, within)
	}
	return 0
}

func notElected(t *testing.T, c *campaigner) {
	t.Helper()
	select {
	case <-c.elected:
		t.Fatalf("%s elected while another leads", c.name)
	default:
	}
}

// waitCandidates waits until n campaign keys exist.
func waitCandidates(t *testing.T, cli *clientv3.Client, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := cli.Get(context.Background(), prefix+"/leader/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d candidates: %v %v", n, resp, err)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

func current(t *testing.T, cli *clientv3.Client) string {
	t.Helper()
	id, err := leader.Current(context.Background(), cli, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOneLeaderAndHandoverWhenLeaderDies(t *testing.T) {
	srv := etcdtest.Start(t)
	ref := &referee{}
	if id := current(t, srv.Client()); id != "" {
		t.Fatalf("leader before any campaign: %q", id)
	}
	a := start(t, srv, "a", ref)
	waitElected(t, a, 10*time.Second)
	b := start(t, srv, "b", ref)
	waitCandidates(t, srv.Client(), 2)
	notElected(t, b)
	if id := current(t, srv.Client()); id != "a" {
		t.Fatalf("Current = %q, want a", id)
	}

	// a's process dies: its client is gone, its lease expires on the server.
	killed := time.Now()
	a.cli.Close()
	waitElected(t, b, ttl+5*time.Second)
	takeover := time.Since(killed)
	t.Logf("takeover after %s", takeover)
	if id := current(t, srv.Client()); id != "b" {
		t.Fatalf("Current = %q, want b", id)
	}
	if ref.overlaps.Load() != 0 {
		t.Fatal("two replicas ran leader work at once")
	}
	select {
	case err := <-a.done:
		a.done <- err // for the cleanup
		if err == nil {
			t.Fatal("Run with a closed client returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its client was closed")
	}
}

func TestDeposedLeaderIsFenced(t *testing.T) {
	srv := etcdtest.Start(t)
	ref := &referee{}
	a := start(t, srv, "a", ref)
	t1 := waitElected(t, a, 10*time.Second)
	ctx := context.Background()
	c := &store.TaskRecord{ID: "t1", Namespace: "default", Cluster: "db"}
	b := t1.fenced.NewBatch()
	b.PutTask(*c)
	if _, err := t1.fenced.Commit(ctx, b); err != nil {
		t.Fatalf("leader's fenced write: %v", err)
	}

	// An operator (or etcd) revokes the leader's lease: its key is gone.
	resp, err := srv.Client().Get(ctx, prefix+"/leader/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leader key: %v", err)
	}
	if _, err := srv.Client().Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	d := waitEnded(t, t1, 5*time.Second, "after lease revoked")
	t.Logf("leader work stopped %s after the revoke", d)
	if cause := context.Cause(t1.ctx); !errors.Is(cause, leader.ErrLeadershipLost) {
		t.Errorf("cause %v, want ErrLeadershipLost", cause)
	}
	// The deposed leader's late write is refused.
	b = t1.fenced.NewBatch()
	b.PutTask(store.TaskRecord{ID: "t2", Namespace: "default", Cluster: "db"})
	if _, err := t1.fenced.Commit(ctx, b); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's write: %v, want ErrNotLeader", err)
	}
	if err := t1.fenced.SaveFrameworkID(ctx, "x"); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's framework write: %v, want ErrNotLeader", err)
	}
	// It campaigns again with a fresh session and, alone, wins a new term
	// whose fence works.
	t2 := waitElected(t, a, 10*time.Second)
	b = t2.fenced.NewBatch()
	b.PutTask(store.TaskRecord{ID: "t3", Namespace: "default", Cluster: "db"})
	if _, err := t2.fenced.Commit(ctx, b); err != nil {
		t.Fatalf("new term's write: %v", err)
	}
	tasks, _ := a.st.ListTasks(ctx, "default", "db")
	if len(tasks) != 2 || tasks[0].ID != "t1" || tasks[1].ID != "t3" {
		t.Fatalf("ledger %+v", tasks)
	}
}

func TestLeaderStopsBeforeLeaseExpiresWhenEtcdIsUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	ref := &referee{}
	a := start(t, srv, "a", ref)
	t1 := waitElected(t, a, 10*time.Second)

	srv.Partition()
	d := waitEnded(t, t1, ttl, "partitioned from etcd")
	t.Logf("leader work stopped %s after the partition (lease TTL %s)", d, ttl)
	// The lease can expire on the server no sooner than ~2/3 TTL after the
	// last keep-alive; the leader must have stopped by then.
	if d > ttl*2/3 {
		t.Errorf("leader kept acting %s without etcd; must stop within 2/3 of the %s TTL", d, ttl)
	}
	srv.Heal()
	waitElected(t, a, ttl+10*time.Second)
}

func TestGracefulShutdownHandsOverAtOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	ref := &referee{}
	a := start(t, srv, "a", ref)
	t1 := waitElected(t, a, 10*time.Second)
	b := start(t, srv, "b", ref)
	waitCandidates(t, srv.Client(), 2)

	stopped := time.Now()
	a.cancel()
	select {
	case err := <-a.done:
		a.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitEnded(t, t1, time.Second, "after shutdown")
	waitElected(t, b, ttl) // well before a's lease would have expired
	if d := time.Since(stopped); d > ttl/2 {
		t.Errorf("handover took %s after a clean shutdown; the lease should be revoked", d)
	}
	if ref.overlaps.Load() != 0 {
		t.Fatal("two replicas ran leader work at once")
	}
}

func TestFnReturningRecampaigns(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client()
	st := store.NewFromClient(cli, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var revs []int64
	done := make(chan error, 1)
	go func() {
		done <- leader.RunWithOptions(ctx, cli, st, leader.Options{Identity: "solo", TTL: ttl,
			OnElected: func(key string, rev int64) {
				mu.Lock()
				revs = append(revs, rev)
				mu.Unlock()
			}},
			func(ctx context.Context, fenced *store.Store) error {
				return errors.New("work failed")
			})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(revs)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-campaigned %d times in 10s, want 3", n)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	mu.Lock()
	if !(revs[0] < revs[1] && revs[1] < revs[2]) {
		t.Errorf("terms do not have fresh election keys: %v", revs)
	}
	mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
