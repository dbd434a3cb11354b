package localmesos

// Reconciliation, partition-aware semantics and the task rendering of
// /master/state, ported from Apache Mesos's src/tests/reconciliation_tests.cpp
// and partition_tests.cpp and from src/master/master.cpp (Master::reconcile,
// Master::updateTask, Master::forward), src/slave/slave.cpp
// (Slave::_statusUpdate) and src/common/http.cpp (json(Task), json(TaskStatus)).

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// reconciled sends a RECONCILE and returns the answers that arrive for ids.
func (s *sched) reconciled(tasks []scheduler.Call_Reconcile_Task, ids ...string) map[string]*mesos.TaskStatus {
	s.t.Helper()
	s.mustCall(calls.Reconcile(calls.ReconcileTasks(nil)).With(func(c *scheduler.Call) { c.Reconcile.Tasks = tasks }))
	out := map[string]*mesos.TaskStatus{}
	for len(out) < len(ids) {
		ev := s.wait(2*time.Second, func(e *scheduler.Event) bool {
			return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
		})
		if ev == nil {
			s.t.Fatalf("reconciliation answers %v, want %v", out, ids)
		}
		st := ev.Update.Status
		out[st.TaskID.Value] = &st
	}
	for _, id := range ids {
		if out[id] == nil {
			s.t.Fatalf("no reconciliation answer for %s: %v", id, out)
		}
		if st := out[id]; st.GetSource() != mesos.SOURCE_MASTER || len(st.UUID) != 0 {
			s.t.Errorf("%s: reconciliation answer from %s with uuid %x", id, st.GetSource(), st.UUID)
		}
	}
	return out
}

// Ported: ReconciliationTest.{ReconcileStatusUpdateTaskState, TaskStateMatch,
// ImplicitNonTerminalTask, UnacknowledgedTerminalTask, ImplicitTerminalTask}
// (reconciliation_tests.cpp): reconciliation answers a task's status update
// state, the state of the last update forwarded to the framework
// (Task.status_update_state, set by Master::forward), not the newer state the
// agent already reported (/master/state shows that one); a terminal task is
// answered until its update is acknowledged, and then no more.
func TestMesosReconcileStatusUpdateState(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	offers := s.offers(2, 2*time.Second)
	s.mustCall(launch(offers[0], cmdTask("t", offers[0], "sleep 100")))
	starting := s.update("t", 2*time.Second, mesos.TASK_STARTING)
	// The agent reports RUNNING while STARTING awaits its acknowledgement.
	waitFor(t, 2*time.Second, func() bool {
		ts := m.State().Frameworks[0].Tasks
		return len(ts) == 1 && ts[0].State == "TASK_RUNNING"
	})
	got := s.reconciled(nil, "t")["t"]
	if got.GetState() != mesos.TASK_STARTING || got.GetMessage() != "Reconciliation: Latest task state" || got.AgentID.GetValue() != offers[0].AgentID.Value {
		t.Fatalf("implicit reconciliation while STARTING is unacknowledged: %v", got)
	}
	if got := s.reconciled([]scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: "t"}}}, "t")["t"]; got.GetState() != mesos.TASK_STARTING {
		t.Fatalf("explicit reconciliation while STARTING is unacknowledged: %v", got)
	}
	s.ack(starting)
	s.ack(s.update("t", 2*time.Second, mesos.TASK_RUNNING))
	if got := s.reconciled(nil, "t")["t"]; got.GetState() != mesos.TASK_RUNNING || got.ContainerStatus.GetContainerID() == nil {
		t.Fatalf("reconciliation after RUNNING: %v", got)
	}

	// UnacknowledgedTerminalTask, ImplicitTerminalTask.
	if err := m.FailTask("t"); err != nil {
		t.Fatal(err)
	}
	failed := s.update("t", 2*time.Second, mesos.TASK_FAILED)
	if got := s.reconciled(nil, "t")["t"]; got.GetState() != mesos.TASK_FAILED {
		t.Fatalf("unacknowledged terminal task: %v", got)
	}
	s.ack(failed)
	waitFor(t, 2*time.Second, func() bool { return len(m.State().Frameworks[0].Tasks) == 0 })
	s.mustCall(calls.Reconcile(nil))
	if ev := s.wait(300*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_UPDATE }); ev != nil {
		t.Fatalf("implicit reconciliation answered an acknowledged terminal task: %v", ev.Update.Status)
	}
}

// Ported: ReconciliationTest.{UnknownTask, UnknownTaskPartitionAware,
// UnknownSlave} (reconciliation_tests.cpp), Master::reconcile's cases (3),
// (4) and (6): an unknown task on a registered agent is TASK_GONE, on an
// unreachable agent TASK_UNREACHABLE (with the time it was marked so), on an
// unknown or unnamed agent TASK_UNKNOWN; each TASK_LOST without PARTITION_AWARE.
func TestMesosReconcileUnknownTasks(t *testing.T) {
	m := startMesos(t, testOptions())
	pa := subscribe(t, m.URL(), pbCodec, frameworkInfo("pa", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	old := subscribe(t, m.URL(), jsonCodec, frameworkInfo("old"))
	agents := m.State().Slaves
	registered, lost := agents[0].ID, agents[1].ID
	if err := m.LoseAgent(lost); err != nil {
		t.Fatal(err)
	}
	ask := []scheduler.Call_Reconcile_Task{
		{TaskID: mesos.TaskID{Value: "gone"}, AgentID: &mesos.AgentID{Value: registered}},
		{TaskID: mesos.TaskID{Value: "unreachable"}, AgentID: &mesos.AgentID{Value: lost}},
		{TaskID: mesos.TaskID{Value: "unknown-agent"}, AgentID: &mesos.AgentID{Value: "nope"}},
		{TaskID: mesos.TaskID{Value: "no-agent"}},
	}
	ids := []string{"gone", "unreachable", "unknown-agent", "no-agent"}
	want := map[string]struct {
		state mesos.TaskState
		msg   string
	}{
		"gone":          {mesos.TASK_GONE, "Reconciliation: Task is unknown to the agent"},
		"unreachable":   {mesos.TASK_UNREACHABLE, "Reconciliation: Task is unreachable"},
		"unknown-agent": {mesos.TASK_UNKNOWN, "Reconciliation: Task is unknown"},
		"no-agent":      {mesos.TASK_UNKNOWN, "Reconciliation: Task is unknown"},
	}
	for _, s := range []*sched{pa, old} {
		got := s.reconciled(ask, ids...)
		for id, w := range want {
			st := got[id]
			state := w.state
			if s == old {
				state = mesos.TASK_LOST
			}
			if st.GetState() != state || st.GetMessage() != w.msg {
				t.Errorf("framework %s, task %s: %s %q, want %s %q", s.fwID, id, st.GetState(), st.GetMessage(), state, w.msg)
			}
		}
		if got["unreachable"].UnreachableTime == nil || got["gone"].UnreachableTime != nil {
			t.Errorf("unreachable_time: %v / %v", got["unreachable"].UnreachableTime, got["gone"].UnreachableTime)
		}
	}
}

// Ported: PartitionTest.{ReregisterSlavePartitionAware, PartitionedSlave}
// (partition_tests.cpp): when its agent is marked unreachable a task of a
// PARTITION_AWARE framework gets TASK_UNREACHABLE (REASON_SLAVE_REMOVED,
// unreachable_time) and moves to unreachable_tasks, the agent out of the
// registered "slaves" (counted in unreachable_slaves), the task out of implicit
// reconciliation; a framework without the capability gets TASK_LOST. Once the
// agent re-registers the task is RUNNING again (Mesos >= 1.5).
func TestMesosPartitionAware(t *testing.T) {
	for _, aware := range []bool{true, false} {
		o := testOptions()
		o.AgentUnreachableAfter = 100 * time.Millisecond
		m := startMesos(t, o)
		fi := frameworkInfo("old")
		if aware {
			fi = frameworkInfo("pa", mesos.FrameworkInfo_Capability_PARTITION_AWARE)
		}
		s := subscribe(t, m.URL(), pbCodec, fi)
		op := s.offers(1, 2*time.Second)[0]
		agent := op.AgentID.Value
		s.mustCall(launch(op, cmdTask("p", op, "sleep 100")))
		s.ack(s.reach("p", 2*time.Second, mesos.TASK_RUNNING))

		if err := m.PartitionAgent(agent); err != nil {
			t.Fatal(err)
		}
		st := s.update("p", 3*time.Second)
		want := mesos.TASK_UNREACHABLE
		if !aware {
			want = mesos.TASK_LOST
		}
		if st.GetState() != want || st.GetReason() != mesos.REASON_AGENT_REMOVED || st.GetSource() != mesos.SOURCE_MASTER || st.UnreachableTime == nil || len(st.UUID) != 0 {
			t.Fatalf("PARTITION_AWARE=%v: %v, want %s", aware, st, want)
		}
		state := m.State()
		fs := state.Frameworks[0]
		if len(fs.Tasks) != 0 || len(fs.UnreachableTasks) != 1 || len(fs.CompletedTasks) != 0 {
			t.Fatalf("state: tasks %d unreachable %d completed %d, want 0 1 0", len(fs.Tasks), len(fs.UnreachableTasks), len(fs.CompletedTasks))
		}
		if state.ActivatedSlaves != 2 || state.DeactivatedSlaves != 0 || state.UnreachableSlaves != 1 || len(state.Slaves) != 2 {
			t.Fatalf("agents: activated %d deactivated %d unreachable %d listed %d, want 2 0 1 2 (an unreachable agent is not registered)",
				state.ActivatedSlaves, state.DeactivatedSlaves, state.UnreachableSlaves, len(state.Slaves))
		}
		s.mustCall(calls.Reconcile(nil))
		if ev := s.wait(300*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_UPDATE }); ev != nil {
			t.Fatalf("implicit reconciliation answered an unreachable task: %v", ev.Update.Status)
		}
		got := s.reconciled([]scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: "p"}, AgentID: &mesos.AgentID{Value: agent}}}, "p")["p"]
		if got.GetState() != want || got.UnreachableTime == nil || got.UnreachableTime.Nanoseconds != st.UnreachableTime.Nanoseconds {
			t.Fatalf("explicit reconciliation of the unreachable task: %v (marked at %v)", got, st.UnreachableTime)
		}
		if !aware {
			continue
		}
		if err := m.RestoreAgent(agent); err != nil {
			t.Fatal(err)
		}
		if st := s.update("p", 3*time.Second, mesos.TASK_RUNNING); st.GetReason() != mesos.REASON_AGENT_REREGISTERED {
			t.Fatalf("after re-registration: %v", st)
		}
		if got := s.reconciled(nil, "p")["p"]; got.GetState() != mesos.TASK_RUNNING {
			t.Fatalf("reconciliation after re-registration: %v", got)
		}
	}
}

// Ported: Slave::_statusUpdate (slave.cpp) adds a ContainerStatus with the
// container id and the agent's IP to every executor update; Master::updateTask
// keeps each state's latest status in Task.statuses; json(Task) and
// json(TaskStatus) (common/http.cpp) render state, timestamp, labels,
// container_status and healthy for each (the endpoint tests of
// master_tests.cpp read statuses[].container_status.network_infos).
func TestMesosStateTaskStatuses(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	o := s.offers(1, 2*time.Second)[0]
	s.mustCall(launch(o, cmdTask("t", o, "sleep 100")))
	starting := s.update("t", 2*time.Second, mesos.TASK_STARTING)
	cs := starting.ContainerStatus
	if cs == nil || cs.ContainerID == nil || cs.ContainerID.Value == "" || len(cs.NetworkInfos) != 1 ||
		len(cs.NetworkInfos[0].IPAddresses) != 1 || cs.NetworkInfos[0].IPAddresses[0].GetIPAddress() != o.Hostname {
		t.Fatalf("container_status of an executor update: %v", cs)
	}
	s.ack(starting)
	s.ack(s.update("t", 2*time.Second, mesos.TASK_RUNNING))

	resp, err := http.Get(m.URL() + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var state struct {
		Frameworks []struct {
			Role  *string   `json:"role"`
			Roles *[]string `json:"roles"`
			Tasks []struct {
				State    string                       `json:"state"`
				Statuses []map[string]json.RawMessage `json:"statuses"`
			} `json:"tasks"`
		} `json:"frameworks"`
	}
	if err := json.Unmarshal(body, &state); err != nil {
		t.Fatal(err)
	}
	// FullFrameworkWriter (readonly_handler.cpp): `roles` for MULTI_ROLE
	// frameworks, `role` for the others.
	if fw := state.Frameworks[0]; fw.Role == nil || *fw.Role != "*" || fw.Roles != nil {
		t.Errorf("framework role %v roles %v, want role \"*\" and no roles", fw.Role, fw.Roles)
	}
	task := state.Frameworks[0].Tasks[0]
	if task.State != "TASK_RUNNING" || len(task.Statuses) != 2 {
		t.Fatalf("task %s with %d statuses, want TASK_RUNNING with STARTING and RUNNING", task.State, len(task.Statuses))
	}
	for i, want := range []string{`"TASK_STARTING"`, `"TASK_RUNNING"`} {
		st := task.Statuses[i]
		if string(st["state"]) != want || st["timestamp"] == nil || st["container_status"] == nil {
			t.Errorf("statuses[%d]: %s", i, body)
		}
		var c struct {
			ContainerID struct {
				Value string `json:"value"`
			} `json:"container_id"`
			NetworkInfos []struct {
				IPAddresses []struct {
					IPAddress string `json:"ip_address"`
				} `json:"ip_addresses"`
			} `json:"network_infos"`
		}
		if err := json.Unmarshal(st["container_status"], &c); err != nil || c.ContainerID.Value != cs.ContainerID.Value ||
			len(c.NetworkInfos) != 1 || c.NetworkInfos[0].IPAddresses[0].IPAddress != o.Hostname {
			t.Errorf("statuses[%d].container_status: %s (%v)", i, st["container_status"], err)
		}
		for _, k := range []string{"message", "source", "reason", "uuid", "data"} {
			if _, ok := st[k]; ok {
				t.Errorf("statuses[%d] has %q, which Mesos does not render", i, k)
			}
		}
	}
}

// Ported: SchedulerTest.{NoOffersWithAllRolesSuppressed,
// NoOffersOnReregistrationWithAllRolesSuppressed} (scheduler_tests.cpp): a
// framework that subscribes, or re-subscribes, with all its roles suppressed
// gets no offers until it revives.
func TestMesosSubscribeWithSuppressedRoles(t *testing.T) {
	m := startMesos(t, testOptions())
	fi := frameworkInfo("fw")
	timeout := 7 * 24 * 3600.0
	fi.FailoverTimeout = &timeout
	first := subscribe(t, m.URL(), pbCodec, fi)
	first.offers(1, 2*time.Second)
	first.close()
	fi.ID = &mesos.FrameworkID{Value: first.fwID}
	s := subscribeCall(t, m.URL(), pbCodec, fi, []string{"*"})
	if ev := s.wait(300*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }); ev != nil {
		t.Fatalf("offers after re-subscribing with all roles suppressed: %v", ev.Offers)
	}
	// Every agent is free: a new framework would get offers, unless it
	// suppresses its roles.
	other := subscribeCall(t, m.URL(), jsonCodec, frameworkInfo("other"), []string{"*"})
	if ev := other.wait(300*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }); ev != nil {
		t.Fatalf("offers after subscribing with all roles suppressed: %v", ev.Offers)
	}
	s.mustCall(calls.Revive())
	s.offers(1, 2*time.Second)
}
