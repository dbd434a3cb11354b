package executor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunHookTrimsStdoutAndUsesEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "CONVERGE_EPOCH=7"}
	res, err := runHook(context.Background(), "position command", `echo "  $CONVERGE_EPOCH:$(pwd)  "; echo >&2 noise`, dir, env, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if want := "7:" + real; res.Stdout != want && res.Stdout != "7:"+dir {
		t.Fatalf("stdout %q, want %q", res.Stdout, want)
	}
}

func TestRunHookFailureQuotesStderrTail(t *testing.T) {
	var sink bytes.Buffer
	_, err := runHook(context.Background(), "promote command", `echo out; echo "cannot promote" >&2; exit 3`, t.TempDir(), []string{"PATH=" + os.Getenv("PATH")}, 5*time.Second, &sink)
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); !strings.Contains(msg, "promote command exited with status 3") || !strings.Contains(msg, "cannot promote") {
		t.Fatalf("error %q", msg)
	}
	if !strings.Contains(sink.String(), "cannot promote") {
		t.Fatalf("stderr not copied to the sink: %q", sink.String())
	}
}

func TestRunHookTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// A background grandchild that would outlive a plain kill of sh, and keep
	// its stdout open for an hour: runHook must return at its timeout anyway.
	script := `sleep 3600 & echo $! > child.pid; wait`
	done := make(chan error, 1)
	go func() {
		_, err := runHook(context.Background(), "position command", script, dir, []string{"PATH=" + os.Getenv("PATH")}, 300*time.Millisecond, nil)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		if b, rerr := os.ReadFile(pidFile); rerr == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatal("runHook did not return at its 300ms timeout: it waits for the grandchild")
	}
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("error %v, want a timeout", err)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive after timeout", pid)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// state is the field after "(comm)".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func TestRunHookOutputLimit(t *testing.T) {
	_, err := runHook(context.Background(), "position command", `head -c 70000 /dev/zero | tr '\0' 1`, t.TempDir(), []string{"PATH=" + os.Getenv("PATH")}, 5*time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("error %v, want output limit", err)
	}
}

func TestDescribeExit(t *testing.T) {
	if code, how := describeExit(nil); code != 0 || how != "exited with status 0" {
		t.Fatalf("nil: %d %q", code, how)
	}
	err := exec.Command("sh", "-c", "exit 4").Run()
	if code, how := describeExit(err); code != 4 || how != "exited with status 4" {
		t.Fatalf("exit 4: %d %q", code, how)
	}
	err = exec.Command("sh", "-c", "kill -TERM $$").Run()
	if code, how := describeExit(err); code != -1 || !strings.Contains(how, "terminated by signal terminated") {
		t.Fatalf("signal: %d %q", code, how)
	}
}

func TestStartProcessOwnGroupAndSignalGroup(t *testing.T) {
	dir := t.TempDir()
	// The script writes "trapped" once its trap is installed (before that, a
	// SIGTERM would kill sh without running the trap) and its background child
	// started: the child leaves only if the whole group is signalled.
	script := `trap 'echo term > got; exit 0' TERM; sleep 30 & echo $! > child.pid; touch trapped; while :; do sleep 0.05; done`
	cmd, err := startProcess([]string{"sh", "-c", script}, dir, []string{"PATH=" + os.Getenv("PATH")})
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := syscall.Getpgid(cmd.Process.Pid)
	if err != nil || pgid != cmd.Process.Pid {
		t.Fatalf("pgid %d err %v, want %d", pgid, err, cmd.Process.Pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(filepath.Join(dir, "trapped")); err != nil; _, err = os.Stat(filepath.Join(dir, "trapped")) {
		if time.Now().After(deadline) {
			_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("the script did not install its trap within 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	if err := signalGroup(cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("process did not end on SIGTERM")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "got")); strings.TrimSpace(string(b)) != "term" {
		t.Fatalf("marker %q", b)
	}
	b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for processAlive(child) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("background child %d outlived the SIGTERM to its group", child)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	if err := signalGroup(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("signal to a gone group: %v", err)
	}
}
