package localmesos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	execpb "github.com/mesos/mesos-go/api/v1/lib/executor"
	execcalls "github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// The partition tests follow apache/mesos src/tests/partition_tests.cpp:
// ReregisterSlavePartitionAware (line 496: TASK_UNREACHABLE with
// REASON_SLAVE_REMOVED at 601-602, TASK_RUNNING again after re-registration at
// 740), ReregisterSlaveNotPartitionAware (860: TASK_LOST with unreachable_time at
// 962-965, TASK_RUNNING again at 1054, nothing killed at 1127) and
// PartitionedSlaveStatusUpdates (1979: no update crosses while partitioned, 2076;
// forwarded after re-registration, 2097).

// TestPartitionHelperServer is no test of its own: a task of
// TestPartitionAgentServesOn runs the test binary with PARTITION_HELPER_SERVER=1,
// and this serves HTTP on $HOST:$PORT0, answering with its pid, as a service
// whose clients must keep being served through a partition.
func TestPartitionHelperServer(t *testing.T) {
	if os.Getenv("PARTITION_HELPER_SERVER") != "1" {
		t.Skip("the server run as a task by TestPartitionAgentServesOn")
	}
	addr := net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT0"))
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getpid())
	}))
	t.Fatal(err)
}

// serverTask runs TestPartitionHelperServer on the offer's first port.
func serverTask(t *testing.T, id string, o mesos.Offer) (mesos.TaskInfo, string) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port := offerPorts(o)[0].Begin
	shell := false
	ti := cmdTask(id, o, "", scalar("cpus", 0.1), scalar("mem", 32), portsRes(port, port))
	ti.Command = &mesos.CommandInfo{
		Value:     &bin,
		Arguments: []string{bin, "-test.run=^TestPartitionHelperServer$"},
		Shell:     &shell,
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{
			{Name: "PARTITION_HELPER_SERVER", Value: ptrString("1")},
		}},
	}
	return ti, net.JoinHostPort(o.Hostname, strconv.FormatUint(port, 10))
}

func ptrString(s string) *string { return &s }

// serving asks the server at addr for its pid ("" if it does not answer).
func serving(addr string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// watch reads events until f holds for one, which it returns; every event read
// is appended to *log. It fails the test after d.
func (s *sched) watch(log *[]*scheduler.Event, d time.Duration, what string, f func(*scheduler.Event) bool) *scheduler.Event {
	s.t.Helper()
	ev := s.wait(d, func(e *scheduler.Event) bool {
		*log = append(*log, e)
		return f(e)
	})
	if ev == nil {
		s.t.Fatalf("no %s within %v", what, d)
	}
	return ev
}

func isUpdate(id string, state mesos.TaskState) func(*scheduler.Event) bool {
	return func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == id && e.Update.Status.GetState() == state
	}
}

func isReconciliation(id string) func(*scheduler.Event) bool {
	return func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == id &&
			e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
	}
}

func offerOf(e *scheduler.Event, agent mesos.AgentID) *mesos.Offer {
	if e.Type != scheduler.Event_OFFERS {
		return nil
	}
	for i := range e.Offers.Offers {
		if e.Offers.Offers[i].AgentID == agent {
			return &e.Offers.Offers[i]
		}
	}
	return nil
}

func reconcileOne(id string, agent mesos.AgentID) *scheduler.Call {
	return calls.Reconcile(calls.ReconcileTasks(map[string]string{id: agent.Value}))
}

// A partition-aware framework's task on a partitioned agent: its process serves
// clients throughout; the agent's offer is rescinded and it gets no other; the
// master reports the task RUNNING until it notices (AgentUnreachableAfter), then
// TASK_UNREACHABLE with unreachable_time, FAILURE{agent_id}, and UNREACHABLE to
// reconciliation. On restore the framework gets TASK_RUNNING
// (REASON_AGENT_REREGISTERED, master.cpp __reregisterSlave), from the same
// process, and offers of the agent come back.
func TestPartitionAgentServesOn(t *testing.T) {
	const delay = time.Second
	o := realOptions(t)
	o.AgentUnreachableAfter = delay
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("pa", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	off := s.offers(1, 2*time.Second)[0]
	agent := off.AgentID
	ti, addr := serverTask(t, "srv", off)
	s.mustCall(launch(off, ti))
	s.ack(s.reach("srv", 10*time.Second, mesos.TASK_RUNNING))
	var pid string
	waitFor(t, 10*time.Second, func() bool { pid = serving(addr); return pid != "" })
	var log []*scheduler.Event
	ev := s.watch(&log, 3*time.Second, "an offer of the task's agent", func(e *scheduler.Event) bool { return offerOf(e, agent) != nil })
	agentOffer := offerOf(ev, agent).ID

	start := time.Now()
	postFault(t, m, "/fault/agent/partition?agent="+off.Hostname)
	log = nil
	s.watch(&log, 2*time.Second, "RESCIND of the agent's offer", func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_RESCIND && e.Rescind.OfferID == agentOffer
	})
	// Offer rounds go on: the other agents' offers, rescinded, come back.
	m.RescindOffers()
	others := map[mesos.AgentID]bool{}
	s.watch(&log, 3*time.Second, "offers of the two other agents", func(e *scheduler.Event) bool {
		if e.Type == scheduler.Event_OFFERS {
			for _, of := range e.Offers.Offers {
				if of.AgentID != agent {
					others[of.AgentID] = true
				}
			}
		}
		return len(others) >= 2
	})
	if got := serving(addr); got != pid {
		t.Fatalf("partitioned task serves %q, want pid %s", got, pid)
	}
	s.mustCall(reconcileOne("srv", agent))
	rec := s.watch(&log, 2*time.Second, "reconciliation of srv", isReconciliation("srv"))
	if rec.Update.Status.GetState() != mesos.TASK_RUNNING && time.Since(start) < delay {
		t.Fatalf("before the master notices, reconciliation answered %v", rec.Update.Status.GetState())
	}

	ev = s.watch(&log, 10*time.Second, "TASK_UNREACHABLE", isUpdate("srv", mesos.TASK_UNREACHABLE))
	unr := ev.Update.Status
	notBefore := start.Add(delay).UnixNano()
	if unr.UnreachableTime == nil || unr.UnreachableTime.Nanoseconds < notBefore || int64(unr.GetTimestamp()*1e9) < notBefore-int64(time.Millisecond) {
		t.Fatalf("TASK_UNREACHABLE sooner than %v after the partition, or without unreachable_time: %v", delay, unr)
	}
	if unr.GetSource() != mesos.SOURCE_MASTER || unr.GetReason() != mesos.REASON_AGENT_REMOVED || len(unr.UUID) != 0 || *unr.AgentID != agent {
		t.Fatalf("unreachable update %v", unr)
	}
	ev = s.watch(&log, 2*time.Second, "FAILURE", func(e *scheduler.Event) bool { return e.Type == scheduler.Event_FAILURE })
	if *ev.Failure.AgentID != agent || ev.Failure.ExecutorID != nil {
		t.Fatalf("failure %v", ev.Failure)
	}
	if got := serving(addr); got != pid {
		t.Fatalf("unreachable task serves %q, want pid %s", got, pid)
	}
	s.mustCall(reconcileOne("srv", agent))
	rec = s.watch(&log, 2*time.Second, "reconciliation of srv", isReconciliation("srv"))
	if st := rec.Update.Status; st.GetState() != mesos.TASK_UNREACHABLE || st.UnreachableTime == nil || *st.UnreachableTime != *unr.UnreachableTime {
		t.Fatalf("reconciliation of an unreachable task: %v", st)
	}
	if st := m.State(); st.UnreachableSlaves != 1 || len(st.Frameworks[0].UnreachableTasks) != 1 {
		t.Fatalf("state: %d unreachable agents, unreachable tasks %v", st.UnreachableSlaves, st.Frameworks[0].UnreachableTasks)
	}
	for _, e := range log {
		if offerOf(e, agent) != nil {
			t.Fatal("an offer of the partitioned agent")
		}
	}

	log = nil
	postFault(t, m, "/fault/agent/restore?agent="+agent.Value)
	ev = s.watch(&log, 2*time.Second, "TASK_RUNNING after re-registration", isUpdate("srv", mesos.TASK_RUNNING))
	if st := ev.Update.Status; st.GetReason() != mesos.REASON_AGENT_REREGISTERED || st.GetSource() != mesos.SOURCE_MASTER || len(st.UUID) != 0 {
		t.Fatalf("update after re-registration %v", st)
	}
	if got := serving(addr); got != pid {
		t.Fatalf("after restore the task serves %q, want the same pid %s", got, pid)
	}
	s.watch(&log, 3*time.Second, "an offer of the healed agent", func(e *scheduler.Event) bool { return offerOf(e, agent) != nil })
	s.mustCall(reconcileOne("srv", agent))
	if st := s.watch(&log, 2*time.Second, "reconciliation", isReconciliation("srv")).Update.Status; st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("reconciliation after restore: %v", st)
	}
}

// runningTogether launches tasks on one offer and acknowledges their updates
// until all are RUNNING.
func runningTogether(t *testing.T, s *sched, ids ...string) mesos.Offer {
	t.Helper()
	o := s.offers(1, 3*time.Second)[0]
	var tis []mesos.TaskInfo
	for _, id := range ids {
		tis = append(tis, cmdTask(id, o, "sleep 1000"))
	}
	s.mustCall(launch(o, tis...))
	up := map[string]bool{}
	for len(up) < len(ids) {
		ev := s.wait(5*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_UPDATE })
		if ev == nil {
			t.Fatalf("running: %v of %v", up, ids)
		}
		s.ack(&ev.Update.Status)
		if ev.Update.Status.GetState() == mesos.TASK_RUNNING {
			up[ev.Update.Status.TaskID.Value] = true
		}
	}
	return o
}

// A framework without PARTITION_AWARE gets TASK_LOST (with unreachable_time)
// once the master notices; a task that fails meanwhile has its TASK_FAILED held
// by the agent. On restore nothing is killed (Mesos >= 1.5): the framework gets
// each task's state from the re-registering agent, then the held TASK_FAILED.
func TestPartitionNotPartitionAware(t *testing.T) {
	const delay = 300 * time.Millisecond
	o := testOptions()
	o.AgentUnreachableAfter = delay
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("legacy"))
	off := runningTogether(t, s, "keep", "dies")
	start := time.Now()
	postFault(t, m, "/fault/agent/partition?agent="+off.AgentID.Value)
	postFault(t, m, "/fault/task/fail?task=dies")
	var log []*scheduler.Event
	lost := map[string]*mesos.TaskStatus{}
	s.watch(&log, 5*time.Second, "TASK_LOST of both tasks", func(e *scheduler.Event) bool {
		if e.Type == scheduler.Event_UPDATE && e.Update.Status.GetState() == mesos.TASK_LOST {
			lost[e.Update.Status.TaskID.Value] = &e.Update.Status
		}
		return len(lost) == 2
	})
	for id, st := range lost {
		if st.UnreachableTime == nil || st.UnreachableTime.Nanoseconds < start.Add(delay).UnixNano() || st.GetReason() != mesos.REASON_AGENT_REMOVED {
			t.Fatalf("%s: TASK_LOST sooner than %v or without unreachable_time: %v", id, delay, st)
		}
	}
	for _, e := range log {
		if e.Type == scheduler.Event_UPDATE && e.Update.Status.GetState() == mesos.TASK_FAILED {
			t.Fatal("TASK_FAILED crossed the partition")
		}
	}

	log = nil
	postFault(t, m, "/fault/agent/restore?agent="+off.AgentID.Value)
	s.watch(&log, 2*time.Second, "keep's TASK_RUNNING after re-registration", isUpdate("keep", mesos.TASK_RUNNING))
	held := s.watch(&log, 2*time.Second, "the held TASK_FAILED", func(e *scheduler.Event) bool {
		return isUpdate("dies", mesos.TASK_FAILED)(e) && len(e.Update.Status.UUID) == 16
	})
	if held.Update.Status.GetSource() != mesos.SOURCE_EXECUTOR {
		t.Fatalf("held update %v", held.Update.Status)
	}
	s.ack(&held.Update.Status)
	waitFor(t, 2*time.Second, func() bool {
		ts := m.State().Frameworks[0].Tasks
		return len(ts) == 1 && ts[0].ID == "keep" && ts[0].State == "TASK_RUNNING"
	})
	for _, e := range log {
		if isUpdate("keep", mesos.TASK_KILLED)(e) {
			t.Fatal("a task of a framework without PARTITION_AWARE was killed on re-registration")
		}
	}
}

// Through a partition the master has not noticed yet, a custom executor's
// update is acknowledged by the agent but reaches the scheduler only after
// restore; framework messages are lost both ways (not delivered late); a KILL
// is sent when the agent re-registers (Master::kill keeps it in killedTasks,
// reconcileKnownSlave sends it); reconciliation answers as for a registered
// agent.
func TestPartitionHoldsUpdatesAndDropsMessages(t *testing.T) {
	o := realOptions(t)
	o.AgentUnreachableAfter = time.Hour
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("pa", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	off := s.offers(1, 2*time.Second)[0]
	agent := off.AgentID
	s.mustCall(launch(off, placeholderTask("job", "jobex", off)))
	x := newAPIExecutor(t, m, agent.Value, s.fwID, "jobex", jsonCodec)
	x.subscribe()
	x.next(execpb.Event_LAUNCH, 5*time.Second)
	x.update(executorStatus("job", mesos.TASK_RUNNING))
	s.ack(s.update("job", 2*time.Second, mesos.TASK_RUNNING))

	postFault(t, m, "/fault/agent/partition?agent="+agent.Value)
	during := executorStatus("job", mesos.TASK_RUNNING)
	during.Message = ptrString("during the partition")
	x.update(during)
	if x.acknowledged(during.UUID, 2*time.Second) == nil {
		t.Fatal("the partitioned agent did not acknowledge its executor's update")
	}
	x.message([]byte("from-executor-during"))
	s.mustCall(calls.Message(agent.Value, "jobex", []byte("to-executor-during")))
	s.mustCall(calls.Kill("job", agent.Value))
	s.mustCall(reconcileOne("ghost", agent))
	var log []*scheduler.Event
	if st := s.watch(&log, 2*time.Second, "reconciliation", isReconciliation("ghost")).Update.Status; st.GetState() != mesos.TASK_GONE {
		t.Fatalf("unknown task of a registered, disconnected agent: %v", st.GetState())
	}
	s.wait(500*time.Millisecond, func(e *scheduler.Event) bool { log = append(log, e); return false })
	for _, e := range log {
		if e.Type == scheduler.Event_MESSAGE || e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == "job" {
			t.Fatalf("crossed the partition to the scheduler: %v", e)
		}
	}
	if ev := x.wait(100*time.Millisecond, func(e *execpb.Event) bool {
		return e.Type == execpb.Event_MESSAGE || e.Type == execpb.Event_KILL
	}); ev != nil {
		t.Fatalf("crossed the partition to the executor: %v", ev)
	}

	log = nil
	postFault(t, m, "/fault/agent/restore?agent="+agent.Value)
	ev := s.watch(&log, 2*time.Second, "the held update", func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && bytes.Equal(e.Update.Status.UUID, during.UUID)
	})
	for _, e := range log {
		if e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_AGENT_REREGISTERED {
			t.Fatalf("re-registration update for an agent never marked unreachable: %v", e.Update.Status)
		}
	}
	s.ack(&ev.Update.Status)
	if ev := x.next(execpb.Event_KILL, 2*time.Second); ev.Kill.TaskID.Value != "job" {
		t.Fatalf("kill %v", ev.Kill)
	}
	s.mustCall(calls.Message(agent.Value, "jobex", []byte("to-executor-after")))
	if got := x.next(execpb.Event_MESSAGE, 2*time.Second).Message.Data; string(got) != "to-executor-after" {
		t.Fatalf("executor got %q first after restore", got)
	}
	x.message([]byte("from-executor-after"))
	if got := s.next(scheduler.Event_MESSAGE, 2*time.Second).Message.Data; string(got) != "from-executor-after" {
		t.Fatalf("scheduler got %q first after restore", got)
	}
	x.update(executorStatus("job", mesos.TASK_KILLED))
	s.ack(s.update("job", 2*time.Second, mesos.TASK_KILLED))
}

func (x *apiExecutor) message(data []byte) {
	x.t.Helper()
	resp, err := x.sender.Send(context.Background(), execcalls.NonStreaming(execcalls.Message(data)))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		x.t.Fatalf("executor message: %v", err)
	}
}
