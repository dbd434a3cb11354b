package executor_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildExecutor builds executor/internal/cmd/testexecutor (executor.Run as a main),
// once per test binary; it skips the test under -short (real processes).
func buildExecutor(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs real executor processes")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "converge-testexecutor-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "testexecutor")
		args := []string{"build", "-o", builtBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./internal/cmd/testexecutor")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build testexecutor: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// testScheduler is a minimal framework on mesos-go's httpsched client over real HTTP.
type testScheduler struct {
	t      *testing.T
	caller calls.Caller
	fwID   string

	mu       sync.Mutex
	cond     *sync.Cond
	offers   []mesos.Offer
	updates  []mesos.TaskStatus
	messages []election.Message
	failures []scheduler.Event_Failure
	err      error
}

func newTestScheduler(ctx context.Context, t *testing.T, masterURL string, checkpoint bool) *testScheduler {
	t.Helper()
	cli := httpcli.New(
		httpcli.Endpoint(masterURL+"/api/v1/scheduler"),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
		httpcli.Do(httpcli.With(httpcli.Timeout(10*time.Second))),
	)
	s := &testScheduler{t: t, caller: httpsched.NewCaller(cli)}
	s.cond = sync.NewCond(&s.mu)
	hostname, _ := os.Hostname()
	fi := &mesos.FrameworkInfo{
		User:       "root",
		Name:       "converge-executor-test",
		Hostname:   &hostname,
		Checkpoint: &checkpoint,
		Capabilities: []mesos.FrameworkInfo_Capability{
			{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
		},
	}
	resp, err := s.caller.Call(ctx, calls.Subscribe(fi))
	if err != nil {
		t.Fatalf("subscribe scheduler: %v", err)
	}
	subscribed := make(chan string, 1)
	go func() {
		defer resp.Close()
		for {
			var ev scheduler.Event
			if err := resp.Decode(&ev); err != nil {
				s.mu.Lock()
				s.err = fmt.Errorf("scheduler stream: %w", err)
				s.cond.Broadcast()
				s.mu.Unlock()
				return
			}
			s.handle(ctx, &ev, subscribed)
		}
	}()
	select {
	case s.fwID = <-subscribed:
	case <-time.After(15 * time.Second):
		t.Fatal("no SUBSCRIBED from localmesos")
	}
	go func() { // wake waiters at their deadlines
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.cond.Broadcast()
			}
		}
	}()
	return s
}

func (s *testScheduler) handle(ctx context.Context, ev *scheduler.Event, subscribed chan<- string) {
	switch ev.Type {
	case scheduler.Event_SUBSCRIBED:
		subscribed <- ev.Subscribed.FrameworkID.Value
	case scheduler.Event_OFFERS:
		s.mu.Lock()
		s.offers = append(s.offers, ev.Offers.Offers...)
		s.mu.Unlock()
	case scheduler.Event_UPDATE:
		st := ev.Update.Status
		if len(st.UUID) > 0 {
			resp, err := s.call(ctx, calls.Acknowledge(st.GetAgentID().GetValue(), st.TaskID.Value, st.UUID))
			if resp != nil {
				resp.Close()
			}
			if err != nil {
				s.t.Logf("acknowledge %s %s: %v", st.TaskID.Value, st.GetState(), err)
			}
		}
		s.mu.Lock()
		s.updates = append(s.updates, st)
		s.mu.Unlock()
	case scheduler.Event_MESSAGE:
		m, err := election.Decode(ev.Message.Data)
		if err != nil {
			s.t.Logf("undecodable message from executor %s: %v", ev.Message.ExecutorID.Value, err)
			return
		}
		s.mu.Lock()
		s.messages = append(s.messages, m)
		s.mu.Unlock()
	case scheduler.Event_FAILURE:
		s.mu.Lock()
		s.failures = append(s.failures, *ev.Failure)
		s.mu.Unlock()
	}
	s.cond.Broadcast()
}

func (s *testScheduler) call(ctx context.Context, c *scheduler.Call) (mesos.Response, error) {
	return s.caller.Call(ctx, c.With(calls.Framework(s.fwID)))
}

func (s *testScheduler) mustCall(ctx context.Context, c *scheduler.Call) {
	s.t.Helper()
	resp, err := s.call(ctx, c)
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		s.t.Fatalf("%v call: %v", c.Type, err)
	}
}

// waitFor waits until cond (called with s.mu held) is true, up to d.
func (s *testScheduler) waitFor(d time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	for !cond() {
		if s.err != nil {
			s.t.Fatalf("waiting for %s: %v", what, s.err)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		s.cond.Wait()
	}
}

func (s *testScheduler) states(taskID string) []mesos.TaskState {
	var out []mesos.TaskState
	for _, u := range s.updates {
		if u.TaskID.Value == taskID {
			out = append(out, u.GetState())
		}
	}
	return out
}

// waitState waits for an update of taskID in state and returns it.
func (s *testScheduler) waitState(taskID string, state mesos.TaskState, d time.Duration) mesos.TaskStatus {
	s.t.Helper()
	var got mesos.TaskStatus
	s.waitFor(d, fmt.Sprintf("%s of %s", state, taskID), func() bool {
		for _, u := range s.updates {
			if u.TaskID.Value == taskID && u.GetState() == state {
				got = u
				return true
			}
		}
		return false
	})
	return got
}

// waitMessage waits for an election message matching pred and returns it.
func (s *testScheduler) waitMessage(d time.Duration, what string, pred func(election.Message) bool) election.Message {
	s.t.Helper()
	var got election.Message
	s.waitFor(d, what, func() bool {
		for _, m := range s.messages {
			if pred(m) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// takeOffer waits for an offer and removes it from the pending list.
func (s *testScheduler) takeOffer(d time.Duration) mesos.Offer {
	s.t.Helper()
	var o mesos.Offer
	s.waitFor(d, "an offer", func() bool {
		if len(s.offers) == 0 {
			return false
		}
		o = s.offers[0]
		s.offers = s.offers[1:]
		return true
	})
	return o
}

func (s *testScheduler) send(ctx context.Context, agentID, executorID string, m election.Message) {
	s.t.Helper()
	s.mustCall(ctx, calls.Message(agentID, executorID, m.Encode()))
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func offerPorts(o mesos.Offer) []uint64 {
	var ports []uint64
	for _, r := range o.Resources {
		if r.Name == "ports" && r.Ranges != nil {
			for _, rg := range r.Ranges.Range {
				for p := rg.Begin; p <= rg.End && len(ports) < 64; p++ {
					ports = append(ports, p)
				}
			}
		}
	}
	return ports
}

// memberTask builds a converge member task run by the test executor, with the
// environment contract of controller/doc.go on ExecutorInfo.command.environment.
func memberTask(o mesos.Offer, bin, taskID string, ordinal int, port uint64, taskCmd, positionCmd, promoteCmd, dir string, grace time.Duration) mesos.TaskInfo {
	vars := map[string]string{
		"CONVERGE_NAMESPACE":         "testns",
		"CONVERGE_CLUSTER":           "db",
		"CONVERGE_ORDINAL":           fmt.Sprint(ordinal),
		"CONVERGE_TASK_ID":           taskID,
		"PORT0":                      fmt.Sprint(port),
		"PORTS":                      fmt.Sprint(port),
		"CONVERGE_TASK_COMMAND":      taskCmd,
		"CONVERGE_POSITION_COMMAND":  positionCmd,
		"CONVERGE_PROMOTE_COMMAND":   promoteCmd,
		"CONVERGE_ELECTION_STRATEGY": "position",
		"TEST_DIR":                   dir,
	}
	env := &mesos.Environment{}
	for k, v := range vars {
		v := v
		env.Variables = append(env.Variables, mesos.Environment_Variable{Name: k, Value: &v})
	}
	shell := true
	name := "converge executor"
	ti := mesos.TaskInfo{
		Name:    fmt.Sprintf("testns/db-%d", ordinal),
		TaskID:  mesos.TaskID{Value: taskID},
		AgentID: o.AgentID,
		Resources: []mesos.Resource{
			scalar("cpus", 0.1), scalar("mem", 32),
			{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: port, End: port}}}},
		},
		Executor: &mesos.ExecutorInfo{
			Type:       mesos.ExecutorInfo_CUSTOM,
			ExecutorID: mesos.ExecutorID{Value: taskID},
			Name:       &name,
			Resources:  []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
			Command:    &mesos.CommandInfo{Shell: &shell, Value: &bin, Environment: env},
		},
	}
	if grace > 0 {
		ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(grace)}}
	}
	return ti
}

// checkNoDataRace fails the test if an executor built with -race reported a race
// in its log.
func checkNoDataRace(t *testing.T, dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "stderr" {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
				t.Errorf("data race in the executor, see %s", p)
			}
		}
		return nil
	})
}

// dumpSandboxLogs logs every stdout and stderr file under dir (the executors'
// logs) when the test failed or runs verbose.
func dumpSandboxLogs(t *testing.T, dir string) {
	if !t.Failed() && !testing.Verbose() {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == "stderr" || d.Name() == "stdout") {
			if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("==> %s <==\n%s", p, b)
			}
		}
		return nil
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// waitFile polls until p exists with content satisfying ok.
func waitFile(t *testing.T, p string, d time.Duration, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := readFile(t, p)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (content %q)", p, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLocalMesos runs a one-agent local Mesos with real processes, its
// sandboxes in work, and subscribes a test scheduler (checkpoint: whether
// its framework checkpoints). The context ends with the test, at the
// latest after 2 minutes; cleanup closes Mesos, fails the test on a data
// race an executor reported, and logs the sandboxes' output if it failed.
func startLocalMesos(t *testing.T, work string, checkpoint bool) (*localmesos.Mesos, *testScheduler, context.Context) {
	t.Helper()
	m, err := localmesos.New(localmesos.Options{
		Listen:             "127.0.0.1:0",
		Agents:             1,
		WorkDir:            work,
		AllocationInterval: 100 * time.Millisecond,
		ResendInterval:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		checkNoDataRace(t, work)
		dumpSandboxLogs(t, work)
	})
	return m, newTestScheduler(ctx, t, m.URL(), checkpoint), ctx
}

func TestExecutorUnderLocalMesos(t *testing.T) {
	bin := buildExecutor(t)
	work := t.TempDir()
	dir := t.TempDir()
	_, s, ctx := startLocalMesos(t, work, false)
	o := s.takeOffer(15 * time.Second)
	agentID := o.AgentID.Value
	ports := offerPorts(o)
	if len(ports) < 5 {
		t.Fatalf("offer has %d ports", len(ports))
	}

	const gtid = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7"
	positionCmd := `echo "$CONVERGE_EPOCH $CONVERGE_NAMESPACE $CONVERGE_CLUSTER $CONVERGE_ORDINAL $PORT0" > "$TEST_DIR/position-env.$CONVERGE_ORDINAL"; echo "  ` + gtid + `  "`
	promoteCmd := `sleep 0.3; echo "$CONVERGE_EPOCH $CONVERGE_ORDINAL" >> "$TEST_DIR/promoted"`
	serveCmd := `trap 'echo term > "$TEST_DIR/term.$CONVERGE_ORDINAL"; exit 0' TERM
echo "$CONVERGE_NAMESPACE $CONVERGE_CLUSTER $CONVERGE_ORDINAL $PORT0 $CONVERGE_TASK_ID" > "$TEST_DIR/task-env.$CONVERGE_ORDINAL"
pwd > "$TEST_DIR/task-pwd.$CONVERGE_ORDINAL"
while :; do sleep 0.05; done`
	stubbornCmd := `trap '' TERM; echo up > "$TEST_DIR/stubborn"; while :; do sleep 0.05; done`

	tasks := []mesos.TaskInfo{
		memberTask(o, bin, "testns.db.0.serve", 0, ports[0], serveCmd, positionCmd, promoteCmd, dir, 3*time.Second),
		memberTask(o, bin, "testns.db.1.finish", 1, ports[1], `test "$CONVERGE_ORDINAL" = 1 && exit 0; exit 9`, positionCmd, promoteCmd, dir, 0),
		memberTask(o, bin, "testns.db.2.fail", 2, ports[2], `exit 3`, positionCmd, promoteCmd, dir, 0),
		memberTask(o, bin, "testns.db.3.stubborn", 3, ports[3], stubbornCmd, "", "", dir, 500*time.Millisecond),
		memberTask(o, bin, "testns.db.4.nohooks", 4, ports[4], serveCmd, `[ "$CONVERGE_EPOCH" = 7 ] && exit 5; echo not-a-position`, "", dir, 0),
	}
	// As in production ("./converge executor" fetched from --executor-uri), one
	// executor is fetched into its sandbox as an executable URI and run from there.
	exe, rel := true, "./testexecutor executor"
	tasks[1].Executor.Command.URIs = []mesos.CommandInfo_URI{{Value: bin, Executable: &exe}}
	tasks[1].Executor.Command.Value = &rel
	s.mustCall(ctx, calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(o.ID)))

	serve, finish, fail, stubborn, nohooks := tasks[0].TaskID.Value, tasks[1].TaskID.Value, tasks[2].TaskID.Value, tasks[3].TaskID.Value, tasks[4].TaskID.Value

	t.Run("exit gives FINISHED or FAILED", func(t *testing.T) {
		s.waitState(finish, mesos.TASK_FINISHED, 30*time.Second)
		st := s.waitState(fail, mesos.TASK_FAILED, 30*time.Second)
		if !strings.Contains(st.GetMessage(), "status 3") {
			t.Errorf("TASK_FAILED message %q does not name exit status 3", st.GetMessage())
		}
		if st.GetSource() != mesos.SOURCE_EXECUTOR || len(st.UUID) != 16 {
			t.Errorf("TASK_FAILED source %v uuid %d bytes", st.GetSource(), len(st.UUID))
		}
	})

	t.Run("RUNNING with uuid and the task environment", func(t *testing.T) {
		st := s.waitState(serve, mesos.TASK_RUNNING, 30*time.Second)
		if len(st.UUID) != 16 || st.GetSource() != mesos.SOURCE_EXECUTOR {
			t.Errorf("TASK_RUNNING uuid %x source %v", st.UUID, st.GetSource())
		}
		s.mu.Lock()
		states := s.states(serve)
		s.mu.Unlock()
		if len(states) < 2 || states[0] != mesos.TASK_STARTING || states[1] != mesos.TASK_RUNNING {
			t.Errorf("updates of %s: %v, want STARTING then RUNNING", serve, states)
		}
		env := waitFile(t, filepath.Join(dir, "task-env.0"), 10*time.Second, func(s string) bool { return strings.HasSuffix(s, "\n") })
		if want := fmt.Sprintf("testns db 0 %d %s\n", ports[0], serve); env != want {
			t.Errorf("task env %q, want %q", env, want)
		}
		pwd := strings.TrimSpace(waitFile(t, filepath.Join(dir, "task-pwd.0"), 10*time.Second, func(s string) bool { return s != "" }))
		if !strings.HasPrefix(pwd, work) && !strings.HasPrefix(pwd, mustEval(t, work)) {
			t.Errorf("task ran in %q, not in a sandbox under %q", pwd, work)
		}
	})

	t.Run("position query answered by the position command", func(t *testing.T) {
		s.send(ctx, agentID, serve, election.Message{Type: election.TypePositionQuery, Epoch: 7, TaskID: serve})
		m := s.waitMessage(20*time.Second, "position of epoch 7", func(m election.Message) bool {
			return m.Type == election.TypePosition && m.Epoch == 7 && m.TaskID == serve
		})
		if m.Error != "" || m.Position != gtid {
			t.Errorf("position answer %+v, want position %q", m, gtid)
		}
		if env := readFile(t, filepath.Join(dir, "position-env.0")); env != fmt.Sprintf("7 testns db 0 %d\n", ports[0]) {
			t.Errorf("position command env %q", env)
		}
		// A failing position command is answered with Error.
		s.waitState(nohooks, mesos.TASK_RUNNING, 30*time.Second)
		s.send(ctx, agentID, nohooks, election.Message{Type: election.TypePositionQuery, Epoch: 7, TaskID: nohooks})
		m = s.waitMessage(20*time.Second, "failed position of epoch 7", func(m election.Message) bool {
			return m.Type == election.TypePosition && m.Epoch == 7 && m.TaskID == nohooks
		})
		if m.Error == "" || m.Position != "" || !strings.Contains(m.Error, "status 5") {
			t.Errorf("answer of a failing position command: %+v", m)
		}
		// Output that is no position is an error too.
		s.send(ctx, agentID, nohooks, election.Message{Type: election.TypePositionQuery, Epoch: 10, TaskID: nohooks})
		m = s.waitMessage(20*time.Second, "invalid position of epoch 10", func(m election.Message) bool {
			return m.Type == election.TypePosition && m.Epoch == 10 && m.TaskID == nohooks
		})
		if m.Error == "" || m.Position != "" || !strings.Contains(m.Error, "no valid position") {
			t.Errorf("answer of a position command printing garbage: %+v", m)
		}
	})

	t.Run("promote runs once per epoch", func(t *testing.T) {
		isPromoted := func(epoch int64) func(election.Message) bool {
			return func(m election.Message) bool {
				return m.Type == election.TypePromoted && m.Epoch == epoch && m.TaskID == serve
			}
		}
		// The member asks for the master lease and promotes only once it
		// holds it (controller/lease.go).
		grant := func(epoch int64) {
			req := s.waitMessage(20*time.Second, "a lease request", func(m election.Message) bool {
				return m.Type == election.TypeLeaseRequest && m.Epoch == epoch && m.TaskID == serve
			})
			if _, err := os.Stat(filepath.Join(dir, "promoted")); epoch == 8 && !os.IsNotExist(err) {
				t.Fatalf("promote command ran before the lease was granted (%v)", err)
			}
			s.send(ctx, agentID, serve, election.Message{Type: election.TypeLeaseGrant, Epoch: epoch, TaskID: serve,
				Seq: req.Seq, LeaseMillis: (10 * time.Minute).Milliseconds()})
		}
		// Twice at once (the second while the first runs), then again once done.
		s.send(ctx, agentID, serve, election.Message{Type: election.TypePromote, Epoch: 8, TaskID: serve})
		grant(8)
		s.send(ctx, agentID, serve, election.Message{Type: election.TypePromote, Epoch: 8, TaskID: serve})
		m := s.waitMessage(20*time.Second, "promoted of epoch 8", isPromoted(8))
		if m.Error != "" {
			t.Fatalf("promoted %+v", m)
		}
		s.waitFor(20*time.Second, "two promoted confirmations", func() bool {
			n := 0
			for _, m := range s.messages {
				if isPromoted(8)(m) {
					n++
				}
			}
			return n >= 2
		})
		s.send(ctx, agentID, serve, election.Message{Type: election.TypePromote, Epoch: 8, TaskID: serve})
		s.waitFor(20*time.Second, "a third promoted confirmation", func() bool {
			n := 0
			for _, m := range s.messages {
				if isPromoted(8)(m) {
					n++
				}
			}
			return n >= 3
		})
		if got := readFile(t, filepath.Join(dir, "promoted")); got != "8 0\n" {
			t.Fatalf("promote command ran %q, want once for epoch 8", got)
		}
		// A new epoch runs it again.
		s.send(ctx, agentID, serve, election.Message{Type: election.TypePromote, Epoch: 9, TaskID: serve})
		grant(9)
		if m := s.waitMessage(20*time.Second, "promoted of epoch 9", isPromoted(9)); m.Error != "" {
			t.Fatalf("promoted %+v", m)
		}
		if got := readFile(t, filepath.Join(dir, "promoted")); got != "8 0\n9 0\n" {
			t.Fatalf("promote command ran %q", got)
		}
	})

	t.Run("kill sends SIGTERM then TASK_KILLED", func(t *testing.T) {
		s.mustCall(ctx, calls.Kill(serve, agentID))
		st := s.waitState(serve, mesos.TASK_KILLED, 20*time.Second)
		if got := readFile(t, filepath.Join(dir, "term.0")); got != "term\n" {
			t.Errorf("the task did not see SIGTERM (marker %q)", got)
		}
		if st.GetSource() != mesos.SOURCE_EXECUTOR {
			t.Errorf("TASK_KILLED source %v", st.GetSource())
		}
		s.mu.Lock()
		states := s.states(serve)
		s.mu.Unlock()
		if n := len(states); n < 2 || states[n-2] != mesos.TASK_KILLING {
			t.Errorf("updates %v: want TASK_KILLING before TASK_KILLED (framework has TASK_KILLING_STATE)", states)
		}
	})

	t.Run("kill escalates to SIGKILL after the grace period", func(t *testing.T) {
		s.waitState(stubborn, mesos.TASK_RUNNING, 30*time.Second)
		waitFile(t, filepath.Join(dir, "stubborn"), 10*time.Second, func(s string) bool { return s == "up\n" })
		start := time.Now()
		s.mustCall(ctx, calls.Kill(stubborn, agentID))
		st := s.waitState(stubborn, mesos.TASK_KILLED, 20*time.Second)
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Errorf("TASK_KILLED after %v, before the 500ms grace period", d)
		}
		if !strings.Contains(st.GetMessage(), "signal killed") {
			t.Errorf("TASK_KILLED message %q, want SIGKILL", st.GetMessage())
		}
	})

	t.Run("executors exit after their terminal update", func(t *testing.T) {
		// Every executor whose task is terminal ends; the master reports each as
		// a FAILURE with its executor id.
		want := map[string]bool{finish: true, fail: true, serve: true, stubborn: true}
		s.waitFor(30*time.Second, "executor exits", func() bool {
			for _, f := range s.failures {
				if f.ExecutorID != nil {
					delete(want, f.ExecutorID.Value)
				}
			}
			return len(want) == 0
		})
	})

	// The last task goes with a SHUTDOWN of its executor.
	t.Run("shutdown kills the task and ends the executor", func(t *testing.T) {
		s.mustCall(ctx, calls.Shutdown(nohooks, agentID))
		s.waitState(nohooks, mesos.TASK_KILLED, 20*time.Second)
		if got := readFile(t, filepath.Join(dir, "term.4")); got != "term\n" {
			t.Errorf("the task did not see SIGTERM on SHUTDOWN (marker %q)", got)
		}
	})
}

func mustEval(t *testing.T, p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
