package localmesos

import (
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func TestSubscribeOffersLaunchKill(t *testing.T) {
	for _, codec := range []encoding.Codec{pbCodec, jsonCodec} {
		codec := codec
		t.Run(codecName(codec), func(t *testing.T) {
			t.Parallel()
			m := startMesos(t, testOptions())
			s := subscribe(t, m.URL(), codec, frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
			if want := m.masters[0].id + "-0000"; s.fwID != want {
				t.Fatalf("framework id %q, want %q", s.fwID, want)
			}
			s.next(scheduler.Event_HEARTBEAT, time.Second)
			offers := s.offers(3, 2*time.Second)
			hosts := map[string]bool{}
			var ports []mesos.Value_Range
			for _, o := range offers {
				hosts[o.Hostname] = true
				if !strings.HasPrefix(o.ID.Value, m.masters[0].id+"-O") || !strings.HasPrefix(o.AgentID.Value, m.masters[0].id+"-S") {
					t.Fatalf("offer ids %s / %s", o.ID.Value, o.AgentID.Value)
				}
				ports = append(ports, offerPorts(o)...)
			}
			if len(hosts) != 3 || !hosts["127.0.0.1"] || !hosts["127.0.0.2"] {
				t.Fatalf("hosts %v", hosts)
			}
			if overlaps(ports[:1], ports[1:]) || len(ports) != 3 {
				t.Fatalf("ports overlap: %v", ports)
			}
			o := offers[0]
			s.mustCall(launch(o, cmdTask("t1", o, "sleep 100", scalar("cpus", 1), scalar("mem", 128), portsRes(offerPorts(o)[0].Begin, offerPorts(o)[0].Begin))))
			st := s.update("t1", 2*time.Second)
			if st.GetState() != mesos.TASK_STARTING || len(st.UUID) != 16 || st.GetSource() != mesos.SOURCE_EXECUTOR || st.AgentID.Value != o.AgentID.Value {
				t.Fatalf("first update %v", st)
			}
			s.ack(st)
			st = s.update("t1", 2*time.Second, mesos.TASK_RUNNING)
			s.ack(st)
			state := m.State()
			if got := state.Frameworks[0].Tasks; len(got) != 1 || got[0].State != "TASK_RUNNING" || got[0].Resources.CPUs != 1 {
				t.Fatalf("state tasks %+v", got)
			}
			s.mustCall(calls.Kill("t1", o.AgentID.Value))
			st = s.update("t1", 2*time.Second, mesos.TASK_KILLED)
			s.ack(st)
			waitFor(t, 2*time.Second, func() bool {
				fs := m.State().Frameworks[0]
				return len(fs.Tasks) == 0 && len(fs.CompletedTasks) == 1 && fs.CompletedTasks[0].State == "TASK_KILLED"
			})
		})
	}
}

func waitFor(t testing.TB, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
