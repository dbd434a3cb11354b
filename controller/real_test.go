package controller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestRealProcesses runs members as real `sh -c` processes under localmesos's
// command executor: Ready, a crash replaced, delete stops every process.
func TestRealProcesses(t *testing.T) {
	work := t.TempDir()
	e := newEnv(t, localmesos.Options{WorkDir: work, Agents: 2})
	e.start()
	e.create(newCluster("sleepers", 2, func(c *v1alpha1.Cluster) {
		c.Spec.Task.Command = `echo "$CONVERGE_NAMESPACE/$CONVERGE_CLUSTER/$CONVERGE_ORDINAL port=$PORT0" > converge-env; exec sleep 1000`
	}))
	c := e.waitReady("sleepers")
	e.checkConverged("sleepers", 2)

	// The task saw its contract variables. RUNNING means the process was
	// started, not that its first command ran: wait for both files.
	var found []string
	e.eventually(10*time.Second, "both members' converge-env files", func() bool {
		found = nil
		_ = filepath.Walk(work, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Name() == "converge-env" {
				if b, _ := os.ReadFile(p); strings.HasSuffix(string(b), "\n") {
					found = append(found, strings.TrimSpace(string(b)))
				}
			}
			return nil
		})
		return len(found) == 2
	})
	if !strings.HasPrefix(found[0], "default/sleepers/") || !strings.Contains(found[0], "port=3") {
		t.Fatalf("task env files = %q", found)
	}

	victim := taskOf(c, 0).ID
	if err := e.mesos.FailTask(victim); err != nil {
		t.Fatal(err)
	}
	e.waitFor("sleepers", 30*time.Second, "replacement", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && taskOf(c, 0).ID != "" && taskOf(c, 0).ID != victim
	})
	e.checkConverged("sleepers", 2)

	if _, _, err := e.st.Delete(context.Background(), "default", "sleepers"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("sleepers", 30*time.Second, "deletion", func(c *v1alpha1.Cluster) bool { return c == nil })
	if left := e.activeTasks(); len(left) != 0 {
		t.Fatalf("tasks left after delete: %v", left)
	}
}
