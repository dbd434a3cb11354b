package executor_test

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// cutProxy is a TCP forwarder between executors and the agent API whose
// connections the test can cut, as an agent restart or a network fault does.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// cut closes every connection and refuses new ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func withEnv(ti *mesos.TaskInfo, k, v string) {
	ti.Executor.Command.Environment.Variables = append(ti.Executor.Command.Environment.Variables,
		mesos.Environment_Variable{Name: k, Value: &v})
}

// executorLog returns the executor's stderr (its log) in the localmesos sandbox.
func executorLog(t *testing.T, work, executorID string) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(work, "agents", "*", "frameworks", "*", "executors", executorID, "runs", "latest", "stderr"))
	if len(paths) == 0 {
		return ""
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitLog(t *testing.T, work, executorID string, re *regexp.Regexp, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !re.MatchString(executorLog(t, work, executorID)) {
		if time.Now().After(deadline) {
			t.Fatalf("executor log never matched %v:\n%s", re, executorLog(t, work, executorID))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With checkpointing, an update the executor could not deliver while the agent
// was unreachable goes out in the SUBSCRIBE call of its re-subscription.
func TestExecutorResubscribesWithUnacknowledgedUpdates(t *testing.T) {
	bin := buildExecutor(t)
	work, dir := t.TempDir(), t.TempDir()
	m, s, ctx := startLocalMesos(t, work, true)
	proxy := startProxy(t, m.URL()[len("http://"):])
	o := s.takeOffer(15 * time.Second)
	ports := offerPorts(o)

	const id = "testns.db.0.resub"
	waitCmd := `echo up > "$TEST_DIR/up"; while [ ! -f "$TEST_DIR/go" ]; do sleep 0.05; done; exit 0`
	ti := memberTask(o, bin, id, 0, ports[0], waitCmd, "", "", dir, 0)
	withEnv(&ti, "MESOS_AGENT_ENDPOINT", proxy.addr()) // the executor reaches the agent through the proxy
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(ti)}.WithOffers(o.ID)))
	s.waitState(id, mesos.TASK_RUNNING, 30*time.Second)
	waitFile(t, filepath.Join(dir, "up"), 10*time.Second, func(s string) bool { return s == "up\n" })

	proxy.cut()
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The task finishes while the agent is unreachable: the update cannot be sent.
	waitLog(t, work, id, regexp.MustCompile(`send status update \(kept for re-subscription\).*TASK_FINISHED`), 20*time.Second)
	s.mu.Lock()
	states := s.states(id)
	s.mu.Unlock()
	for _, st := range states {
		if st == mesos.TASK_FINISHED {
			t.Fatal("TASK_FINISHED arrived through a cut connection")
		}
	}

	proxy.restore()
	st := s.waitState(id, mesos.TASK_FINISHED, 30*time.Second)
	if st.GetSource() != mesos.SOURCE_EXECUTOR {
		t.Errorf("TASK_FINISHED source %v, want the executor's update", st.GetSource())
	}
	waitLog(t, work, id, regexp.MustCompile(`"msg"="subscribing".*"unacknowledgedUpdates"=[1-9]`), time.Second)
	// Acknowledged now: the executor ends.
	s.waitFor(20*time.Second, "the executor's exit", func() bool {
		for _, f := range s.failures {
			if f.ExecutorID != nil && f.ExecutorID.Value == id {
				return true
			}
		}
		return false
	})
	waitLog(t, work, id, regexp.MustCompile(`every task is terminal and acknowledged`), time.Second)
}

// Without checkpointing, an executor that loses its agent kills its task
// (SIGTERM first) and exits, as Mesos's own executors do.
func TestExecutorWithoutCheckpointEndsWhenAgentIsLost(t *testing.T) {
	bin := buildExecutor(t)
	work, dir := t.TempDir(), t.TempDir()
	m, s, ctx := startLocalMesos(t, work, false)
	proxy := startProxy(t, m.URL()[len("http://"):])
	o := s.takeOffer(15 * time.Second)
	ports := offerPorts(o)

	const id = "testns.db.0.lost"
	serveCmd := `trap 'echo term > "$TEST_DIR/term"; exit 0' TERM; echo up > "$TEST_DIR/up"; while :; do sleep 0.05; done`
	ti := memberTask(o, bin, id, 0, ports[0], serveCmd, "", "", dir, 0)
	withEnv(&ti, "MESOS_AGENT_ENDPOINT", proxy.addr())
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(ti)}.WithOffers(o.ID)))
	s.waitState(id, mesos.TASK_RUNNING, 30*time.Second)
	waitFile(t, filepath.Join(dir, "up"), 10*time.Second, func(s string) bool { return s == "up\n" })

	proxy.cut()
	waitFile(t, filepath.Join(dir, "term"), 20*time.Second, func(s string) bool { return s == "term\n" })
	s.waitFor(20*time.Second, "the executor's exit", func() bool {
		for _, f := range s.failures {
			if f.ExecutorID != nil && f.ExecutorID.Value == id {
				return true
			}
		}
		return false
	})
	waitLog(t, work, id, regexp.MustCompile(`does not checkpoint: killing tasks and exiting`), time.Second)
}

// findExecutorPid finds the process whose environment has MESOS_EXECUTOR_ID=id.
func findExecutorPid(t *testing.T, id string) int {
	t.Helper()
	want := []byte("MESOS_EXECUTOR_ID=" + id + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		// The executor itself, not its task's shell (which inherits the variable).
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && filepath.Base(exe) == "testexecutor" {
			return pid
		}
	}
	t.Fatalf("no executor process for %s", id)
	return 0
}

// SIGTERM to the executor (the agent or an operator stopping it) kills its task
// gracefully and reports TASK_KILLED before the executor exits.
func TestExecutorSIGTERMKillsTask(t *testing.T) {
	bin := buildExecutor(t)
	dir := t.TempDir()
	_, s, ctx := startLocalMesos(t, t.TempDir(), false)
	o := s.takeOffer(15 * time.Second)
	ports := offerPorts(o)

	const id = "testns.db.0.sigterm"
	serveCmd := `trap 'echo term > "$TEST_DIR/term"; exit 0' TERM; echo up > "$TEST_DIR/up"; while :; do sleep 0.05; done`
	ti := memberTask(o, bin, id, 0, ports[0], serveCmd, "", "", dir, 0)
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(ti)}.WithOffers(o.ID)))
	s.waitState(id, mesos.TASK_RUNNING, 30*time.Second)
	waitFile(t, filepath.Join(dir, "up"), 10*time.Second, func(s string) bool { return s == "up\n" })

	pid := findExecutorPid(t, id)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := s.waitState(id, mesos.TASK_KILLED, 20*time.Second)
	if st.GetSource() != mesos.SOURCE_EXECUTOR {
		t.Errorf("TASK_KILLED from %v (%q), want the executor's own update", st.GetSource(), st.GetMessage())
	}
	if got := readFile(t, filepath.Join(dir, "term")); got != "term\n" {
		t.Errorf("the task did not see SIGTERM (marker %q)", got)
	}
	s.waitFor(20*time.Second, "the executor's exit", func() bool {
		for _, f := range s.failures {
			if f.ExecutorID != nil && f.ExecutorID.Value == id {
				return true
			}
		}
		return false
	})
}
