package checks

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func f64(f float64) *float64 { return &f }
func u32(u uint32) *uint32   { return &u }

// reports collects what a checker reports, for waiting on.
type reports[T any] struct {
	mu  sync.Mutex
	got []T
}

func (r *reports[T]) add(v T) { r.mu.Lock(); r.got = append(r.got, v); r.mu.Unlock() }

func (r *reports[T]) list() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.got...)
}

// waitN waits (with a deadline) until n reports are in.
func (r *reports[T]) waitN(t *testing.T, n int) []T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := r.list(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reports after 10s, want %d: %+v", len(r.list()), n, r.list())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runs counts the lines a command check appended to a file: how many
// times it ran.
func runs(t *testing.T, path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

func waitRuns(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runs(t, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("check ran %d times in 10s, want %d", runs(t, path), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func shell(cmd string) *mesos.CommandInfo {
	yes := true
	return &mesos.CommandInfo{Shell: &yes, Value: &cmd}
}

// TestHealthGraceAndConsecutiveFailures is Mesos's HealthCheckTest.GracePeriod,
// HealthStatusChange and ConsecutiveFailures (src/tests/health_check_tests.cpp)
// against health_checker.cpp's rules: failures within the grace period are
// not reported until a check passes; the first pass is reported; after it
// every failure is, with its count, and kill_task at consecutive_failures; a
// pass after failures is reported again.
func TestHealthGraceAndConsecutiveFailures(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	hc := &mesos.HealthCheck{
		Type:    mesos.HealthCheck_COMMAND,
		Command: shell(`echo >> runs; test -f healthy`),
		// Env reaches the command (HealthCheckTest.EnvironmentSetup).
		DelaySeconds: f64(0), IntervalSeconds: f64(0.02), TimeoutSeconds: f64(5),
		GracePeriodSeconds: f64(3600), ConsecutiveFailures: u32(2),
	}
	var got reports[HealthStatus]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := RunHealth(ctx, hc, Target{Dir: dir}, got.add); err != nil {
		t.Fatal(err)
	}
	waitRuns(t, log, 3)
	if r := got.list(); len(r) != 0 {
		t.Fatalf("failures within the grace period were reported: %+v", r)
	}
	touch(t, filepath.Join(dir, "healthy"))
	if r := got.waitN(t, 1); !r[0].Healthy {
		t.Fatalf("first report after the first pass: %+v", r[0])
	}
	os.Remove(filepath.Join(dir, "healthy"))
	// The grace period no longer applies once a check passed.
	r := got.waitN(t, 3)
	if r[1].Healthy || r[1].ConsecutiveFailures != 1 || r[1].KillTask || r[2].ConsecutiveFailures != 2 || !r[2].KillTask {
		t.Fatalf("failures after a pass: %+v", r[1:3])
	}
	touch(t, filepath.Join(dir, "healthy"))
	waitFor(t, func() bool { l := got.list(); return l[len(l)-1].Healthy })
	n := len(got.list())
	waitRuns(t, log, runs(t, log)+3)
	if m := len(got.list()); m != n {
		t.Fatalf("passes after the first one after failures were reported: %+v", got.list()[n:])
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthTimeout is HealthCheckTest.CheckCommandTimeout: a check that
// outlives timeout_seconds is a failure, and its process is killed.
func TestHealthTimeout(t *testing.T) {
	dir := t.TempDir()
	hc := &mesos.HealthCheck{
		Type:         mesos.HealthCheck_COMMAND,
		Command:      shell(`echo $$ > pid; exec sleep 60`),
		DelaySeconds: f64(0), IntervalSeconds: f64(10), TimeoutSeconds: f64(0.2),
		GracePeriodSeconds: f64(0), ConsecutiveFailures: u32(1),
	}
	var got reports[HealthStatus]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := RunHealth(ctx, hc, Target{Dir: dir, Env: os.Environ()}, got.add); err != nil {
		t.Fatal(err)
	}
	r := got.waitN(t, 1)
	if r[0].Healthy || !r[0].KillTask || !strings.Contains(r[0].Why, "timed out") {
		t.Fatalf("timed-out check: %+v", r[0])
	}
	b, _ := os.ReadFile(filepath.Join(dir, "pid"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %q", b)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("the timed-out check's process %d still runs", pid)
	}
}

// TestCheckReportsChanges is CommandExecutorCheckTest.CommandCheckStatusChange
// (src/tests/check_tests.cpp) against checker.cpp: a CheckStatusInfo is
// reported when it differs from the previous one, only then.
func TestCheckReportsChanges(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	ci := &mesos.CheckInfo{
		Type:         mesos.CheckInfo_COMMAND,
		Command:      &mesos.CheckInfo_Command{Command: *shell(`echo >> runs; test -f ready`)},
		DelaySeconds: f64(0), IntervalSeconds: f64(0.02), TimeoutSeconds: f64(5),
	}
	var got reports[mesos.CheckStatusInfo]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := RunCheck(ctx, ci, Target{Dir: dir}, got.add); err != nil {
		t.Fatal(err)
	}
	r := got.waitN(t, 1)
	if Passed(&r[0]) || r[0].Command.GetExitCode() != 1 {
		t.Fatalf("first report: %+v", r[0])
	}
	waitRuns(t, log, 3)
	if n := len(got.list()); n != 1 {
		t.Fatalf("unchanged results reported: %+v", got.list())
	}
	touch(t, filepath.Join(dir, "ready"))
	r = got.waitN(t, 2)
	if !Passed(&r[1]) {
		t.Fatalf("second report: %+v", r[1])
	}
	waitRuns(t, log, runs(t, log)+3)
	if n := len(got.list()); n != 2 {
		t.Fatalf("unchanged results reported: %+v", got.list())
	}
}

// TestHTTPAndTCP is HealthCheckTest.HealthyTaskViaHTTP / ViaTCP and
// CommandExecutorCheckTest.HTTPCheckDelivered / TCPCheckDelivered: 200..399
// passes, other codes and refused connections fail.
func TestHTTPAndTCP(t *testing.T) {
	var code atomic.Int32
	code.Store(503)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(404)
			return
		}
		if code.Load() == 302 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	host, portStr, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(portStr)
	tgt := Target{Host: host}

	ci := &mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: uint32(port), Path: strPtr("/health")},
		DelaySeconds: f64(0), IntervalSeconds: f64(0.02), TimeoutSeconds: f64(5)}
	var got reports[mesos.CheckStatusInfo]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := RunCheck(ctx, ci, tgt, got.add); err != nil {
		t.Fatal(err)
	}
	if r := got.waitN(t, 1); Passed(&r[0]) || r[0].HTTP.GetStatusCode() != 503 {
		t.Fatalf("503: %+v", r[0])
	}
	code.Store(302) // a redirect to a path that answers 404: followed, as curl -L
	if r := got.waitN(t, 2); Passed(&r[1]) || r[1].HTTP.GetStatusCode() != 404 {
		t.Fatalf("redirect to 404: %+v", r[1])
	}
	code.Store(200)
	if r := got.waitN(t, 3); !Passed(&r[2]) {
		t.Fatalf("200: %+v", r[2])
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	hc := &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: uint32(tcpPort)},
		DelaySeconds: f64(0), IntervalSeconds: f64(0.02), GracePeriodSeconds: f64(0), ConsecutiveFailures: u32(1)}
	var health reports[HealthStatus]
	if err := RunHealth(ctx, hc, Target{}, health.add); err != nil {
		t.Fatal(err)
	}
	if r := health.waitN(t, 1); !r[0].Healthy {
		t.Fatalf("open port: %+v", r[0])
	}
	ln.Close()
	if r := health.waitN(t, 2); r[1].Healthy || !r[1].KillTask {
		t.Fatalf("closed port: %+v", r[1])
	}
}

func strPtr(s string) *string { return &s }

func TestValidateAndHost(t *testing.T) {
	if err := Validate(&mesos.HealthCheck{}); err == nil {
		t.Error("a health check without a type is valid")
	}
	if err := ValidateCheck(&mesos.CheckInfo{Type: mesos.CheckInfo_HTTP}); err == nil {
		t.Error("an HTTP check without http is valid")
	}
	if err := RunHealth(context.Background(), &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND}, Target{}, func(HealthStatus) {}); err == nil {
		t.Error("RunHealth ran a command check without a command")
	}
	for in, want := range map[string]string{"127.0.0.3": "127.0.0.3", "10.1.2.3": "127.0.0.1", "": "127.0.0.1", "agent.example": "127.0.0.1"} {
		if got := Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}
