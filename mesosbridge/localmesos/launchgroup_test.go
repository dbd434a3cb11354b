package localmesos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func launchGroupCall(o mesos.Offer, ex mesos.ExecutorInfo, tasks ...mesos.TaskInfo) *scheduler.Call {
	if ex.FrameworkID == nil {
		ex.FrameworkID = &o.FrameworkID // required for LAUNCH_GROUP, as on Mesos
	}
	return calls.Accept(calls.OfferOperations{calls.OpLaunchGroup(ex, tasks...)}.WithOffers(o.ID)).With(calls.RefuseSeconds(0))
}

func defaultExecutor(id string) mesos.ExecutorInfo {
	return mesos.ExecutorInfo{
		ExecutorID: mesos.ExecutorID{Value: id},
		Type:       mesos.ExecutorInfo_DEFAULT,
		Resources:  []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32), scalar("disk", 32)},
	}
}

// untilTerminal acknowledges every update of the tasks ids until each has reached a
// terminal state, and returns the updates of each.
func (s *sched) untilTerminal(d time.Duration, ids ...string) map[string][]mesos.TaskStatus {
	s.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string][]mesos.TaskStatus{}
	done := 0
	deadline := time.Now().Add(d)
	for done < len(ids) {
		ev := s.wait(time.Until(deadline), func(e *scheduler.Event) bool {
			return e.Type == scheduler.Event_UPDATE && want[e.Update.Status.TaskID.Value]
		})
		if ev == nil {
			s.t.Fatalf("tasks %v not all terminal within %v: %v", ids, d, out)
		}
		st := ev.Update.Status
		s.ack(&st)
		id := st.TaskID.Value
		if n := len(out[id]); n > 0 && isTerminal(out[id][n-1].GetState()) {
			continue // a resend
		}
		out[id] = append(out[id], st)
		if isTerminal(st.GetState()) {
			done++
		}
	}
	return out
}

func states(sts []mesos.TaskStatus) string {
	var ss []string
	for _, st := range sts {
		ss = append(ss, st.GetState().String())
	}
	return strings.Join(ss, ",")
}

// A LAUNCH_GROUP under the default executor whose tasks carry a CommandInfo: each
// task's command runs (sh -c, in its own sandbox under the executor's, as the
// default executor's nested containers), with the default executor's restart
// policy (a task that fails or is killed takes the rest of its group with it).
func TestLaunchGroupWithCommands(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	offers := s.offers(3, 2*time.Second)

	// Both tasks run to completion; one carries the group's ExecutorInfo itself.
	o := offers[0]
	ex := defaultExecutor("grp")
	ex.FrameworkID = &o.FrameworkID
	g1 := cmdTask("g1", o, `echo "$MESOS_TASK_ID $MESOS_EXECUTOR_ID" > out && test "$MESOS_SANDBOX" = "$(pwd)"`)
	g2 := cmdTask("g2", o, `echo "$MESOS_TASK_ID $MESOS_EXECUTOR_ID" > out`)
	own := ex
	g2.Executor = &own
	s.mustCall(launchGroupCall(o, ex, g1, g2))
	got := s.untilTerminal(10*time.Second, "g1", "g2")
	for _, id := range []string{"g1", "g2"} {
		sts := got[id]
		if states(sts) != "TASK_STARTING,TASK_RUNNING,TASK_FINISHED" {
			t.Fatalf("%s: %s (%v)", id, states(sts), sts[len(sts)-1].GetMessage())
		}
		for _, st := range sts {
			if st.ExecutorID.GetValue() != "grp" || st.GetSource() != mesos.SOURCE_EXECUTOR || len(st.UUID) != 16 {
				t.Fatalf("%s: update %v", id, st)
			}
		}
		m.mu.Lock()
		dir := filepath.Join(m.sandboxDir(m.agentsByID[o.AgentID.Value], s.fwID, "grp"), "tasks", id)
		m.mu.Unlock()
		b, err := os.ReadFile(filepath.Join(dir, "out"))
		if err != nil || string(b) != id+" grp\n" {
			t.Fatalf("%s: output %q, %v", id, b, err)
		}
	}

	// A task that fails takes its group with it.
	o = offers[1]
	s.mustCall(launchGroupCall(o, defaultExecutor("grp2"),
		cmdTask("long", o, "exec sleep 600"), cmdTask("bad", o, "sleep 0.3; exit 3")))
	got = s.untilTerminal(10*time.Second, "long", "bad")
	if st := got["bad"][len(got["bad"])-1]; st.GetState() != mesos.TASK_FAILED || st.GetMessage() != "Command exited with status 3" {
		t.Fatalf("bad: %s %q", states(got["bad"]), st.GetMessage())
	}
	if st := got["long"][len(got["long"])-1]; st.GetState() != mesos.TASK_KILLED {
		t.Fatalf("long: %s", states(got["long"]))
	}

	// Killing one task kills the group.
	o = offers[2]
	s.mustCall(launchGroupCall(o, defaultExecutor("grp3"),
		cmdTask("k1", o, "exec sleep 600"), cmdTask("k2", o, "exec sleep 600")))
	for _, id := range []string{"k1", "k2"} {
		waitFor(t, 5*time.Second, func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			tk := m.frameworks[s.fwID].tasks[id]
			return tk != nil && tk.agentState == mesos.TASK_RUNNING
		})
	}
	s.mustCall(calls.Kill("k1", o.AgentID.Value))
	got = s.untilTerminal(10*time.Second, "k1", "k2")
	for _, id := range []string{"k1", "k2"} {
		if st := got[id][len(got[id])-1]; st.GetState() != mesos.TASK_KILLED {
			t.Fatalf("%s: %s", id, states(got[id]))
		}
	}
	if st := m.State(); len(st.Frameworks[0].Tasks) != 0 {
		t.Fatalf("tasks left %+v", st.Frameworks[0].Tasks)
	}
}

// In simulate mode the tasks of such a group are simulated, under the group's
// executor and with the same restart policy.
func TestLaunchGroupWithCommandsSimulated(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	o := s.offers(1, 2*time.Second)[0]
	s.mustCall(launchGroupCall(o, defaultExecutor("grp"), cmdTask("s1", o, "exec sleep 600"), cmdTask("s2", o, "exec sleep 600")))
	running := map[string]bool{}
	for len(running) < 2 {
		ev := s.next(scheduler.Event_UPDATE, 2*time.Second)
		st := ev.Update.Status
		s.ack(&st)
		if st.GetState() == mesos.TASK_RUNNING {
			if st.ExecutorID.GetValue() != "grp" {
				t.Fatalf("executor id %v", st.ExecutorID)
			}
			running[st.TaskID.Value] = true
		} else if st.GetState() != mesos.TASK_STARTING {
			t.Fatalf("%s: %s %q", st.TaskID.Value, st.GetState(), st.GetMessage())
		}
	}
	s.mustCall(calls.Kill("s2", o.AgentID.Value))
	got := s.untilTerminal(2*time.Second, "s1", "s2")
	for _, id := range []string{"s1", "s2"} {
		if st := got[id][len(got[id])-1]; st.GetState() != mesos.TASK_KILLED {
			t.Fatalf("%s: %s", id, states(got[id]))
		}
	}
}

// Task group validation as the master's (validation.cpp, task::group): TASK_ERROR (REASON_TASK_GROUP_INVALID)
// for every task of the group.
func TestLaunchGroupValidation(t *testing.T) {
	for _, simulate := range []bool{false, true} {
		o := realOptions(t)
		o.Simulate = simulate
		m := startMesos(t, o)
		s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
		off := s.offers(1, 2*time.Second)[0]
		cmd := "true"
		withCommand := defaultExecutor("bad")
		withCommand.Command = &mesos.CommandInfo{Value: &cmd}
		custom := defaultExecutor("bad")
		custom.Type = mesos.ExecutorInfo_CUSTOM
		untyped := defaultExecutor("bad")
		untyped.Type = mesos.ExecutorInfo_UNKNOWN
		other := defaultExecutor("other")
		one := func(o mesos.Offer) []mesos.TaskInfo { return []mesos.TaskInfo{cmdTask("b1", o, "true")} }
		for _, c := range []struct {
			ex    mesos.ExecutorInfo
			tasks func(mesos.Offer) []mesos.TaskInfo
			msg   string
		}{
			{withCommand, one, "'ExecutorInfo.command' must not be set for 'DEFAULT' executor"},
			{custom, one, "'ExecutorInfo.command' must be set for 'CUSTOM' executor"},
			{untyped, one, "Unknown executor type"},
			{defaultExecutor("bad"), func(o mesos.Offer) []mesos.TaskInfo {
				differs := cmdTask("b2", o, "true")
				differs.Executor = &other
				return []mesos.TaskInfo{cmdTask("b1", o, "true"), differs}
			}, "The `ExecutorInfo` of task 'b2' is different from executor 'bad'"},
		} {
			tasks := c.tasks(off)
			s.mustCall(launchGroupCall(off, c.ex, tasks...))
			for _, tk := range tasks {
				st := s.update(tk.TaskID.Value, 2*time.Second)
				if st.GetState() != mesos.TASK_ERROR || st.GetReason() != mesos.REASON_TASK_GROUP_INVALID || st.GetMessage() != c.msg {
					t.Fatalf("simulate=%v %s: %s %s %q, want %q", simulate, tk.TaskID.Value, st.GetState(), st.GetReason(), st.GetMessage(), c.msg)
				}
			}
			off = s.offers(1, 2*time.Second)[0]
		}
		// A LAUNCH (not a group) cannot name the default executor.
		ti := cmdTask("b3", off, "true")
		ti.Command = nil
		ex := defaultExecutor("d")
		ti.Executor = &ex
		s.mustCall(launch(off, ti))
		if st := s.update("b3", 2*time.Second); st.GetState() != mesos.TASK_ERROR || st.GetMessage() != "'ExecutorInfo.type' must be 'CUSTOM'" {
			t.Fatalf("simulate=%v LAUNCH with a DEFAULT executor: %s %q", simulate, st.GetState(), st.GetMessage())
		}
	}
}
