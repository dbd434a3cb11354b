package chaos

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// converge builds the converge binary once per test binary (without the
// race detector: the processes it runs are the system under test, and a
// race-built controller is what the package tests of controller cover).
func converge(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "converge-chaos-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "converge")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		cmd := exec.Command(goTool, "build", "-o", binPath, "github.com/converge-io/converge/cmd/converge")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build converge: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type testWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// TestChaosShort is the short form of `make chaos` that CI runs: every
// fault kind at least once within CHAOS_DURATION (default 45s), then full
// convergence and zero invariant violations.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite skipped in -short mode")
	}
	d := 45 * time.Second
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("CHAOS_DURATION: %v", err)
		}
	}
	var seed int64
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	bin := converge(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Binary: bin, Dir: dir, Duration: d, FaultEvery: 3 * time.Second,
		Controllers: 3, Clusters: 3, Replicas: 3, Agents: 5, Masters: 2,
		ConvergeTimeout: 2 * time.Minute, Seed: seed, Out: &testWriter{t: t},
	})
	if err != nil {
		t.Fatalf("chaos suite did not run: %v", err)
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	for _, f := range faultKinds {
		if rep.Injected[f.name] == 0 {
			t.Errorf("fault %s was never injected", f.name)
		}
	}
	if len(rep.TakeoverSeconds) == 0 {
		t.Error("no takeover measured")
	}
	if !rep.OK() {
		for _, name := range []string{"serve-c0", "serve-c1", "serve-c2", "local-mesos"} {
			if b, err := os.ReadFile(filepath.Join(dir, name+".log")); err == nil {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("tail of %s.log:\n%s", name, b)
			}
		}
		t.Fatal("chaos: invariant violated or not converged")
	}
}
