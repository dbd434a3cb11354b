package controller

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

var (
	executorOnce sync.Once
	executorBin  string
	executorErr  error
)

// buildExecutor builds `converge executor` (the executor package's test main,
// executor.Run alone) once per test binary.
func buildExecutor(t *testing.T) string {
	t.Helper()
	executorOnce.Do(func() {
		dir, err := os.MkdirTemp("", "controller-executor-")
		if err != nil {
			executorErr = err
			return
		}
		executorBin = filepath.Join(dir, "converge-executor")
		out, err := exec.Command("go", "build", "-o", executorBin, "github.com/converge-io/converge/executor/internal/cmd/testexecutor").CombinedOutput()
		if err != nil {
			executorErr = fmt.Errorf("go build the executor: %v\n%s", err, out)
		}
	})
	if executorErr != nil {
		t.Fatal(executorErr)
	}
	return executorBin
}

// newExecutorEnv returns an env, not yet started, whose members run under
// real `converge executor` processes, on a localmesos with o; its sandboxes
// are in the directory it returns (o.WorkDir, or a new one). It skips the
// test under -short.
func newExecutorEnv(t *testing.T, o localmesos.Options) (*env, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs real executors")
	}
	bin := buildExecutor(t)
	if o.WorkDir == "" {
		o.WorkDir = t.TempDir()
	}
	e := newEnv(t, o)
	e.cfg.ExecutorCommand = bin
	return e, o.WorkDir
}

// TestPositionElectionRealExecutors runs members under real `converge executor`
// processes: the controller supplies the executor (strategy position, no
// executor in the spec), members answer position queries by running
// positionCommand, the highest wins and runs promoteCommand.
func TestPositionElectionRealExecutors(t *testing.T) {
	e, work := newExecutorEnv(t, localmesos.Options{Agents: 3})
	e.start()
	e.create(newCluster("mysql", 3, func(c *v1alpha1.Cluster) {
		c.Spec.Task.Command = "exec sleep 1000"
		c.Spec.Election.Strategy = v1alpha1.ElectionPosition
		c.Spec.Election.PositionCommand = `echo $((CONVERGE_ORDINAL * 10 + 5))`
		c.Spec.Election.PromoteCommand = `touch "promoted-$CONVERGE_EPOCH"`
	}))
	c := e.waitFor("mysql", 60*time.Second, "Ready", clusterReady)
	m := c.Status.Master
	if m == nil || m.Ordinal != 2 {
		t.Fatalf("master = %+v, want ordinal 2 (position 25)", m)
	}
	e.checkConverged("mysql", 3)
	// promoteCommand ran once, in the winner's sandbox, with its epoch.
	var promoted []string
	_ = filepath.Walk(work, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), "promoted-") {
			promoted = append(promoted, p)
		}
		return nil
	})
	if len(promoted) != 1 || !strings.HasSuffix(promoted[0], fmt.Sprintf("promoted-%d", m.Epoch)) || !strings.Contains(promoted[0], m.TaskID) {
		t.Fatalf("promote markers = %v (master %s epoch %d)", promoted, m.TaskID, m.Epoch)
	}

	// The master's process dies: re-election under epoch+1.
	if err := e.mesos.FailTask(m.TaskID); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("mysql", 60*time.Second, "re-election", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.TaskID != m.TaskID
	})
	if c.Status.Master.Epoch != m.Epoch+1 {
		t.Fatalf("re-elected master = %+v, want epoch %d", c.Status.Master, m.Epoch+1)
	}
	e.checkConverged("mysql", 3)
}
