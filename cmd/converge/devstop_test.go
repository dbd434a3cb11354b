package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/converge-io/converge/store"
)

// TestDevCtrlCStopsTasksGracefully builds converge, runs `converge dev` as a
// process, starts a member that traps SIGTERM, sends dev SIGINT (Ctrl-C) and
// checks that the member got SIGTERM (its trap wrote its file) before dev
// exited, rather than a SIGKILL.
func TestDevCtrlCStopsTasksGracefully(t *testing.T) {
	marks := t.TempDir()
	dev, out, errOut, exited, e := startDevProcess(t)
	m := `apiVersion: converge.io/v1alpha1
kind: Cluster
metadata:
  name: graceful
spec:
  replicas: 1
  task:
    command: |
      trap 'echo term > ` + marks + `/term; exit 0' TERM
      echo up > ` + marks + `/up
      while :; do sleep 0.05; done
    killGracePeriod: 30s
    resources: {cpus: 0.1, mem: 32Mi}
`
	expect(t, e.run("", "apply", "-f", e.file("graceful.yaml", m), "--wait", "--timeout", "60s"), 0, "cluster/graceful ready")
	waitUntil(t, 30*time.Second, "the member to run", func() bool { _, err := os.Stat(filepath.Join(marks, "up")); return err == nil })

	if err := dev.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("dev exited with %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("dev did not stop within 60s of SIGINT\nstdout:\n%s", out.String())
	}
	b, err := os.ReadFile(filepath.Join(marks, "term"))
	if err != nil || strings.TrimSpace(string(b)) != "term" {
		t.Fatalf("the member's SIGTERM trap did not run (%q, %v): it was not stopped gracefully\nstdout:\n%s\nstderr:\n%s", b, err, out.String(), errOut.String())
	}
}

// startDevProcess builds converge and runs `converge dev` as a
// process on free ports (one agent, no Kubernetes API) until it says it
// runs; exited gets its Wait result (the test puts it back after reading
// it). e talks to its etcd.
func startDevProcess(t *testing.T) (dev *exec.Cmd, out, errOut *syncBuffer, exited chan error, e *env) {
	t.Helper()
	return startDevProcessIn(t, t.TempDir(), "--agents", "1", "--api-listen", "")
}

// startDevProcessIn is startDevProcess with data dir data and dev's flags
// extra.
func startDevProcessIn(t *testing.T, data string, extra ...string) (dev *exec.Cmd, out, errOut *syncBuffer, exited chan error, e *env) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs converge dev")
	}
	bin := buildConverge(t)
	etcdURL := freeURL(t)
	out, errOut = &syncBuffer{}, &syncBuffer{}
	dev = exec.Command(bin, append([]string{"dev", "--data-dir", data, "--etcd-client-url", etcdURL,
		"--mesos-listen", "127.0.0.1:0", "--http", ""}, extra...)...)
	dev.Stdout, dev.Stderr = out, errOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- dev.Wait() }()
	t.Cleanup(func() {
		// Ctrl-C first, as a user would: dev stops its tasks and their
		// executors. After a SIGKILL each `converge executor` outlives it,
		// waiting for its agent as Mesos's do (recovery timeout).
		_ = dev.Process.Signal(os.Interrupt)
		select {
		case <-exited:
			return
		case <-time.After(30 * time.Second):
		}
		_ = dev.Process.Kill()
		<-exited
	})
	waitUntil(t, 60*time.Second, "dev to start", func() bool { return strings.Contains(out.String(), "Press Ctrl-C") })
	return dev, out, errOut, exited, &env{t: t, endpoint: etcdURL, prefix: store.DefaultPrefix, dir: t.TempDir()}
}

var (
	convergeOnce sync.Once
	convergeBin  string
	convergeErr  error
)

// TestMain removes the converge binary the tests built, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if convergeBin != "" {
		_ = os.RemoveAll(filepath.Dir(convergeBin))
	}
	os.Exit(code)
}

// buildConverge builds converge once per test binary (as the controller
// package's buildExecutor): each dev process test runs it.
func buildConverge(t *testing.T) string {
	t.Helper()
	convergeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "converge-bin-")
		if err != nil {
			convergeErr = err
			return
		}
		convergeBin = filepath.Join(dir, "converge")
		if b, err := exec.Command("go", "build", "-o", convergeBin, ".").CombinedOutput(); err != nil {
			convergeErr = fmt.Errorf("go build: %v\n%s", err, b)
		}
	})
	if convergeErr != nil {
		t.Fatal(convergeErr)
	}
	return convergeBin
}

// TestDevSecondCtrlCKillsAtOnce: while converge dev waits for a task that
// ignores SIGTERM (an hour of grace), a second Ctrl-C kills it and dev exits.
func TestDevSecondCtrlCKillsAtOnce(t *testing.T) {
	marks := t.TempDir()
	dev, out, _, exited, e := startDevProcess(t)
	m := `apiVersion: converge.io/v1alpha1
kind: Cluster
metadata:
  name: stubborn
spec:
  replicas: 1
  task:
    command: |
      trap '' TERM
      echo $$ > ` + marks + `/pid
      while :; do sleep 0.05; done
    killGracePeriod: 1h
    resources: {cpus: 0.1, mem: 32Mi}
`
	expect(t, e.run("", "apply", "-f", e.file("stubborn.yaml", m), "--wait", "--timeout", "60s"), 0, "cluster/stubborn ready")
	var pid int
	waitUntil(t, 30*time.Second, "the member to run", func() bool {
		b, err := os.ReadFile(filepath.Join(marks, "pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	if err := dev.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "dev to stop its tasks", func() bool { return strings.Contains(out.String(), "Ctrl-C again") })
	if err := dev.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("dev exited with %v\nstdout:\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("dev did not stop within 60s of the second SIGINT\nstdout:\n%s", out.String())
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("the member (pid %d) outlived dev", pid)
	}
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
