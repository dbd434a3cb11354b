package controller

import (
	"database/sql"
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

// myDB is the MariaDB example (manifests/examples/mariadb.yaml).
var myDB = exampleDB{
	cluster: "mariadb",
	pidFile: "mariadbd.pid",
	open:    myOpen,
	table:   "converge.writes",
	create: []string{"CREATE DATABASE IF NOT EXISTS converge",
		"CREATE TABLE IF NOT EXISTS converge.writes (id varchar(64) PRIMARY KEY)",
		"INSERT IGNORE INTO converge.writes VALUES ('first')"},
	synced: waitSemiSync,
}

// TestMariaDBExample runs manifests/examples/mariadb.yaml as it is (its hook
// scripts fetched by relative path, as converge dev does) with real MariaDB
// servers under real executors, localmesos, the controller and etcd. It
// checks: Ready with a master and two semi-synchronous replicas; a row
// written on the master reaches every replica; a replica whose server is
// killed comes back on its data (crashStandbyKeepsData); the planned
// handovers (checkHandovers); kill -9 of the master's mariadbd and a
// partition of its agent (checkFailovers).
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

	waitExampleReady(t, e, myDB)
	c, _ := myDB.bootstrap(t, e, 60*time.Second)
	for _, ts := range c.Status.Tasks {
		myDB.waitRow(t, taskAddr(ts), "first", 30*time.Second)
	}
	crashStandbyKeepsData(t, e, work, myDB, func(id string, _ time.Time) bool {
		by, _, ok := sandboxFile(work, id, "created-by")
		return !ok || by == id
	})
	// Planned handovers first, on the healthy cluster: switchover --to, a
	// rolling update (dbhandover_test.go).
	checkHandovers(t, e, myDB)
	checkFailovers(t, e, work, myDB)
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

// waitSemiSync waits for the master of c to have n semi-synchronous
// replicas connected, semi-synchronous replication on.
func waitSemiSync(t *testing.T, c *v1alpha1.Cluster, n int, timeout time.Duration) {
	t.Helper()
	addr := addrOf(*c.Status.Master)
	deadline := time.Now().Add(timeout)
	for {
		got, err := sqlQuery(myOpen, addr, "SELECT CONCAT(@@rpl_semi_sync_master_enabled, ' ', VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'")
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
