package localmesos

// Expectations ported from Apache Mesos's tests of the operator API's
// MARK_AGENT_GONE (src/tests/api_tests.cpp MasterAPITest.*AgentGone*,
// src/tests/master_tests.cpp MasterTest.RegistryGcByCount) and from the code
// they test (src/master/http.cpp Master::Http::api and _markAgentGone,
// src/master/validation.cpp master::call::validate, src/master/master.cpp
// Master::markGone, __removeSlave, _reconcileTasks).

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	mastercalls "github.com/mesos/mesos-go/api/v1/lib/master/calls"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// operatorCall posts a body to the master's /api/v1 with the given
// Content-Type and returns the status and body.
func operatorCall(t *testing.T, url, method, contentType string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url+"/api/v1", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// markGone sends MARK_AGENT_GONE for agent in codec and wants 200.
func markGone(t *testing.T, url string, codec encoding.Codec, agent string) {
	t.Helper()
	body, err := encode(codec, mastercalls.MarkAgentGone(mesos.AgentID{Value: agent}))
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := operatorCall(t, url, http.MethodPost, string(codec.Type), body); code != http.StatusOK {
		t.Fatalf("MARK_AGENT_GONE %s (%s): %d %q, want 200", agent, codecName(codec), code, msg)
	}
}

// Ported: Master::Http::api's request checks and
// validation::master::call::validate for MARK_AGENT_GONE (400 with
// "Failed to validate master::Call: Expecting 'mark_agent_gone' to be
// present"; the JSON conversion's missing required agent_id), and
// _markAgentGone's answers: an unknown agent 404 "Agent '<id>' not found", an
// agent already gone 200 again (MasterAPITest.MarkRegisteredAgentGone's call
// in both content types).
func TestMesosOperatorMarkAgentGoneRequests(t *testing.T) {
	m := startMesos(t, testOptions())
	url := m.URL()
	agent := m.State().Slaves[0].ID
	for _, tc := range []struct {
		name, method, ct, body string
		code                   int
		msg                    string
	}{
		{"GetRequest", http.MethodGet, "application/json", `{}`, 405, ""},
		{"NoContentType", http.MethodPost, "", `{"type":"MARK_AGENT_GONE"}`, 400, "Expecting 'Content-Type' to be present\n"},
		{"UnsupportedContentMediaType", http.MethodPost, "text/plain", `{}`, 415, ""},
		{"MalformedContent", http.MethodPost, "application/json", `{"type":`, 400, ""},
		{"NoType", http.MethodPost, "application/json", `{}`, 400, "Failed to validate master::Call: Expecting 'type' to be present\n"},
		{"NoMarkAgentGone", http.MethodPost, "application/json", `{"type":"MARK_AGENT_GONE"}`, 400,
			"Failed to validate master::Call: Expecting 'mark_agent_gone' to be present\n"},
		{"NoAgentID", http.MethodPost, "application/json", `{"type":"MARK_AGENT_GONE","mark_agent_gone":{}}`, 400,
			"Failed to convert JSON into Call protobuf: Missing required fields: mark_agent_gone.agent_id\n"},
		{"UnknownAgent", http.MethodPost, "application/json", `{"type":"MARK_AGENT_GONE","mark_agent_gone":{"agent_id":{"value":"nope"}}}`, 404,
			"Agent 'nope' not found\n"},
		{"Unknown", http.MethodPost, "application/json", `{"type":"UNKNOWN"}`, 501, ""},
		{"NotImplemented", http.MethodPost, "application/json", `{"type":"GET_HEALTH"}`, 501,
			"localmesos does not implement master::Call GET_HEALTH\n"},
	} {
		code, msg := operatorCall(t, url, tc.method, tc.ct, []byte(tc.body))
		if code != tc.code || (tc.msg != "" && msg != tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, msg, tc.code, tc.msg)
		}
	}
	for _, codec := range []encoding.Codec{jsonCodec, pbCodec} {
		markGone(t, url, codec, agent) // the second time: already gone, OK
	}
	if n := len(m.State().Slaves); n != 2 {
		t.Fatalf("%d agents listed after one was marked gone, want 2", n)
	}
}

// Ported: MasterAPITest.TaskUpdatesUponAgentGone (api_tests.cpp): a running
// task of a PARTITION_AWARE framework on an agent marked gone gets
// TASK_GONE_BY_OPERATOR with REASON_SLAVE_REMOVED_BY_OPERATOR (v1:
// REASON_AGENT_REMOVED_BY_OPERATOR) from the master, the framework
// FAILURE{agent_id} (slaveLost); reconciling an unknown task on the gone
// agent answers TASK_GONE_BY_OPERATOR ("Reconciliation: Task is gone",
// master.cpp _reconcileTasks case 5, as MasterTest.RegistryGcByCount expects).
// MasterAPITest.MarkRegisteredAgentGone: the registered agent is shut down
// (its task's process stops serving) and cannot re-register (it is never
// offered nor listed again). A framework without PARTITION_AWARE gets
// TASK_LOST with REASON_SLAVE_REMOVED (__removeSlave).
func TestMesosTaskUpdatesUponAgentGone(t *testing.T) {
	m := startMesos(t, realOptions(t))
	pa := subscribe(t, m.URL(), pbCodec, frameworkInfo("pa", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	off := pa.offers(1, 3*time.Second)[0]
	agent := off.AgentID
	ti, addr := serverTask(t, "srv", off)
	pa.mustCall(launch(off, ti))
	pa.ack(pa.reach("srv", 10*time.Second, mesos.TASK_RUNNING))
	waitFor(t, 10*time.Second, func() bool { return serving(addr) != "" })

	markGone(t, m.URL(), jsonCodec, agent.Value)
	var log []*scheduler.Event
	st := pa.watch(&log, 3*time.Second, "TASK_GONE_BY_OPERATOR", isUpdate("srv", mesos.TASK_GONE_BY_OPERATOR)).Update.Status
	if st.GetReason() != mesos.REASON_AGENT_REMOVED_BY_OPERATOR || st.GetSource() != mesos.SOURCE_MASTER || len(st.UUID) != 0 ||
		st.GetMessage() != "Agent has been marked gone" || *st.AgentID != agent {
		t.Fatalf("gone update %v", st)
	}
	ev := pa.watch(&log, 3*time.Second, "FAILURE", func(e *scheduler.Event) bool { return e.Type == scheduler.Event_FAILURE })
	if *ev.Failure.AgentID != agent || ev.Failure.ExecutorID != nil {
		t.Fatalf("failure %v", ev.Failure)
	}
	waitFor(t, 10*time.Second, func() bool { return serving(addr) == "" })

	got := pa.reconciled([]scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: "dummy-task"}, AgentID: &agent}}, "dummy-task")["dummy-task"]
	if got.GetState() != mesos.TASK_GONE_BY_OPERATOR || got.GetMessage() != "Reconciliation: Task is gone" {
		t.Fatalf("reconciliation of a task on the gone agent: %v", got)
	}
	state := m.State()
	fs := state.Frameworks[0]
	if len(fs.Tasks) != 0 || len(fs.CompletedTasks) != 1 || fs.CompletedTasks[0].State != "TASK_GONE_BY_OPERATOR" {
		t.Fatalf("state: tasks %v completed %v, want srv completed as TASK_GONE_BY_OPERATOR", fs.Tasks, fs.CompletedTasks)
	}
	if err := m.RestoreAgent(agent.Value); err != nil {
		t.Fatal(err)
	}
	m.RescindOffers()
	seen := map[mesos.AgentID]bool{}
	pa.watch(&log, 3*time.Second, "offers of the two other agents", func(e *scheduler.Event) bool {
		if e.Type == scheduler.Event_OFFERS {
			for _, o := range e.Offers.Offers {
				seen[o.AgentID] = true
			}
		}
		return len(seen) >= 2
	})
	if seen[agent] || len(m.State().Slaves) != 2 {
		t.Fatalf("the gone agent re-registered: offered %v, %d agents listed", seen[agent], len(m.State().Slaves))
	}

	pa.close() // its offers go back
	old := subscribe(t, m.URL(), pbCodec, frameworkInfo("old"))
	o2 := old.offers(1, 3*time.Second)[0]
	old.mustCall(launch(o2, cmdTask("p", o2, "sleep 1000")))
	old.ack(old.reach("p", 10*time.Second, mesos.TASK_RUNNING))
	markGone(t, m.URL(), pbCodec, o2.AgentID.Value)
	if st := old.update("p", 3*time.Second); st.GetState() != mesos.TASK_LOST || st.GetReason() != mesos.REASON_AGENT_REMOVED {
		t.Fatalf("without PARTITION_AWARE: %v, want TASK_LOST with REASON_AGENT_REMOVED", st)
	}
}

// Ported: MasterAPITest.UnreachableAgentMarkedGone (api_tests.cpp): a task
// on an agent the master marked unreachable gets TASK_GONE_BY_OPERATOR when
// the agent is marked gone, and moves from unreachable_tasks to
// completed_tasks; no second FAILURE (Master::markGone on an unreachable
// agent). The agent's processes, which ran on through the partition, are
// shut down when it tries to re-register (the master answers a gone agent's
// re-registration with ShutdownMessage "Agent has been marked gone").
func TestMesosUnreachableAgentMarkedGone(t *testing.T) {
	o := realOptions(t)
	o.AgentUnreachableAfter = 100 * time.Millisecond
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("pa", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	off := s.offers(1, 3*time.Second)[0]
	ti, addr := serverTask(t, "srv", off)
	s.mustCall(launch(off, ti))
	s.ack(s.reach("srv", 10*time.Second, mesos.TASK_RUNNING))
	waitFor(t, 10*time.Second, func() bool { return serving(addr) != "" })
	if err := m.PartitionAgent(off.AgentID.Value); err != nil {
		t.Fatal(err)
	}
	var log []*scheduler.Event
	s.watch(&log, 3*time.Second, "TASK_UNREACHABLE", isUpdate("srv", mesos.TASK_UNREACHABLE))
	s.watch(&log, 3*time.Second, "FAILURE", func(e *scheduler.Event) bool { return e.Type == scheduler.Event_FAILURE })

	markGone(t, m.URL(), pbCodec, off.AgentID.Value)
	log = nil
	st := s.watch(&log, 3*time.Second, "TASK_GONE_BY_OPERATOR", isUpdate("srv", mesos.TASK_GONE_BY_OPERATOR)).Update.Status
	if st.GetReason() != mesos.REASON_AGENT_REMOVED_BY_OPERATOR || st.GetSource() != mesos.SOURCE_MASTER {
		t.Fatalf("gone update %v", st)
	}
	fs := m.State().Frameworks[0]
	if len(fs.UnreachableTasks) != 0 || len(fs.CompletedTasks) != 1 || fs.CompletedTasks[0].ID != "srv" {
		t.Fatalf("state: unreachable %v completed %v, want srv completed", fs.UnreachableTasks, fs.CompletedTasks)
	}
	if st := m.State(); st.UnreachableSlaves != 0 || len(st.Slaves) != 2 {
		t.Fatalf("agents: %d unreachable, %d listed, want 0 and 2", st.UnreachableSlaves, len(st.Slaves))
	}
	if serving(addr) == "" {
		t.Fatal("the partitioned agent's process stopped before the agent heard it is gone")
	}
	if err := m.RestoreAgent(off.AgentID.Value); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return serving(addr) == "" })
	if ev := s.wait(300*time.Millisecond, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_FAILURE || (e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == "srv")
	}); ev != nil {
		t.Fatalf("after the gone agent's shutdown: %v", ev)
	}
	for _, e := range log {
		if e.Type == scheduler.Event_FAILURE {
			t.Fatal("a second FAILURE for an agent already unreachable")
		}
	}
	if err := m.PartitionAgent(off.AgentID.Value); err == nil {
		t.Fatal("a gone agent was partitioned")
	}
}
