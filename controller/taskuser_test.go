package controller

import (
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// TestBuildTaskUserAndKillPolicy: task.user is the user of the command the
// agent runs (the task's, or under an executor the executor's, which also
// gets it in its environment), task.killGracePeriod the task's kill policy
// and, with a margin, its executor's shutdown grace period; unset, neither
// is sent (Mesos's defaults apply).
func TestBuildTaskUserAndKillPolicy(t *testing.T) {
	c, err := New(Config{Store: &store.Store{}, ExecutorURI: "http://artifacts/converge", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	cl := newCluster("db", 1)
	n := Need{Key: "default/db", Namespace: "default", Cluster: "db", TemplateHash: v1alpha1.TemplateHash(&cl.Spec)}
	a := Assignment{AgentID: "S1", Hostname: "127.0.0.2"}

	ti, _ := c.buildTask(cl, n, a, "default.db.0.a")
	if ti.Command.User != nil || ti.KillPolicy != nil {
		t.Fatalf("unset user and grace: command user %v, kill policy %v; want neither", ti.Command.User, ti.KillPolicy)
	}

	cl.Spec.Task.User = "postgres"
	cl.Spec.Task.KillGracePeriod = &metav1.Duration{Duration: 30 * time.Second}
	ti, _ = c.buildTask(cl, n, a, "default.db.0.a")
	if got := ti.Command.GetUser(); got != "postgres" {
		t.Errorf("command user = %q, want postgres", got)
	}
	if got := ti.KillPolicy.GetGracePeriod().GetNanoseconds(); got != int64(30*time.Second) {
		t.Errorf("kill policy grace = %v, want 30s", time.Duration(got))
	}

	positional(cl)
	ti, _ = c.buildTask(cl, n, a, "default.db.0.a")
	if ti.Executor == nil || ti.Command != nil {
		t.Fatalf("position strategy: want the executor, got %+v", ti)
	}
	if got := ti.Executor.Command.GetUser(); got != "postgres" {
		t.Errorf("executor command user = %q, want postgres", got)
	}
	if got := envOf(ti.Executor.Command)[EnvTaskUser]; got != "postgres" {
		t.Errorf("executor env %s = %q, want postgres", EnvTaskUser, got)
	}
	if got := ti.KillPolicy.GetGracePeriod().GetNanoseconds(); got != int64(30*time.Second) {
		t.Errorf("kill policy grace = %v, want 30s", time.Duration(got))
	}
	if got := time.Duration(ti.Executor.ShutdownGracePeriod.GetNanoseconds()); got != 30*time.Second+executorGraceMargin {
		t.Errorf("executor shutdown grace = %v, want %v", got, 30*time.Second+executorGraceMargin)
	}
}

func envOf(c *mesos.CommandInfo) map[string]string {
	env := map[string]string{}
	for _, v := range c.GetEnvironment().GetVariables() {
		env[v.Name] = v.GetValue()
	}
	return env
}
