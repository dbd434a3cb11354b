package controller

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestTaskUserAndKillGraceEndToEnd: a position-elected member with
// task.user nobody runs its command and its hooks as nobody under the
// converge executor the controller supplies, and scaling it away stops it
// with SIGTERM (its trap runs) within its killGracePeriod.
func TestTaskUserAndKillGraceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real executors")
	}
	if os.Geteuid() != 0 {
		t.Skip("switching a task to another user needs root (run the tests as root)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody on this machine: %v", err)
	}
	bin := buildExecutor(t)
	work, marks := t.TempDir(), t.TempDir()
	// The sandboxes and the marks must be reachable by nobody, as an
	// agent's work dir is; t.TempDir makes them 0700.
	for _, d := range []string{work, marks} {
		for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(marks, 0o777); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, localmesos.Options{WorkDir: work, Agents: 1})
	// Fetched into the sandbox (nobody cannot reach the build dir).
	e.cfg.ExecutorURI, e.cfg.ExecutorCommand = bin, "./"+filepath.Base(bin)
	e.start()
	e.create(newCluster("asuser", 1, func(c *v1alpha1.Cluster) {
		positional(c)
		c.Spec.Task.User = "nobody"
		c.Spec.Task.KillGracePeriod = &metav1.Duration{Duration: 30 * time.Second}
		c.Spec.Task.Env["MARKS"] = marks
		c.Spec.Task.Command = `trap 'echo term > "$MARKS/term"; exit 0' TERM; id -u > "$MARKS/task"; while :; do sleep 0.05; done`
		c.Spec.Election.PositionCommand = `id -u > "$MARKS/position"; echo 5`
		c.Spec.Election.PromoteCommand = `id -u > "$MARKS/promote"`
	}))
	e.waitFor("asuser", 60*time.Second, "Ready with a master", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil
	})
	for _, what := range []string{"task", "position", "promote"} {
		b, err := os.ReadFile(filepath.Join(marks, what))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := strings.TrimSpace(string(b)); got != nobody.Uid {
			t.Errorf("%s ran as uid %s, want nobody's %s", what, got, nobody.Uid)
		}
	}

	e.update("asuser", func(c *v1alpha1.Cluster) { c.Spec.Replicas = new(int32) })
	e.waitFor("asuser", 60*time.Second, "no members", func(c *v1alpha1.Cluster) bool {
		return c != nil && len(c.Status.Tasks) == 0
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(marks, "term"))
		if strings.TrimSpace(string(b)) == "term" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member was not stopped with SIGTERM (its trap did not run)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
