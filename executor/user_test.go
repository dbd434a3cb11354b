package executor_test

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/converge-io/converge/election"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// openDir makes dir and the t.TempDir parents above it (0700) reachable by
// another user, as an agent's work dir is; shared also makes it writable.
func openDir(t *testing.T, dir string, shared bool) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if shared {
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExecutorTaskUser: the task and its hooks run as task.user, whether the
// agent started converge executor as that user (ExecutorInfo's
// CommandInfo.user) or the executor runs as root and switches its children
// itself (CONVERGE_TASK_USER).
func TestExecutorTaskUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching a task to another user needs root (run the tests as root)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody on this machine: %v", err)
	}
	bin := buildExecutor(t)
	work, dir := t.TempDir(), t.TempDir()
	openDir(t, work, false)
	openDir(t, dir, true)
	_, s, ctx := startLocalMesos(t, work, false)
	o := s.takeOffer(15 * time.Second)
	ports := offerPorts(o)

	taskCmd := `id -u > "$TEST_DIR/task.$CONVERGE_ORDINAL"; while :; do sleep 0.05; done`
	positionCmd := `id -u > "$TEST_DIR/position.$CONVERGE_ORDINAL"; echo 5`
	promoteCmd := `id -u > "$TEST_DIR/promote.$CONVERGE_ORDINAL"`
	tasks := []mesos.TaskInfo{
		memberTask(o, bin, "testns.db.0.agentswitch", 0, ports[0], taskCmd, positionCmd, promoteCmd, dir, 0),
		memberTask(o, bin, "testns.db.1.selfswitch", 1, ports[1], taskCmd, positionCmd, promoteCmd, dir, 0),
	}
	// Run as nobody by the agent: the executor binary must be in the
	// sandbox (the test's build dir is root's), fetched as in production.
	exe, rel, name := true, "./testexecutor executor", "nobody"
	ex := tasks[0].Executor.Command
	ex.URIs = []mesos.CommandInfo_URI{{Value: bin, Executable: &exe}}
	ex.Value = &rel
	ex.User = &name
	// Run as root, told the task's user.
	v := "nobody"
	tasks[1].Executor.Command.Environment.Variables = append(tasks[1].Executor.Command.Environment.Variables,
		mesos.Environment_Variable{Name: "CONVERGE_TASK_USER", Value: &v})
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(o.ID)))

	for i, ti := range tasks {
		id := ti.TaskID.Value
		s.waitState(id, mesos.TASK_RUNNING, 30*time.Second)
		s.send(ctx, o.AgentID.Value, id, election.Message{Type: election.TypePositionQuery, Epoch: 3, TaskID: id})
		s.waitMessage(20*time.Second, "position of "+id, func(m election.Message) bool {
			return m.Type == election.TypePosition && m.Epoch == 3 && m.TaskID == id
		})
		// The promote command runs once the member holds the master lease.
		s.send(ctx, o.AgentID.Value, id, election.Message{Type: election.TypePromote, Epoch: 3, TaskID: id})
		req := s.waitMessage(20*time.Second, "lease request of "+id, func(m election.Message) bool {
			return m.Type == election.TypeLeaseRequest && m.Epoch == 3 && m.TaskID == id
		})
		s.send(ctx, o.AgentID.Value, id, election.Message{Type: election.TypeLeaseGrant, Epoch: 3, TaskID: id, Seq: req.Seq, LeaseMillis: 60000})
		s.waitMessage(20*time.Second, "promoted of "+id, func(m election.Message) bool {
			return m.Type == election.TypePromoted && m.Epoch == 3 && m.TaskID == id
		})
		for _, what := range []string{"task", "position", "promote"} {
			p := filepath.Join(dir, what+"."+strconv.Itoa(i))
			got := strings.TrimSpace(waitFile(t, p, 10*time.Second, func(s string) bool { return strings.HasSuffix(s, "\n") }))
			if got != nobody.Uid {
				t.Errorf("%s: %s ran as uid %s, want nobody's %s", id, what, got, nobody.Uid)
			}
		}
	}
}

// TestExecutorKillsProcessTree: converge executor's kill ends the task's
// whole tree after the grace period: a background child and a grandchild
// that left the group with setsid, all ignoring SIGTERM.
func TestExecutorKillsProcessTree(t *testing.T) {
	bin := buildExecutor(t)
	work, dir := t.TempDir(), t.TempDir()
	_, s, ctx := startLocalMesos(t, work, false)
	o := s.takeOffer(15 * time.Second)
	tree := `trap "" TERM
sleep 1000 & echo $! > "$TEST_DIR/child"
setsid sh -c 'sleep 1000 & echo $! > "$TEST_DIR/escaped"; wait' &
echo $$ > "$TEST_DIR/leader"
wait`
	ti := memberTask(o, bin, "testns.db.0.tree", 0, offerPorts(o)[0], tree, "", "", dir, 300*time.Millisecond)
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(ti)}.WithOffers(o.ID)))
	s.waitState(ti.TaskID.Value, mesos.TASK_RUNNING, 30*time.Second)
	pids := map[string]int{}
	for _, f := range []string{"leader", "child", "escaped"} {
		s := waitFile(t, filepath.Join(dir, f), 10*time.Second, func(s string) bool { return strings.HasSuffix(s, "\n") })
		pid, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatal(err)
		}
		pids[f] = pid
	}
	if g, err := syscall.Getpgid(pids["escaped"]); err != nil || g == pids["leader"] {
		t.Fatalf("escaped process group %d (%v): not out of the task's group, the test proves nothing", g, err)
	}

	s.mustCall(ctx, calls.Kill(ti.TaskID.Value, o.AgentID.Value))
	s.waitState(ti.TaskID.Value, mesos.TASK_KILLED, 20*time.Second)
	for name, pid := range pids {
		deadline := time.Now().Add(5 * time.Second)
		for !gone(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) outlived its killed task", name, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// gone: pid is no process or a zombie (init may be slow to reap).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

// TestExecutorStopsGracefullyOnShutdown: local Mesos's Shutdown (converge
// dev's Ctrl-C) SIGTERMs converge executor, which stops its task with the
// task's grace period: the task's SIGTERM trap runs.
func TestExecutorStopsGracefullyOnShutdown(t *testing.T) {
	bin := buildExecutor(t)
	work, dir := t.TempDir(), t.TempDir()
	m, s, ctx := startLocalMesos(t, work, false)
	o := s.takeOffer(15 * time.Second)
	serve := `trap 'echo term > "$TEST_DIR/term"; exit 0' TERM; echo up > "$TEST_DIR/up"; while :; do sleep 0.05; done`
	ti := memberTask(o, bin, "testns.db.0.graceful", 0, offerPorts(o)[0], serve, "", "", dir, 30*time.Second)
	// As the controller sets it: the task's grace plus a margin.
	ti.Executor.ShutdownGracePeriod = &mesos.DurationInfo{Nanoseconds: int64(32 * time.Second)}
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(ti)}.WithOffers(o.ID)))
	s.waitState(ti.TaskID.Value, mesos.TASK_RUNNING, 30*time.Second)
	waitFile(t, filepath.Join(dir, "up"), 10*time.Second, func(s string) bool { return s == "up\n" })

	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "term")); got != "term\n" {
		t.Fatalf("the task's SIGTERM trap did not run on Shutdown (marker %q)", got)
	}
}
