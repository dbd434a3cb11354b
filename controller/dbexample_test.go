package controller

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// exampleLease is the master lease of the example clusters under test.
const exampleLease = 6 * time.Second

// exampleDB is what the checks of a database example (manifests/examples)
// need of its database: how to reach a server, and its test table.
type exampleDB struct {
	cluster string
	// pidFile is the server's pid file in a member's sandbox (the pid on
	// its first line).
	pidFile string
	// open returns a handle on the server at addr (host:port) as its
	// superuser, with short connect and I/O timeouts.
	open func(addr string) (*sql.DB, error)
	// table holds the test's writes (one text column, id); create makes it
	// and its row 'first'.
	table  string
	create []string
	// synced waits for the master of c to have n replicas acknowledging commits.
	synced func(t *testing.T, c *v1alpha1.Cluster, n int, timeout time.Duration)
}

// sqlExec runs statements on addr, one after another.
func sqlExec(open func(string) (*sql.DB, error), addr string, stmts ...string) error {
	db, err := open(addr)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s on %s: %w", s, addr, err)
		}
	}
	return nil
}

// sqlQuery runs a query of one text column on addr.
func sqlQuery(open func(string) (*sql.DB, error), addr, q string) ([]string, error) {
	db, err := open(addr)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ids reads the ids of the test's writes on addr.
func (db exampleDB) ids(addr string) ([]string, error) {
	return sqlQuery(db.open, addr, "SELECT id FROM "+db.table)
}

// waitRow waits for the row id to be readable on addr.
func (db exampleDB) waitRow(t *testing.T, addr, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := sqlQuery(db.open, addr, "SELECT id FROM "+db.table+" WHERE id = '"+id+"'")
		if err == nil && len(got) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("row %q not on %s after %s (%v, %v)", id, addr, timeout, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bootstrap creates the writes table and its first row on the published
// master, retrying on the master published next should that one stop
// taking writes meanwhile: a failover while the cluster settles is not what
// the tests are about (it is logged), losing an acknowledged write after
// one is.
func (db exampleDB) bootstrap(t *testing.T, e *env, timeout time.Duration) (*v1alpha1.Cluster, v1alpha1.MasterStatus) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		c := e.get(db.cluster)
		if m := c.Status.Master; m != nil && clusterReady(c) {
			err := sqlExec(db.open, addrOf(*m), db.create...)
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

// writer INSERTs continuously, one row at a time, to where() until
// stopped, logging each acknowledged one in l. It keeps its connection
// while where() stays the same (database/sql drops a broken one).
func (db exampleDB) writer(l *writeLog, name string, where func() string) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var conn *sql.DB
		var connAddr string
		defer func() {
			if conn != nil {
				_ = conn.Close()
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
				_ = conn.Close()
				conn = nil
			}
			w := write{id: fmt.Sprintf("%s-%d", name, seq), addr: addr, sent: time.Now()}
			var err error
			if conn == nil {
				conn, err = db.open(addr)
				connAddr = addr
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err = conn.ExecContext(ctx, "INSERT INTO "+db.table+" VALUES ('"+w.id+"')")
				cancel()
			}
			w.acked = time.Now()
			l.record(w, err)
		}
	}()
	return sync.OnceFunc(func() { close(quit); <-done })
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

// waitExampleReady waits for the example cluster to be Ready with a master
// that has both replicas in sync.
func waitExampleReady(t *testing.T, e *env, db exampleDB) *v1alpha1.Cluster {
	t.Helper()
	c := e.waitFor(db.cluster, 120*time.Second, "Ready with a master", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil
	})
	m := c.Status.Master
	t.Logf("master: ordinal %d at %s:%d, epoch %d", m.Ordinal, m.Hostname, m.Port, m.Epoch)
	db.synced(t, c, 2, 60*time.Second)
	return c
}

// killServer kills -9 the server of task id (its pid on the first line of
// pidFile in its sandbox) and returns when.
func killServer(t *testing.T, work, id, pidFile string) time.Time {
	t.Helper()
	pidText, _, ok := sandboxFile(work, id, pidFile)
	if !ok {
		t.Fatalf("no %s in the sandbox of %s", pidFile, id)
	}
	pid, err := strconv.Atoi(strings.SplitN(pidText, "\n", 2)[0])
	if err != nil {
		t.Fatalf("%s: %q", pidFile, pidText)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	return killed
}

// checkFailovers runs on an example cluster that is Ready with 3 members,
// a client writing to the published master all along (a master lease of
// exampleLease, an election timeout of 5s). It checks: after kill -9 of the
// master's server, a new master and every acknowledged write on it; after a
// partition of the master's agent (Mesos would call it unreachable only
// after 75 s: the lease fences, not Mesos) while a second client keeps
// writing to the old address, a new master, every acknowledged write on it,
// and the old master accepted no write once the new one had; once the agent
// is back, the old master's replacement replicates from the new one and
// holds every acknowledged write.
func checkFailovers(t *testing.T, e *env, work string, db exampleDB) {
	_, master := db.bootstrap(t, e, 60*time.Second)
	log := &writeLog{}
	published := &target{}
	published.set(addrOf(master))
	stopPublished := db.writer(log, "published", published.get)
	defer stopPublished()
	stopFollow := followMaster(e, db.cluster, published)
	defer stopFollow()
	log.waitAcks(t, addrOf(master), time.Time{}, 5, 20*time.Second)

	crashed := killServer(t, work, master.TaskID, db.pidFile)
	second, crashFailover := newMasterAfter(t, e, db, log, master, crashed, "kill -9 of the master's "+strings.TrimSuffix(db.pidFile, ".pid"))
	log.checkOn(t, addrOf(second), db.ids)

	// Three members again, both replicas in sync, before the partition.
	c := e.waitFor(db.cluster, 90*time.Second, "Ready again", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.TaskID == second.TaskID && len(c.Status.Tasks) == 3
	})
	db.synced(t, c, 2, 60*time.Second)

	third, partitionFailover := partitionMaster(t, e, db, log, second, crashed, stopPublished)
	n, lost := log.checkOn(t, addrOf(third), db.ids)
	t.Logf("figures: crash -> first write on the new master %.1fs; partition -> first write on the new master %.1fs; %d acknowledged writes, %d lost",
		crashFailover.Seconds(), partitionFailover.Seconds(), n, lost)
	restorePartitioned(t, e, db, log, second, third)
}

// newMasterAfter waits for a master other than old and for its first
// acknowledged write sent since the fault, and returns that master and how
// long after the fault the write was acknowledged.
func newMasterAfter(t *testing.T, e *env, db exampleDB, log *writeLog, old v1alpha1.MasterStatus, fault time.Time, what string) (v1alpha1.MasterStatus, time.Duration) {
	t.Helper()
	next := *e.waitFor(db.cluster, 60*time.Second, "a new master after the "+what, func(c *v1alpha1.Cluster) bool {
		return c.Status.Master != nil && c.Status.Master.TaskID != old.TaskID
	}).Status.Master
	first := log.waitAcks(t, addrOf(next), fault, 1, 30*time.Second)
	took := first.acked.Sub(fault)
	t.Logf("%s: new master ordinal %d (epoch %d) took its first write %.1fs after it (lease %s, election timeout 5s)",
		what, next.Ordinal, next.Epoch, took.Seconds(), exampleLease)
	return next, took
}

// partitionMaster partitions the agent of the master old while a second
// client keeps writing to the address it knew (the first, stopped with
// stopPublished once the new master took writes, follows the published
// one), and checks that the old master took no write once the new one had.
func partitionMaster(t *testing.T, e *env, db exampleDB, log *writeLog, old v1alpha1.MasterStatus, since time.Time, stopPublished func()) (v1alpha1.MasterStatus, time.Duration) {
	oldAddr := addrOf(old)
	stopStale := db.writer(log, "stale", func() string { return oldAddr })
	defer stopStale()
	log.waitAcks(t, oldAddr, since, 10, 20*time.Second)
	parted := time.Now()
	if err := e.mesos.PartitionAgent(old.Hostname); err != nil {
		t.Fatal(err)
	}
	next, failover := newMasterAfter(t, e, db, log, old, parted, "partition of the master's agent")
	// A few more writes on the new master while the stale client goes on.
	log.waitAcks(t, addrOf(next), parted, 10, 20*time.Second)
	stopStale()
	stopPublished()

	oldLast, newFirst, refused := log.overlap(oldAddr, since, addrOf(next), parted)
	if !oldLast.Before(newFirst) {
		t.Errorf("two masters took writes: the old master %s acknowledged a write at %s, the new one %s took its first (sent) at %s",
			oldAddr, oldLast.Format(time.RFC3339Nano), addrOf(next), newFirst.Format(time.RFC3339Nano))
	}
	if refused == 0 {
		t.Errorf("the stale client's writes to %s were never refused", oldAddr)
	}
	t.Logf("the old master acknowledged its last write %.1fs before the new master's first; %d later writes to it failed (%s)",
		newFirst.Sub(oldLast).Seconds(), refused, log.lastError(oldAddr))
	return next, failover
}

// restorePartitioned brings back the agent of the partitioned master old:
// it is replaced by a member that replicates from the master now, and
// every acknowledged write reaches every member.
func restorePartitioned(t *testing.T, e *env, db exampleDB, log *writeLog, old, now v1alpha1.MasterStatus) {
	if err := e.mesos.RestoreAgent(old.Hostname); err != nil {
		t.Fatal(err)
	}
	c := e.waitFor(db.cluster, 90*time.Second, "the old master replaced", func(c *v1alpha1.Cluster) bool {
		if !clusterReady(c) || c.Status.Master == nil || c.Status.Master.TaskID != now.TaskID || len(c.Status.Tasks) != 3 {
			return false
		}
		for _, ts := range c.Status.Tasks {
			if ts.ID == old.TaskID {
				return false
			}
		}
		return true
	})
	db.synced(t, c, 2, 60*time.Second)
	if err := sqlExec(db.open, addrOf(now), "INSERT INTO "+db.table+" VALUES ('last')"); err != nil {
		t.Fatal(err)
	}
	for _, ts := range c.Status.Tasks {
		db.waitRow(t, taskAddr(ts), "last", 30*time.Second)
		log.checkOn(t, taskAddr(ts), db.ids)
	}
}
