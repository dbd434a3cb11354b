package leader_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/converge-io/converge/leader"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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
	return campaign(t, cli, name, ref, ttl)
}

// campaign runs a replica on its own client cli (closed at cleanup) with lease
// TTL ttl.
func campaign(t *testing.T, cli *clientv3.Client, name string, ref *referee, ttl time.Duration) *campaigner {
	t.Helper()
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

// A leader cut off from etcd stops while its lease still lives on the
// server: no standby can have been elected yet. The lease is the server's
// clock, read through another connection the moment the leader's work ends.
func TestLeaderStopsBeforeLeaseExpiresWhenEtcdIsUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	link := newCuttableLink(t, srv.Endpoints()[0])
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{link.url()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	// A TTL long enough that "at least a second left", the granularity etcd
	// reports, separates a leader that stops early from one that waits for its
	// session to expire.
	const longTTL = 10 * time.Second
	a := campaign(t, cli, "a", &referee{}, longTTL)
	t1 := waitElected(t, a, 10*time.Second)
	resp, err := srv.Client().Get(context.Background(), prefix+"/leader/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leader key: %v %v", resp, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)

	link.cut()
	waitEnded(t, t1, 2*longTTL, "cut off from etcd")
	ttlResp, err := srv.Client().TimeToLive(context.Background(), lease)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader work ended with %ds left on its lease (granted %ds)", ttlResp.TTL, ttlResp.GrantedTTL)
	if ttlResp.TTL < 1 {
		t.Errorf("the leader acted until its lease had %ds left (-1: expired): a standby could have been elected meanwhile", ttlResp.TTL)
	}
	if cause := context.Cause(t1.ctx); !errors.Is(cause, leader.ErrLeadershipLost) {
		t.Errorf("cause %v, want ErrLeadershipLost", cause)
	}
	link.heal()
	waitElected(t, a, 2*longTTL)
}

func TestGracefulShutdownHandsOverAtOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	ref := &referee{}
	a := start(t, srv, "a", ref)
	t1 := waitElected(t, a, 10*time.Second)
	b := start(t, srv, "b", ref)
	waitCandidates(t, srv.Client(), 2)

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
	waitEnded(t, t1, 5*time.Second, "after shutdown")
	// Run returned: a gave its lease up, so its key is gone and b need not
	// wait for the lease to expire.
	resp, err := srv.Client().Get(context.Background(), prefix+"/leader/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Value) == "a" {
			t.Fatalf("a's election key %s outlived its clean shutdown; its lease was not revoked", kv.Key)
		}
	}
	waitElected(t, b, 10*time.Second)
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

// cuttableLink is a TCP forwarder to etcd for one client: cut drops its
// connections and refuses new ones (a partition of that client alone), heal
// lets them through again.
type cuttableLink struct {
	ln      net.Listener
	backend string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newCuttableLink(t *testing.T, endpoint string) *cuttableLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &cuttableLink{ln: ln, backend: strings.TrimPrefix(endpoint, "http://")}
	go l.accept()
	t.Cleanup(func() { ln.Close(); l.cut() })
	return l
}

func (l *cuttableLink) url() string { return "http://" + l.ln.Addr().String() }

func (l *cuttableLink) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", l.backend)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.down {
			l.mu.Unlock()
			c.Close()
			b.Close()
			continue
		}
		l.conns = append(l.conns, c, b)
		l.mu.Unlock()
		go func() { _, _ = io.Copy(b, c); b.Close() }()
		go func() { _, _ = io.Copy(c, b); c.Close() }()
	}
}

func (l *cuttableLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *cuttableLink) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
}
