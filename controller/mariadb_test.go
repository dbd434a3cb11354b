package controller

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// TestMariaDBExample runs manifests/examples/mariadb.yaml as it is (its hook
// scripts fetched by relative path, as converge dev does) with real MariaDB
// servers under real executors, localmesos, the controller and etcd, a
// master lease of 6s and an election timeout of 5s. A client logs every
// acknowledged INSERT. It checks: Ready with a master; a row written on the
// master reaches every replica; after kill -9 of the master's mariadbd, a
// new master and every acknowledged write on it; after a partition of the
// master's agent (Mesos would call it unreachable only after 75 s: the lease
// fences, not Mesos) while a client keeps writing to the old address, a new
// master, every acknowledged write on it, and the old master accepted no
// write once the new one had; once the agent is back, the old master's
// replacement replicates from the new one and holds every acknowledged write.
func TestMariaDBExample(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real MariaDB servers")
	}
	for _, b := range []string{"mariadbd", "mariadb-install-db", "mariadb"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("MariaDB binaries not installed (%v): apt-get install mariadb-server", err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("the agents must run as root to run MariaDB as user mysql (task.user)")
	}
	// Ports of their own (27000, 28000, 29000), apart from other tests'.
	e, work := startExample(t, "mariadb.yaml", "ports:[27000-27999]")
	// No server may outlive the test (a killed executor's child would).
	t.Cleanup(func() { killSandboxServers(work) })

	c := e.waitFor("mariadb", 120*time.Second, "Ready with a master", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil
	})
	master := *c.Status.Master
	t.Logf("master: ordinal %d at %s:%d, epoch %d", master.Ordinal, master.Hostname, master.Port, master.Epoch)
	waitSemiSync(t, c, 2, 60*time.Second)

	c, master = myBootstrap(t, e, 60*time.Second)
	for _, ts := range c.Status.Tasks {
		myWaitRow(t, taskAddr(ts), "first", 30*time.Second)
	}
	crashStandbyKeepsData(t, e, work, "mariadb", "mariadbd.pid",
		func(addr string) { myWaitRow(t, addr, "first", 30*time.Second) },
		func(id string, _ time.Time) bool {
			by, _, ok := sandboxFile(work, id, "created-by")
			return !ok || by == id
		})

	// Planned handovers first, on the healthy cluster: switchover --to, a
	// rolling update (dbhandover_test.go).
	checkHandovers(t, e, exampleDB{cluster: "mariadb", ids: myWriteIDs, synced: waitSemiSync, writer: myWriter})
	c, master = myBootstrap(t, e, 60*time.Second)

	log := &writeLog{}
	published := &target{}
	published.set(addrOf(master))
	stopPublished := myWriter(log, "published", published.get)
	stopFollow := followMaster(e, "mariadb", published)
	defer stopFollow()
	log.waitAcks(t, addrOf(master), time.Time{}, 5, 20*time.Second)

	// kill -9 of the master's mariadbd.
	pidText, _, ok := sandboxFile(work, master.TaskID, "mariadbd.pid")
	if !ok {
		t.Fatalf("no mariadbd.pid in the sandbox of %s", master.TaskID)
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		t.Fatalf("mariadbd.pid: %q", pidText)
	}
	crashed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	c = e.waitFor("mariadb", 60*time.Second, "a new master after the crash", func(c *v1alpha1.Cluster) bool {
		return c.Status.Master != nil && c.Status.Master.TaskID != master.TaskID
	})
	second := *c.Status.Master
	first := log.waitAcks(t, addrOf(second), crashed, 1, 30*time.Second)
	crashFailover := first.acked.Sub(crashed)
	t.Logf("kill -9 of the master's mariadbd: new master ordinal %d (epoch %d) took its first write %.1fs after the crash (lease %s)",
		second.Ordinal, second.Epoch, crashFailover.Seconds(), exampleLease)
	log.checkOn(t, addrOf(second), myWriteIDs)

	// Three members again, both replicas semi-synchronous, before the
	// partition.
	c = e.waitFor("mariadb", 90*time.Second, "Ready again", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.TaskID == second.TaskID && len(c.Status.Tasks) == 3
	})
	waitSemiSync(t, c, 2, 60*time.Second)

	// Partition the master's agent; a second client keeps writing to the
	// address it knew.
	old := addrOf(second)
	stopStale := myWriter(log, "stale", func() string { return old })
	log.waitAcks(t, old, crashed, 10, 20*time.Second)
	parted := time.Now()
	if err := e.mesos.PartitionAgent(second.Hostname); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("mariadb", 60*time.Second, "a new master after the partition", func(c *v1alpha1.Cluster) bool {
		return c.Status.Master != nil && c.Status.Master.TaskID != second.TaskID
	})
	third := *c.Status.Master
	first = log.waitAcks(t, addrOf(third), parted, 1, 30*time.Second)
	partitionFailover := first.acked.Sub(parted)
	t.Logf("partition of the master's agent: new master ordinal %d (epoch %d) took its first write %.1fs after the partition (lease %s, election timeout 5s)",
		third.Ordinal, third.Epoch, partitionFailover.Seconds(), exampleLease)
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
	n, lost := log.checkOn(t, addrOf(third), myWriteIDs)
	t.Logf("figures: crash -> first write on the new master %.1fs; partition -> first write on the new master %.1fs; %d acknowledged writes, %d lost",
		crashFailover.Seconds(), partitionFailover.Seconds(), n, lost)

	// The agent comes back: the old master is replaced by a member that
	// replicates from the new master; every acknowledged write reaches
	// every member.
	if err := e.mesos.RestoreAgent(second.Hostname); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("mariadb", 90*time.Second, "the old master replaced", func(c *v1alpha1.Cluster) bool {
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
	waitSemiSync(t, c, 2, 60*time.Second)
	if err := myTry(addrOf(third), "INSERT INTO converge.writes VALUES ('last')"); err != nil {
		t.Fatal(err)
	}
	for _, ts := range c.Status.Tasks {
		myWaitRow(t, taskAddr(ts), "last", 30*time.Second)
		log.checkOn(t, taskAddr(ts), myWriteIDs)
	}
}

// killSandboxServers kills every mariadbd whose pid file is under work.
func killSandboxServers(work string) {
	_ = filepath.Walk(work, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "mariadbd.pid" {
			if b, err := os.ReadFile(p); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		return nil
	})
}

// myOpen connects as root (no password) to the MariaDB server at addr.
func myOpen(addr string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", addr
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// myTry runs statements on addr, one after another.
func myTry(addr string, stmts ...string) error {
	db, err := myOpen(addr)
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

// myQuery runs a query of one text column on addr.
func myQuery(addr, q string) ([]string, error) {
	db, err := myOpen(addr)
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

// myBootstrap creates the writes table and its first row on the published
// master, retrying on the master published next should that one stop
// taking writes meanwhile.
func myBootstrap(t *testing.T, e *env, timeout time.Duration) (*v1alpha1.Cluster, v1alpha1.MasterStatus) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		c := e.get("mariadb")
		if m := c.Status.Master; m != nil && clusterReady(c) {
			err := myTry(addrOf(*m), "CREATE DATABASE IF NOT EXISTS converge",
				"CREATE TABLE IF NOT EXISTS converge.writes (id varchar(64) PRIMARY KEY)",
				"INSERT IGNORE INTO converge.writes VALUES ('first')")
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

// myWaitRow waits for the row id to be readable on addr.
func myWaitRow(t *testing.T, addr, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := myQuery(addr, "SELECT id FROM converge.writes WHERE id = '"+id+"'")
		if err == nil && len(got) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("row %q not on %s after %s (%v, %v)", id, addr, timeout, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSemiSync waits for the master of c to have n semi-synchronous
// replicas connected, semi-synchronous replication on.
func waitSemiSync(t *testing.T, c *v1alpha1.Cluster, n int, timeout time.Duration) {
	t.Helper()
	addr := addrOf(*c.Status.Master)
	deadline := time.Now().Add(timeout)
	for {
		got, err := myQuery(addr, "SELECT CONCAT(@@rpl_semi_sync_master_enabled, ' ', VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'")
		if err == nil && len(got) == 1 {
			if on, clients, _ := strings.Cut(got[0], " "); on == "ON" || on == "1" {
				if k, _ := strconv.Atoi(clients); k >= n {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("master %s: semi-sync enabled and clients %v (%v) after %s, want %d clients", addr, got, err, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// myWriter INSERTs continuously, one row at a time, to where() until
// stopped, logging each acknowledged one in l.
func myWriter(l *writeLog, name string, where func() string) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var db *sql.DB
		var dbAddr string
		defer func() {
			if db != nil {
				_ = db.Close()
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
			if db != nil && dbAddr != addr {
				_ = db.Close()
				db = nil
			}
			w := write{id: fmt.Sprintf("%s-%d", name, seq), addr: addr, sent: time.Now()}
			var err error
			if db == nil {
				db, err = myOpen(addr)
				dbAddr = addr
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err = db.ExecContext(ctx, "INSERT INTO converge.writes VALUES (?)", w.id)
				cancel()
			}
			w.acked = time.Now()
			l.record(w, err)
		}
	}()
	return func() { close(quit); <-done }
}

// myWriteIDs reads the ids of the MariaDB test's writes on addr.
func myWriteIDs(addr string) ([]string, error) {
	return myQuery(addr, "SELECT id FROM converge.writes")
}
