package controller

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// pgBin is where Debian's PostgreSQL 15 server binaries live (installed on
// every machine of this project, CI included).
const pgBin = "/usr/lib/postgresql/15/bin"

// pgDB is the PostgreSQL example (manifests/examples/postgres.yaml).
var pgDB = exampleDB{
	cluster: "postgres",
	pidFile: "postmaster.pid",
	open:    pgOpen,
	table:   "writes",
	create: []string{"CREATE TABLE IF NOT EXISTS writes (id text PRIMARY KEY)",
		"INSERT INTO writes VALUES ('first') ON CONFLICT DO NOTHING"},
	synced: waitStandbys,
}

// TestPostgresExample runs manifests/examples/postgres.yaml as it is (its
// hook scripts fetched by relative path, as converge dev does) with real
// PostgreSQL servers under real executors, localmesos, the controller and
// etcd. It checks: Ready with a master and two synchronous standbys that
// are running servers; a row written on the master reaches every standby;
// a standby whose server is killed comes back on its data
// (crashStandbyKeepsData); the planned handovers (checkHandovers); kill -9
// of the master's postgres and a partition of its agent (checkFailovers).
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

	c := waitExampleReady(t, e, pgDB)
	// The synchronous standbys counted are running servers: a copy in
	// progress (pg_basebackup) must not count as one (--no-slot, run.sh).
	for _, ts := range c.Status.Tasks {
		if ts.ID == c.Status.Master.TaskID {
			continue
		}
		if r, err := pgQuery(taskAddr(ts), "SELECT pg_is_in_recovery()::text"); err != nil || len(r) != 1 || r[0] != "true" {
			t.Fatalf("synchronous standbys counted while member %d is no running standby: %v %v", ts.Ordinal, r, err)
		}
	}

	c, _ = pgDB.bootstrap(t, e, 60*time.Second)
	for _, ts := range c.Status.Tasks {
		pgDB.waitRow(t, taskAddr(ts), "first", 30*time.Second)
	}
	crashStandbyKeepsData(t, e, work, pgDB, func(id string, crashed time.Time) bool {
		_, made, ok := sandboxFile(work, id, "PG_VERSION")
		return !ok || made.After(crashed)
	})
	// Planned handovers first, on the healthy cluster: switchover --to, a
	// rolling update (dbhandover_test.go).
	checkHandovers(t, e, pgDB)
	checkFailovers(t, e, work, pgDB)
}

// pgOpen connects as postgres to database postgres at host:port.
func pgOpen(addr string) (*sql.DB, error) {
	host, port, _ := strings.Cut(addr, ":")
	db, err := sql.Open("pgx", fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres connect_timeout=2 sslmode=disable", host, port))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// pgQuery runs a query of one text column on the server at addr.
func pgQuery(addr, q string) ([]string, error) { return sqlQuery(pgOpen, addr, q) }

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
