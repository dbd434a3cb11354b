package controller

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestPostgresDemoteRestartsInPlace runs the PostgreSQL example's run.sh
// and demote.sh (a switchover) as a Mesos sandbox would, with run.sh slow to
// notice its server's exit, as on a loaded machine: stopped (SIGSTOP) from
// before demote.sh stops the server until demote.sh has finished. run.sh
// must restart the server in place, a standby, rather than take the asked-for
// stop for the server dying by itself and end the member (TASK_FINISHED:
// the old master's task ending by itself during a handover).
func TestPostgresDemoteRestartsInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real PostgreSQL server")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		t.Skipf("PostgreSQL 15 server binaries not installed (%v)", err)
	}
	pg, err := user.Lookup("postgres")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("runs PostgreSQL as user postgres: needs root and that user")
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	sandbox := pgSandbox(t, uid, gid)
	const host, port = "127.0.0.1", 23900 // apart from the example tests' ports
	env := append(os.Environ(), "MESOS_SANDBOX="+sandbox, "HOST="+host, "PORT0="+strconv.Itoa(port), "CONVERGE_ORDINAL=0")
	script := func(name string, extra ...string) *exec.Cmd {
		cmd := exec.Command("sh", "./"+name)
		cmd.Dir, cmd.Env = sandbox, append(env, extra...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setpgid: true}
		return cmd
	}
	run := script("run.sh")
	out, err := os.Create(filepath.Join(sandbox, "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	run.Stdout, run.Stderr = out, out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once run.sh has ended, with runErr
	var runErr error
	go func() { runErr = run.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = run.Process.Signal(syscall.SIGCONT)
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGTERM) // run.sh: a fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
		}
	})
	addr := host + ":" + strconv.Itoa(port)
	waitRecovery := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			r, err := pgQuery(addr, "SELECT pg_is_in_recovery()::text")
			if err == nil && len(r) == 1 && r[0] == "true" {
				return
			}
			select {
			case <-exited:
				t.Fatalf("%s: run.sh ended (%v), the member with it; its log:\n%s", what, runErr, fileTail(sandbox, "run.log"))
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no standby on %s after 60s (%v %v); run.sh's log:\n%s", what, addr, r, err, fileTail(sandbox, "run.log"))
			}
		}
	}
	waitRecovery("started") // a new database with no master: a standby with no upstream

	if err := run.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	demote := script("demote.sh", "CONVERGE_DEMOTE_REASON=switchover")
	if b, err := demote.CombinedOutput(); err != nil {
		t.Fatalf("demote.sh: %v\n%s", err, b)
	}
	if err := run.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitRecovery("after demote.sh")
}

// pgSandbox is a sandbox with the PostgreSQL example's scripts, owned by
// uid (t.TempDir's is root's alone).
func pgSandbox(t *testing.T, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgrestart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	src, err := filepath.Abs("../manifests/examples/postgres")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(src, "*.sh"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the example's scripts in %s: %v", src, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fileTail is the end of a file in dir, for a failure's message.
func fileTail(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
