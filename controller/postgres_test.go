package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// pgBin is where Debian's PostgreSQL 15 server binaries live (installed on
// every machine of this project, CI included).
const pgBin = "/usr/lib/postgresql/15/bin"

// exampleLease is the master lease of the example clusters under test.
const exampleLease = 6 * time.Second

// TestPostgresExample runs manifests/examples/postgres.yaml as it is (its
// hook scripts fetched by relative path, as converge dev does) with real
// PostgreSQL servers under real executors, localmesos, the controller and
// etcd, a master lease of 6s and an election timeout of 5s. A client logs
// every acknowledged INSERT. It checks: Ready with a master; a row written
// on the master reaches every replica; after kill -9 of the master's
// postgres, a new master and every acknowledged write on it; after a
// partition of the master's agent (Mesos would call it unreachable only
// after 75 s: the lease fences, not Mesos) while a client keeps writing to
// the old address, a new master, every acknowledged write on it, and the old
// master accepted no write once the new one had; once the agent is back, the
// old master's replacement streams from the new one and holds every
// acknowledged write.
func TestPostgresExample(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real PostgreSQL servers")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		t.Skipf("PostgreSQL 15 server binaries not installed (%v): apt-get install postgresql-15", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("the agents must run as root to run PostgreSQL as user postgres (task.user)")
	}
	// Ports of their own (24000, 25000, 26000): other packages' tests run
	// real servers on localmesos's default 31000, 32000, ... meanwhile.
	e, work := startExample(t, "postgres.yaml", "ports:[24000-24999]")

	c := e.waitFor("postgres", 120*time.Second, "Ready with a master", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil
	})
	master := *c.Status.Master
	t.Logf("master: ordinal %d at %s:%d, epoch %d", master.Ordinal, master.Hostname, master.Port, master.Epoch)
	waitStandbys(t, c, 2, 60*time.Second)
	// The synchronous standbys counted are running servers: a copy in
	// progress (pg_basebackup) must not count as one (--no-slot, run.sh).
	for _, ts := range c.Status.Tasks {
		if ts.ID == master.TaskID {
			continue
		}
		if r, err := pgQuery(taskAddr(ts), "SELECT pg_is_in_recovery()::text"); err != nil || len(r) != 1 || r[0] != "true" {
			t.Fatalf("synchronous standbys counted while member %d is no running standby: %v %v", ts.Ordinal, r, err)
		}
	}

	// The table, on whichever member is master once it takes writes: a
	// failover while the cluster settles is not what this test is about
	// (it is logged), losing an acknowledged write after one is.
	c, master = bootstrapTable(t, e, 60*time.Second)
	for _, ts := range c.Status.Tasks {
		waitRow(t, taskAddr(ts), "first", 30*time.Second)
	}
	crashStandbyKeepsData(t, e, work, "postgres", "postmaster.pid",
		func(addr string) { waitRow(t, addr, "first", 30*time.Second) },
		func(id string, crashed time.Time) bool {
			_, made, ok := sandboxFile(work, id, "PG_VERSION")
			return !ok || made.After(crashed)
		})

	// Planned handovers first, on the healthy cluster: switchover --to, a
	// rolling update (dbhandover_test.go).
	checkHandovers(t, e, exampleDB{cluster: "postgres", ids: pgWriteIDs, synced: waitStandbys,
		writer: func(l *writeLog, name string, where func() string) func() { return l.writer(name, where) }})
	c, master = bootstrapTable(t, e, 60*time.Second)

	log := &writeLog{}
	published := &target{}
	published.set(addrOf(master))
	stopPublished := log.writer("published", published.get)
	stopFollow := followMaster(e, "postgres", published)
	defer stopFollow()
	log.waitAcks(t, addrOf(master), time.Time{}, 5, 20*time.Second)

	// kill -9 of the master's postgres (the postmaster).
	pidText, _, ok := sandboxFile(work, master.TaskID, "postmaster.pid")
	if !ok {
		t.Fatalf("no postmaster.pid in the sandbox of %s", master.TaskID)
	}
	pid, err := strconv.Atoi(strings.SplitN(pidText, "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %q", pidText)
	}
	crashed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	c = e.waitFor("postgres", 60*time.Second, "a new master after the crash", func(c *v1alpha1.Cluster) bool {
		return c.Status.Master != nil && c.Status.Master.TaskID != master.TaskID
	})
	second := *c.Status.Master
	first := log.waitAcks(t, addrOf(second), crashed, 1, 30*time.Second)
	crashFailover := first.acked.Sub(crashed)
	t.Logf("kill -9 of the master's postgres: new master ordinal %d (epoch %d) took its first write %.1fs after the crash (lease %s)",
		second.Ordinal, second.Epoch, crashFailover.Seconds(), exampleLease)
	log.checkOn(t, addrOf(second), pgWriteIDs)

	// Three members again, both standbys streaming from the master, before
	// the partition.
	c = e.waitFor("postgres", 90*time.Second, "Ready again", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.TaskID == second.TaskID && len(c.Status.Tasks) == 3
	})
	waitStandbys(t, c, 2, 60*time.Second)

	// Partition the master's agent; a second client keeps writing to the
	// address it knew.
	old := addrOf(second)
	stopStale := log.writer("stale", func() string { return old })
	log.waitAcks(t, old, crashed, 10, 20*time.Second)
	parted := time.Now()
	if err := e.mesos.PartitionAgent(second.Hostname); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("postgres", 60*time.Second, "a new master after the partition", func(c *v1alpha1.Cluster) bool {
		return c.Status.Master != nil && c.Status.Master.TaskID != second.TaskID
	})
	third := *c.Status.Master
	first = log.waitAcks(t, addrOf(third), parted, 1, 30*time.Second)
	partitionFailover := first.acked.Sub(parted)
	t.Logf("partition of the master's agent: new master ordinal %d (epoch %d) took its first write %.1fs after the partition (lease %s, election timeout 5s)",
		third.Ordinal, third.Epoch, partitionFailover.Seconds(), exampleLease)
	// A few more writes on the new master while the stale client goes on.
	log.waitAcks(t, addrOf(third), parted, 10, 20*time.Second)
	stopStale()
	stopPublished()

	// Never two masters: the old one took no write once the new one had.
	oldLast, newFirst, refused := log.overlap(old, crashed, addrOf(third), parted)
	if !oldLast.Before(newFirst) {
		t.Errorf("two masters took writes: the old master %s acknowledged a write at %s, the new one %s took its first (sent) at %s",
			old, oldLast.Format(time.RFC3339Nano), addrOf(third), newFirst.Format(time.RFC3339Nano))
	}
	if refused == 0 {
		t.Errorf("the stale client's writes to %s were never refused", old)
	}
	t.Logf("the old master acknowledged its last write %.1fs before the new master's first; %d later writes to it failed (%s)",
		newFirst.Sub(oldLast).Seconds(), refused, log.lastError(old))
	n, lost := log.checkOn(t, addrOf(third), pgWriteIDs)
	t.Logf("figures: crash -> first write on the new master %.1fs; partition -> first write on the new master %.1fs; %d acknowledged writes, %d lost",
		crashFailover.Seconds(), partitionFailover.Seconds(), n, lost)

	// The agent comes back: the old master is replaced by a member that
	// copies the new master and streams from it; every acknowledged write
	// reaches every member.
	if err := e.mesos.RestoreAgent(second.Hostname); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("postgres", 90*time.Second, "the old master replaced", func(c *v1alpha1.Cluster) bool {
		if !clusterReady(c) || c.Status.Master == nil || c.Status.Master.TaskID != third.TaskID || len(c.Status.Tasks) != 3 {
			return false
		}
		for _, ts := range c.Status.Tasks {
			if ts.ID == second.TaskID {
				return false
			}
		}
		return true
	})
	waitStandbys(t, c, 2, 60*time.Second)
	pgExec(t, addrOf(third), "INSERT INTO writes VALUES ('last')")
	for _, ts := range c.Status.Tasks {
		waitRow(t, taskAddr(ts), "last", 30*time.Second)
		log.checkOn(t, taskAddr(ts), pgWriteIDs)
	}
}

func addrOf(m v1alpha1.MasterStatus) string {
	return fmt.Sprintf("%s:%d", m.Hostname, m.Port)
}

func taskAddr(ts v1alpha1.TaskStatus) string {
	if len(ts.Ports) == 0 {
		return ts.Hostname
	}
	return fmt.Sprintf("%s:%d", ts.Hostname, ts.Ports[0])
}

// pgConnect connects as postgres to database postgres at host:port.
func pgConnect(ctx context.Context, addr string) (*pgx.Conn, error) {
	host, port, _ := strings.Cut(addr, ":")
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres connect_timeout=2 sslmode=disable", host, port))
}

// startExample runs the example manifest file under real executors with a
// short lease (exampleLease: the partition fails over quickly, with room for renewals
// delayed on a loaded machine, as a master fences itself 2/5 of it early),
// on agents with the given port range (apart from other tests' servers),
// Mesos calling a partitioned agent unreachable only after 75 s, as a real
// master does: the lease fences, not Mesos. It returns the env and the work
// directory of the sandboxes (kept after a failure when KEEP_SANDBOXES is set).
func startExample(t *testing.T, file, ports string) (*env, string) {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(repo, "manifests/examples", file))
	if err != nil {
		t.Fatal(err)
	}
	cls, err := v1alpha1.Decode(data, file)
	if err != nil || len(cls) != 1 {
		t.Fatalf("decode the example: %v (%d objects)", err, len(cls))
	}
	c := cls[0]
	c.Spec.Election.LeaseDuration = &metav1.Duration{Duration: exampleLease}
	c.Spec.Election.Timeout = &metav1.Duration{Duration: 5 * time.Second}
	minReady := int32(0)
	c.Spec.Update.MinReadySeconds = &minReady
	v1alpha1.SetDefaults(c)

	// Sandboxes the task's user can reach (t.TempDir's are root's alone).
	work, err := os.MkdirTemp("", "example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("KEEP_SANDBOXES") != "" {
			t.Logf("sandboxes kept in %s", work)
			return
		}
		_ = os.RemoveAll(work)
	})
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildExecutor(t)
	e := newEnv(t, localmesos.Options{WorkDir: work, Agents: 3, FrameworksHome: repo,
		AgentResources:        "cpus:4;mem:8192;disk:65536;" + ports,
		AgentUnreachableAfter: 75 * time.Second})
	// Fetched into each sandbox (and so readable by the task's user), as
	// converge dev and serve --executor-uri do.
	e.cfg.ExecutorURI, e.cfg.ExecutorCommand = bin, "./"+filepath.Base(bin)
	e.cfg.Roles = []string{"*", "converge"} // the examples' role: their volumes
	e.start()
	e.create(c)
	return e, work
}

// bootstrapTable creates the writes table and its first row on the
// published master, retrying on the master published next should that one
// stop taking writes meanwhile.
func bootstrapTable(t *testing.T, e *env, timeout time.Duration) (*v1alpha1.Cluster, v1alpha1.MasterStatus) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		c := e.get("postgres")
		if m := c.Status.Master; m != nil && clusterReady(c) {
			err := pgTry(addrOf(*m), "CREATE TABLE IF NOT EXISTS writes (id text PRIMARY KEY)",
				"INSERT INTO writes VALUES ('first') ON CONFLICT DO NOTHING")
			if err == nil {
				return c, *m
			}
			t.Logf("bootstrap attempt %d on the master %s (epoch %d): %v", attempt, addrOf(*m), m.Epoch, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no master took the first write within %s", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pgTry runs statements on addr, one after another.
func pgTry(addr string, stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgConnect(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, sql := range stmts {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

func pgExec(t *testing.T, addr, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgConnect(ctx, addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s on %s: %v", sql, addr, err)
	}
}

// pgQuery runs a query of one text column on addr.
func pgQuery(addr, sql string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgConnect(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// waitRow waits for the row id to be readable on addr.
func waitRow(t *testing.T, addr, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := pgQuery(addr, "SELECT id FROM writes WHERE id = '"+id+"'")
		if err == nil && len(got) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("row %q not on %s after %s (%v, %v)", id, addr, timeout, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStandbys waits for the master of c to have n standbys streaming as
// synchronous candidates.
func waitStandbys(t *testing.T, c *v1alpha1.Cluster, n int, timeout time.Duration) {
	t.Helper()
	addr := addrOf(*c.Status.Master)
	deadline := time.Now().Add(timeout)
	for {
		got, err := pgQuery(addr, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')")
		if err == nil && len(got) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("master %s has standbys %v (%v) after %s, want %d", addr, got, err, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// target is the address a writer writes to.
type target struct {
	mu   sync.Mutex
	addr string
}

func (t *target) set(a string) { t.mu.Lock(); t.addr = a; t.mu.Unlock() }
func (t *target) get() string  { t.mu.Lock(); defer t.mu.Unlock(); return t.addr }

// followMaster keeps to pointed at the named cluster's published master, as
// a client of converge endpoints -w would.
func followMaster(e *env, name string, to *target) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				if c := e.get(name); c != nil && c.Status.Master != nil {
					to.set(addrOf(*c.Status.Master))
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// write is one acknowledged INSERT.
type write struct {
	id          string
	addr        string
	sent, acked time.Time
}

// writeLog is the client's log of acknowledged writes and of refusals.
type writeLog struct {
	mu      sync.Mutex
	acks    []write
	refused []write // not acknowledged (sent = when tried)
	lastErr map[string]string
}

// writer INSERTs continuously, one row at a time, to where() until stopped,
// logging each acknowledged one.
func (l *writeLog) writer(name string, where func() string) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var conn *pgx.Conn
		var connAddr string
		defer func() {
			if conn != nil {
				_ = conn.Close(context.Background())
			}
		}()
		pace := time.NewTicker(20 * time.Millisecond)
		defer pace.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-quit:
				return
			case <-pace.C:
			}
			addr := where()
			if conn != nil && connAddr != addr {
				_ = conn.Close(context.Background())
				conn = nil
			}
			w := write{id: fmt.Sprintf("%s-%d", name, seq), addr: addr, sent: time.Now()}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			var err error
			if conn == nil {
				conn, err = pgConnect(ctx, addr)
				if err != nil {
					conn = nil
				}
				connAddr = addr
			}
			if err == nil {
				_, err = conn.Exec(ctx, "INSERT INTO writes VALUES ($1)", w.id)
				if err != nil {
					_ = conn.Close(context.Background())
					conn = nil
				}
			}
			cancel()
			w.acked = time.Now()
			l.record(w, err)
		}
	}()
	return func() { close(quit); <-done }
}

func (l *writeLog) record(w write, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastErr == nil {
		l.lastErr = map[string]string{}
	}
	if err != nil {
		l.refused = append(l.refused, w)
		l.lastErr[w.addr] = err.Error()
		return
	}
	l.acks = append(l.acks, w)
}

// waitAcks waits for n acknowledged writes to addr sent since then (an
// address may be reused by a later member) and returns the first.
func (l *writeLog) waitAcks(t *testing.T, addr string, since time.Time, n int, timeout time.Duration) write {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		var got []write
		for _, w := range l.acks {
			if w.addr == addr && !w.sent.Before(since) {
				got = append(got, w)
			}
		}
		last := l.lastErr[addr]
		l.mu.Unlock()
		if len(got) >= n {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged writes to %s after %s, want %d (last error: %s)", len(got), addr, timeout, n, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkOn checks that every acknowledged write so far is among the ids that
// ids reads on addr, and returns how many there were and how many are not.
func (l *writeLog) checkOn(t *testing.T, addr string, ids func(addr string) ([]string, error)) (acked, missing int) {
	t.Helper()
	l.mu.Lock()
	acks := append([]write(nil), l.acks...)
	l.mu.Unlock()
	var rows []string
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		if rows, err = ids(addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("read the writes on %s: %v", addr, err)
	}
	have := make(map[string]bool, len(rows))
	for _, id := range rows {
		have[id] = true
	}
	var lost []string
	for _, w := range acks {
		if !have[w.id] {
			lost = append(lost, fmt.Sprintf("%s (to %s, acknowledged %s)", w.id, w.addr, w.acked.Format("15:04:05.000")))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes are not on %s: %s", len(lost), len(acks), addr, strings.Join(lost, ", "))
	}
	return len(acks), len(lost)
}

// pgWriteIDs reads the ids of the PostgreSQL test's writes on addr.
func pgWriteIDs(addr string) ([]string, error) { return pgQuery(addr, "SELECT id FROM writes") }

// overlap returns when the old master (writes to oldAddr since oldSince)
// last acknowledged a write, when the first write the new one (newAddr since
// newSince) acknowledged was sent, and how many writes to the old address
// failed after that.
func (l *writeLog) overlap(oldAddr string, oldSince time.Time, newAddr string, newSince time.Time) (oldLast, newFirst time.Time, refusedAfter int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.acks {
		if w.addr == oldAddr && !w.sent.Before(oldSince) && w.acked.After(oldLast) {
			oldLast = w.acked
		}
		if w.addr == newAddr && !w.sent.Before(newSince) && (newFirst.IsZero() || w.sent.Before(newFirst)) {
			newFirst = w.sent
		}
	}
	for _, w := range l.refused {
		if w.addr == oldAddr && w.sent.After(newFirst) {
			refusedAfter++
		}
	}
	return oldLast, newFirst, refusedAfter
}

func (l *writeLog) lastError(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.lastErr[addr]; s != "" {
		return "last error: " + s
	}
	return "no error"
}
