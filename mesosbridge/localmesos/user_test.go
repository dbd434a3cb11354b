package localmesos

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

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// needRoot skips tests that switch users: only root may.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching a task to another user needs root (run the tests as root)")
	}
}

// traversable opens the work dir's ancestors made by t.TempDir (0700) to
// others, as an agent's work dir (/var/lib/mesos) is: a task run as another
// user must reach its sandbox.
func traversable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestRealTaskUser: CommandInfo.user runs the task with the user's uid and
// gid in a sandbox the user owns; a user the agent does not know drops the
// task before it starts, as Mesos's agent does.
func TestRealTaskUser(t *testing.T) {
	needRoot(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody on this machine: %v", err)
	}
	o := realOptions(t)
	traversable(t, o.WorkDir)
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE))

	off := s.offers(1, 2*time.Second)[0]
	ti := cmdTask("asnobody", off, `id -u > uid && id -g > gid && touch made`)
	name := "nobody"
	ti.Command.User = &name
	s.mustCall(launch(off, ti))
	st := s.reach("asnobody", 5*time.Second, mesos.TASK_FINISHED, mesos.TASK_FAILED)
	if st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("task as nobody: %v", st)
	}
	s.ack(st)
	m.mu.Lock()
	dir := m.sandboxDir(m.agentsByID[off.AgentID.Value], s.fwID, "asnobody")
	m.mu.Unlock()
	if got := readTrim(t, filepath.Join(dir, "uid")); got != nobody.Uid {
		t.Errorf("task uid %s, want nobody's %s", got, nobody.Uid)
	}
	if got := readTrim(t, filepath.Join(dir, "gid")); got != nobody.Gid {
		t.Errorf("task gid %s, want nobody's %s", got, nobody.Gid)
	}
	for _, p := range []string{dir, filepath.Join(dir, "stdout"), filepath.Join(dir, "made")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != nobody.Uid {
			t.Errorf("%s owned by uid %d, want nobody's %s", p, uid, nobody.Uid)
		}
	}

	off = s.offers(1, 2*time.Second)[0]
	ti = cmdTask("nosuchuser", off, `touch ran`)
	missing := "converge-no-such-user"
	ti.Command.User = &missing
	s.mustCall(launch(off, ti))
	st = s.update("nosuchuser", 5*time.Second)
	if st.GetState() != mesos.TASK_DROPPED || st.GetReason() != mesos.REASON_EXECUTOR_TERMINATED ||
		st.GetSource() != mesos.SOURCE_AGENT || !strings.Contains(st.GetMessage(), "Failed to chown directory to 'converge-no-such-user'") {
		t.Fatalf("unknown user: first update %v, want TASK_DROPPED REASON_EXECUTOR_TERMINATED from the agent", st)
	}
}

// procGone: pid is no process or a zombie (init may be slow to reap).
func procGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

// procGroup is pid's process group.
func procGroup(t *testing.T, pid int) int {
	t.Helper()
	s := readTrim(t, "/proc/"+strconv.Itoa(pid)+"/stat")
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	g, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// treeTask ignores SIGTERM, as do its background child and a grandchild
// that left the task's process group and session (setsid); each writes its
// pid to a file of the sandbox.
const treeTask = `trap "" TERM
sleep 1000 & echo $! > child
setsid sh -c 'sleep 1000 & echo $! > escaped; wait' &
echo $$ > leader
wait`

// waitPids waits for the pid files of treeTask in dir.
func waitPids(t *testing.T, dir string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	waitFor(t, 5*time.Second, func() bool {
		for _, f := range []string{"leader", "child", "escaped"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				return false
			}
			pids[f] = pid
		}
		return true
	})
	return pids
}

// TestRealKillProcessTree: a killed task that ignores SIGTERM is SIGKILLed
// after its grace period, and with it every process it started, also one
// that left its process group (Mesos's command executor: os::killtree).
func TestRealKillProcessTree(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	ti := cmdTask("tree", off, treeTask)
	ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(300 * time.Millisecond)}}
	s.mustCall(launch(off, ti))
	s.ack(s.reach("tree", 5*time.Second, mesos.TASK_RUNNING))
	m.mu.Lock()
	dir := m.sandboxDir(m.agentsByID[off.AgentID.Value], s.fwID, "tree")
	m.mu.Unlock()
	pids := waitPids(t, dir)
	if procGroup(t, pids["escaped"]) == procGroup(t, pids["leader"]) {
		t.Fatalf("the escaped process %d is in the task's group: the test proves nothing", pids["escaped"])
	}

	s.mustCall(calls.Kill("tree", off.AgentID.Value))
	s.ack(s.update("tree", 10*time.Second, mesos.TASK_KILLED))
	for name, pid := range pids {
		pid := pid
		waitFor(t, 5*time.Second, func() bool { return procGone(pid) })
		t.Logf("%s (pid %d) is gone", name, pid)
	}
}

// termTask writes its SIGTERM trap's file and exits; "ready" says the trap
// is set.
const termTask = `trap 'echo term > got-term; exit 0' TERM; echo > ready; while :; do sleep 0.05; done`

// TestRealKillSendsSIGTERMFirst: a task that exits on SIGTERM within its
// grace period got SIGTERM (its trap ran), not SIGKILL.
func TestRealKillSendsSIGTERMFirst(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	ti := cmdTask("term", off, termTask)
	ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(time.Minute)}}
	s.mustCall(launch(off, ti))
	s.ack(s.reach("term", 5*time.Second, mesos.TASK_RUNNING))
	m.mu.Lock()
	dir := m.sandboxDir(m.agentsByID[off.AgentID.Value], s.fwID, "term")
	m.mu.Unlock()
	waitFor(t, 5*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "ready")); return err == nil })
	s.mustCall(calls.Kill("term", off.AgentID.Value))
	// Well within the minute of grace: only SIGTERM can have ended it.
	s.ack(s.update("term", 30*time.Second, mesos.TASK_KILLED))
	if got := readTrim(t, filepath.Join(dir, "got-term")); got != "term" {
		t.Fatalf("trap file %q, want term", got)
	}
}

// TestShutdownGraceful: Shutdown (converge dev's Ctrl-C) stops tasks with
// SIGTERM and their grace period: one that traps SIGTERM runs its trap, one
// that ignores it is SIGKILLed after its grace period with its whole tree.
func TestShutdownGraceful(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	offers := s.offers(2, 2*time.Second)
	term := cmdTask("term", offers[0], termTask)
	term.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(time.Minute)}}
	tree := cmdTask("tree", offers[1], treeTask)
	tree.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(300 * time.Millisecond)}}
	s.mustCall(launch(offers[0], term))
	s.mustCall(launch(offers[1], tree))
	for _, id := range []string{"term", "tree"} {
		s.ack(s.reach(id, 5*time.Second, mesos.TASK_RUNNING))
	}
	m.mu.Lock()
	termDir := m.sandboxDir(m.agentsByID[offers[0].AgentID.Value], s.fwID, "term")
	treeDir := m.sandboxDir(m.agentsByID[offers[1].AgentID.Value], s.fwID, "tree")
	m.mu.Unlock()
	waitFor(t, 5*time.Second, func() bool { _, err := os.Stat(filepath.Join(termDir, "ready")); return err == nil })
	pids := waitPids(t, treeDir)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("Shutdown waited 30s: a task outlived its grace period")
	}
	if got := readTrim(t, filepath.Join(termDir, "got-term")); got != "term" {
		t.Fatalf("trap file %q, want term", got)
	}
	for name, pid := range pids {
		pid := pid
		waitFor(t, 5*time.Second, func() bool { return procGone(pid) })
		t.Logf("%s (pid %d) is gone", name, pid)
	}
}
