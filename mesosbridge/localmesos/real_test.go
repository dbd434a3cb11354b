package localmesos

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func realOptions(t *testing.T) Options {
	o := testOptions()
	o.Simulate = false
	o.WorkDir = t.TempDir()
	return o
}

func tarGz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestRealCommandTask(t *testing.T) {
	o := realOptions(t)
	m := startMesos(t, o)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "data.txt"), []byte("local-file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bundle.tgz"), tarGz(t, map[string]string{"inner/x.txt": "from-archive"}), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "#!/bin/sh\necho from-http\n") }))
	defer srv.Close()

	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	port := offerPorts(off)[0].Begin
	ti := cmdTask("env", off, `echo "$PORT0 $PORTS $MESOS_TASK_ID $HOST $FOO $MESOS_AGENT_ID" > out && cat data.txt >> out && cat inner/x.txt >> out && ./tool.sh >> out && test "$MESOS_SANDBOX" = "$(pwd)"`,
		scalar("cpus", 0.1), scalar("mem", 32), portsRes(port, port+1))
	foo := "bar"
	exe := true
	out := "tool.sh"
	ti.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "FOO", Value: &foo}}}
	ti.Command.URIs = []mesos.CommandInfo_URI{
		{Value: filepath.Join(src, "data.txt")},
		{Value: "file://" + filepath.Join(src, "bundle.tgz")},
		{Value: srv.URL + "/tool", Executable: &exe, OutputFile: &out},
	}
	s.mustCall(launch(off, ti))
	s.ack(s.update("env", 5*time.Second, mesos.TASK_STARTING))
	s.ack(s.update("env", 5*time.Second, mesos.TASK_RUNNING))
	st := s.update("env", 5*time.Second, mesos.TASK_FINISHED, mesos.TASK_FAILED)
	if st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("task: %v", st)
	}
	s.ack(st)
	m.mu.Lock()
	dir := m.sandboxDir(m.agentsByID[off.AgentID.Value], s.fwID, "env")
	m.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %d,%d env %s bar %s\nlocal-filefrom-archivefrom-http\n", port, port, port+1, off.Hostname, off.AgentID.Value)
	if string(b) != want {
		t.Fatalf("task output %q, want %q", b, want)
	}

	// Non-zero exit: TASK_FAILED.
	off = s.offers(1, 2*time.Second)[0]
	s.mustCall(launch(off, cmdTask("fail", off, "exit 3")))
	st = s.reach("fail", 5*time.Second, mesos.TASK_FAILED, mesos.TASK_FINISHED)
	if st.GetState() != mesos.TASK_FAILED || !strings.Contains(st.GetMessage(), "3") {
		t.Fatalf("exit 3: %v", st)
	}
}

func TestRealKillAndClose(t *testing.T) {
	o := realOptions(t)
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	offers := s.offers(3, 2*time.Second)
	// A task that ignores SIGTERM is SIGKILLed after its grace period.
	stubborn := cmdTask("stubborn", offers[0], `trap "" TERM; echo $$ > pid; while true; do sleep 0.05; done`)
	stubborn.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(200 * time.Millisecond)}}
	s.mustCall(launch(offers[0], stubborn))
	s.mustCall(launch(offers[1], cmdTask("sleeper", offers[1], "echo $$ > pid; exec sleep 1000")))
	for _, id := range []string{"stubborn", "sleeper"} {
		s.ack(s.reach(id, 5*time.Second, mesos.TASK_RUNNING))
	}
	start := time.Now()
	s.mustCall(calls.Kill("stubborn", offers[0].AgentID.Value))
	st := s.update("stubborn", 5*time.Second, mesos.TASK_KILLED)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("killed after %v, before the grace period", d)
	}
	s.ack(st)

	m.mu.Lock()
	dir := m.sandboxDir(m.agentsByID[offers[1].AgentID.Value], s.fwID, "sleeper")
	m.mu.Unlock()
	var pid int
	waitFor(t, 2*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
}

func buildExecutor(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testexecutor")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/testexecutor")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build executor: %v\n%s", err, out)
	}
	return bin
}

func TestCustomExecutor(t *testing.T) {
	bin := buildExecutor(t)
	for _, codec := range []encoding.Codec{pbCodec, jsonCodec} {
		codec := codec
		t.Run(codecName(codec), func(t *testing.T) {
			t.Parallel()
			m := startMesos(t, realOptions(t))
			s := subscribe(t, m.URL(), codec, frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
			off := s.offers(1, 2*time.Second)[0]
			execTask := func(id string, o mesos.Offer, data string) mesos.TaskInfo {
				cmd := "exec " + bin
				envName := "TEST_EXECUTOR_CODEC"
				val := codec.Name
				return mesos.TaskInfo{
					Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
					Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
					Data:      []byte(data),
					Executor: &mesos.ExecutorInfo{
						ExecutorID: mesos.ExecutorID{Value: id},
						Command:    &mesos.CommandInfo{Value: &cmd, Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: envName, Value: &val}}}},
						Resources:  []mesos.Resource{scalar("cpus", 0.05), scalar("mem", 16)},
					},
				}
			}
			s.mustCall(launch(off, execTask("e1", off, "")))
			st := s.update("e1", 10*time.Second)
			if st.GetState() != mesos.TASK_RUNNING || st.GetSource() != mesos.SOURCE_EXECUTOR || st.ExecutorID.GetValue() != "e1" || len(st.UUID) != 16 {
				t.Fatalf("executor update %v", st)
			}
			s.ack(st)
			// Bad executor calls.
			eurl := m.URL() + "/api/v1/executor"
			badUUID := `{"type":"UPDATE","framework_id":{"value":"` + s.fwID + `"},"executor_id":{"value":"e1"},"update":{"status":{"task_id":{"value":"e1"},"state":"TASK_RUNNING","uuid":"AAAA"}}}`
			unknown := `{"type":"MESSAGE","framework_id":{"value":"` + s.fwID + `"},"executor_id":{"value":"nope"},"message":{"data":"aGk="}}`
			for body, want := range map[string]int{badUUID: 400, unknown: 400, `{"type":`: 400} {
				if resp, text := rawPost(t, eurl, "application/json", "", []byte(body)); resp.StatusCode != want {
					t.Errorf("executor call %s: %d %s", body, resp.StatusCode, text)
				}
			}
			if resp, _ := rawPost(t, eurl, "text/plain", "", []byte(unknown)); resp.StatusCode != 415 {
				t.Errorf("executor content type: %d", resp.StatusCode)
			}
			// Framework messages both ways.
			s.mustCall(calls.Message(off.AgentID.Value, "e1", []byte("hi")))
			ev := s.next(scheduler.Event_MESSAGE, 5*time.Second)
			if string(ev.Message.Data) != "echo:hi" || ev.Message.ExecutorID.Value != "e1" || ev.Message.AgentID != off.AgentID {
				t.Fatalf("message %v", ev.Message)
			}
			// Offers list the running executor.
			m.RescindOffers()
			for _, o := range s.offers(3, 3*time.Second) {
				if o.AgentID == off.AgentID {
					if len(o.ExecutorIDs) != 1 || o.ExecutorIDs[0].Value != "e1" {
						t.Fatalf("offer executor ids %v", o.ExecutorIDs)
					}
				}
			}
			if st := m.State(); st.Frameworks[0].Tasks[0].ExecutorID != "e1" {
				t.Fatalf("state %+v", st.Frameworks[0].Tasks)
			}
			// KILL goes to the executor; it answers KILLED, and exits once acknowledged.
			s.mustCall(calls.Kill("e1", off.AgentID.Value))
			st = s.update("e1", 5*time.Second, mesos.TASK_KILLED)
			s.ack(st)
			ev = s.next(scheduler.Event_FAILURE, 5*time.Second)
			if ev.Failure.ExecutorID.GetValue() != "e1" || ev.Failure.GetStatus() != 0 {
				t.Fatalf("failure %v", ev.Failure)
			}

			// An executor that crashes: its task is TASK_LOST, as the agent reports it.
			m.RescindOffers()
			off = s.offers(1, 3*time.Second)[0]
			s.mustCall(launch(off, execTask("e2", off, "crash")))
			s.ack(s.update("e2", 10*time.Second, mesos.TASK_RUNNING))
			// The FAILURE event and the (acknowledgement-paced) TASK_FAILED come in either order.
			var failure *scheduler.Event_Failure
			st = nil
			for failure == nil || st == nil {
				ev := s.wait(5*time.Second, func(e *scheduler.Event) bool {
					return e.Type == scheduler.Event_FAILURE || e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == "e2"
				})
				if ev == nil {
					t.Fatalf("failure %v, status %v", failure, st)
				}
				if ev.Type == scheduler.Event_FAILURE {
					failure = ev.Failure
				} else if isTerminal(ev.Update.Status.GetState()) {
					st = &ev.Update.Status
				}
			}
			if st.GetState() != mesos.TASK_LOST || st.GetReason() != mesos.REASON_EXECUTOR_TERMINATED || st.GetSource() != mesos.SOURCE_AGENT {
				t.Fatalf("crash: %v", st)
			}
			if failure.ExecutorID.GetValue() != "e2" || failure.GetStatus() == 0 {
				t.Fatalf("failure %v", failure)
			}
		})
	}
}

func customTask(bin, id string, o mesos.Offer) mesos.TaskInfo {
	cmd := "exec " + bin
	return mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
		Executor: &mesos.ExecutorInfo{
			ExecutorID:          mesos.ExecutorID{Value: id},
			Command:             &mesos.CommandInfo{Value: &cmd},
			ShutdownGracePeriod: &mesos.DurationInfo{Nanoseconds: int64(time.Second)},
		},
	}
}

func TestShutdownAndTeardownStopExecutors(t *testing.T) {
	bin := buildExecutor(t)
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	offers := s.offers(2, 2*time.Second)
	s.mustCall(launch(offers[0], customTask(bin, "x1", offers[0])))
	s.mustCall(launch(offers[1], customTask(bin, "x2", offers[1])))
	s.ack(s.reach("x1", 10*time.Second, mesos.TASK_RUNNING))
	s.ack(s.reach("x2", 10*time.Second, mesos.TASK_RUNNING))

	// SHUTDOWN: the executor gets SHUTDOWN and exits; its task is KILLED.
	s.mustCall(calls.Shutdown("x1", offers[0].AgentID.Value))
	st := s.update("x1", 5*time.Second)
	if st.GetState() != mesos.TASK_KILLED || st.GetReason() != mesos.REASON_EXECUTOR_TERMINATED {
		t.Fatalf("after shutdown: %v", st)
	}
	s.ack(st)

	// TEARDOWN kills the remaining executor process.
	m.mu.Lock()
	p := m.executors[s.fwID+"/x2"].proc
	m.mu.Unlock()
	if p == nil {
		t.Fatal("no process for x2")
	}
	pid := p.cmd.Process.Pid
	s.mustCall(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
	waitFor(t, 5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
}

func TestLoseAgentFreezesProcesses(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	o := s.offers(1, 2*time.Second)[0]
	s.mustCall(launch(o, cmdTask("ticker", o, `while true; do echo x >> ticks; sleep 0.02; done`)))
	s.ack(s.reach("ticker", 5*time.Second, mesos.TASK_RUNNING))
	m.mu.Lock()
	ticks := filepath.Join(m.sandboxDir(m.agentsByID[o.AgentID.Value], s.fwID, "ticker"), "ticks")
	m.mu.Unlock()
	size := func() int64 {
		fi, err := os.Stat(ticks)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	waitFor(t, 2*time.Second, func() bool { return size() > 0 })
	if err := m.LoseAgent(o.AgentID.Value); err != nil {
		t.Fatal(err)
	}
	s.update("ticker", 2*time.Second, mesos.TASK_UNREACHABLE)
	time.Sleep(100 * time.Millisecond)
	frozen := size()
	time.Sleep(200 * time.Millisecond)
	if size() != frozen {
		t.Fatal("process kept running on a lost agent")
	}
	if err := m.RestoreAgent(o.AgentID.Value); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return size() > frozen })
	s.mustCall(calls.Reconcile())
	if st := s.update("ticker", 2*time.Second); st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("after restore: %v", st)
	}
	if st := m.State(); len(st.Frameworks[0].Tasks) != 1 || st.Slaves[0].UsedResources.CPUs == 0 && st.Slaves[1].UsedResources.CPUs == 0 && st.Slaves[2].UsedResources.CPUs == 0 {
		t.Fatalf("state after restore: %+v", st.Frameworks[0])
	}
}

func TestKillBeforeExecutorSubscribes(t *testing.T) {
	bin := buildExecutor(t)
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	o := s.offers(1, 2*time.Second)[0]
	ti := customTask(bin, "slow", o)
	slow := "sleep 0.5; exec " + bin
	ti.Executor.Command.Value = &slow
	s.mustCall(launch(o, ti))
	s.mustCall(calls.Kill("slow", o.AgentID.Value))
	st := s.update("slow", 5*time.Second)
	if st.GetState() != mesos.TASK_KILLED || st.GetReason() != mesos.REASON_TASK_KILLED_DURING_LAUNCH {
		t.Fatalf("%v", st)
	}
	s.ack(st)
	// The executor subscribes later and gets no LAUNCH: no further update.
	if ev := s.wait(time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_UPDATE }); ev != nil {
		t.Fatalf("unexpected update %v", ev.Update.Status)
	}
}

// Executor ids are unique per agent only (mesos-go's example scheduler uses
// "default" everywhere): each agent serves its own executor API endpoint.
func TestSameExecutorIDOnTwoAgents(t *testing.T) {
	bin := buildExecutor(t)
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	offers := s.offers(2, 2*time.Second)
	for i, o := range offers[:2] {
		ti := customTask(bin, fmt.Sprintf("d%d", i), o)
		ti.Executor.ExecutorID.Value = "default"
		s.mustCall(launch(o, ti))
	}
	for i := range 2 {
		st := s.reach(fmt.Sprintf("d%d", i), 10*time.Second, mesos.TASK_RUNNING)
		if st.ExecutorID.GetValue() != "default" {
			t.Fatalf("%v", st)
		}
		s.ack(st)
	}
	// Messages reach the executor on the named agent.
	s.mustCall(calls.Message(offers[1].AgentID.Value, "default", []byte("two")))
	ev := s.next(scheduler.Event_MESSAGE, 5*time.Second)
	if ev.Message.AgentID != offers[1].AgentID || string(ev.Message.Data) != "echo:two" {
		t.Fatalf("message %v", ev.Message)
	}
	for _, a := range m.State().Slaves[:2] {
		if a.Port == 5051 || !strings.HasSuffix(a.PID, strconv.Itoa(a.Port)) {
			t.Fatalf("agent endpoint %+v", a)
		}
	}
}
