package localmesos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/converge-io/converge/election"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func postFault(t *testing.T, m *Mesos, path string) map[string]any {
	t.Helper()
	resp, err := http.Post(m.URL()+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func running(t *testing.T, s *sched, id string) mesos.Offer {
	t.Helper()
	o := launchOne(t, s, id)
	s.ack(s.update(id, 2*time.Second, mesos.TASK_STARTING))
	s.ack(s.update(id, 2*time.Second, mesos.TASK_RUNNING))
	return o
}

func TestFaultTaskFail(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	running(t, s, "t1")
	postFault(t, m, "/fault/task/fail?task=t1")
	st := s.update("t1", 2*time.Second)
	if st.GetState() != mesos.TASK_FAILED || len(st.UUID) != 16 {
		t.Fatalf("%v", st)
	}
	s.ack(st)
	waitFor(t, 2*time.Second, func() bool { return len(m.State().Frameworks[0].Tasks) == 0 })
	resp, _ := http.Post(m.URL()+"/fault/task/fail?task=nope", "", nil)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("unknown task: %d", resp.StatusCode)
	}
}

func TestFaultAgentLoseRestore(t *testing.T) {
	m := startMesos(t, testOptions())
	pa := subscribe(t, m.URL(), pbCodec, frameworkInfo("pa", mesos.FrameworkInfo_Capability_PARTITION_AWARE))
	o := running(t, pa, "t1")
	pa.mustCall(calls.Suppress())
	m.RescindOffers() // give pa's outstanding offers back
	legacy := subscribe(t, m.URL(), jsonCodec, frameworkInfo("legacy"))
	var lo mesos.Offer
	for _, off := range legacy.offers(3, 3*time.Second) {
		if off.AgentID == o.AgentID {
			lo = off
		}
	}
	legacy.mustCall(launch(lo, cmdTask("l1", lo, "sleep 1000")))
	legacy.ack(legacy.update("l1", 2*time.Second, mesos.TASK_STARTING))
	legacy.ack(legacy.update("l1", 2*time.Second, mesos.TASK_RUNNING))

	var host string
	for _, a := range m.State().Slaves {
		if a.ID == o.AgentID.Value {
			host = a.Hostname
		}
	}
	postFault(t, m, "/fault/agent/lose?agent="+host)
	if st := pa.update("t1", 2*time.Second); st.GetState() != mesos.TASK_UNREACHABLE {
		t.Fatalf("partition-aware: %v", st)
	}
	if st := legacy.update("l1", 2*time.Second); st.GetState() != mesos.TASK_LOST {
		t.Fatalf("legacy: %v", st)
	}
	ev := legacy.next(scheduler.Event_FAILURE, 2*time.Second)
	if ev.Failure.AgentID.Value != o.AgentID.Value || ev.Failure.ExecutorID != nil {
		t.Fatalf("failure %v", ev.Failure)
	}
	st := m.State()
	if st.UnreachableSlaves != 1 || len(st.Frameworks[0].UnreachableTasks) != 1 {
		t.Fatalf("state after lose: %+v", st)
	}
	// No offers for the lost agent.
	m.RescindOffers()
	for i := 0; i < 3; i++ {
		for _, off := range legacy.offers(2, 2*time.Second) {
			if off.AgentID == o.AgentID {
				t.Fatal("offer for an unreachable agent")
			}
		}
		m.RescindOffers()
	}

	postFault(t, m, "/fault/agent/restore?agent="+o.AgentID.Value)
	pa.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"t1": o.AgentID.Value})))
	if st := pa.update("t1", 2*time.Second); st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("partition-aware after restore: %v", st)
	}
	// The legacy framework's task was killed when the agent came back.
	legacy.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"l1": o.AgentID.Value})))
	if st := legacy.update("l1", 2*time.Second); st.GetState() != mesos.TASK_LOST {
		t.Fatalf("legacy after restore: %v", st)
	}
	waitFor(t, time.Second, func() bool {
		for _, f := range m.State().Frameworks {
			if f.Name == "legacy" {
				return len(f.Tasks) == 0
			}
		}
		return false
	})
}

func TestFaultRescindAndUpdates(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	offers := s.offers(3, 2*time.Second)
	s.mustCall(calls.Suppress())
	out := postFault(t, m, "/fault/offers/rescind")
	if out["rescinded"].(float64) < 3 {
		t.Fatalf("rescinded %v", out)
	}
	ev := s.next(scheduler.Event_RESCIND, 2*time.Second)
	found := false
	for _, o := range offers {
		if o.ID == ev.Rescind.OfferID {
			found = true
		}
	}
	if !found {
		t.Fatalf("rescinded unknown offer %v", ev.Rescind.OfferID)
	}
	// A rescinded offer is invalid.
	s.mustCall(launch(offers[0], cmdTask("x", offers[0], "true")))
	if st := s.update("x", 2*time.Second); st.GetState() != mesos.TASK_LOST {
		t.Fatalf("launch on rescinded offer: %v", st)
	}
	// Duplicated updates.
	postFault(t, m, "/fault/updates?duplicate=1")
	s.mustCall(calls.Revive())
	launchOne(t, s, "t1")
	a := s.update("t1", 2*time.Second, mesos.TASK_STARTING)
	b := s.update("t1", 2*time.Second, mesos.TASK_STARTING)
	if string(a.UUID) != string(b.UUID) {
		t.Fatal("duplicate has another uuid")
	}
	// Dropped updates: nothing arrives until drop is lifted, then the resend delivers.
	postFault(t, m, "/fault/updates?drop=1&duplicate=0")
	s.ack(a)
	if ev := s.wait(400*time.Millisecond, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetState() == mesos.TASK_RUNNING
	}); ev != nil {
		t.Fatal("update delivered while dropping")
	}
	postFault(t, m, "/fault/updates?drop=0")
	s.ack(s.update("t1", 3*time.Second, mesos.TASK_RUNNING))
}

func TestFaultMasterFailoverSingleMaster(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	postFault(t, m, "/fault/master/failover")
	select {
	case <-s.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("stream survived master failover")
	}
	fi := frameworkInfo("fw")
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	s2 := subscribe(t, m.URL(), pbCodec, fi)
	if s2.fwID != s.fwID {
		t.Fatalf("id %s, want %s", s2.fwID, s.fwID)
	}
}

func TestSimulatedElectionMessages(t *testing.T) {
	o := testOptions()
	o.Sim.Position = func(id string) string { return "pos-" + id }
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	off := running(t, s, "t1")
	q := election.Message{Type: election.TypePositionQuery, Epoch: 7, TaskID: "t1"}
	s.mustCall(calls.Message(off.AgentID.Value, "t1", q.Encode()))
	ev := s.next(scheduler.Event_MESSAGE, 2*time.Second)
	got, err := election.Decode(ev.Message.Data)
	if err != nil || got.Type != election.TypePosition || got.Position != "pos-t1" || got.Epoch != 7 || ev.Message.AgentID != off.AgentID || ev.Message.ExecutorID.Value != "t1" {
		t.Fatalf("answer %+v %v (%v)", got, ev.Message, err)
	}
	// As converge's executor: promote asks for the master lease first, and
	// confirms only once it is granted; follow is confirmed.
	s.mustCall(calls.Message(off.AgentID.Value, "t1", election.Message{Type: election.TypePromote, Epoch: 7, TaskID: "t1"}.Encode()))
	ev = s.next(scheduler.Event_MESSAGE, 2*time.Second)
	req, _ := election.Decode(ev.Message.Data)
	if req.Type != election.TypeLeaseRequest || req.Epoch != 7 || req.Seq == 0 {
		t.Fatalf("promote answer %+v, want a lease request", req)
	}
	grant := election.Message{Type: election.TypeLeaseGrant, Epoch: 7, TaskID: "t1", Seq: req.Seq, LeaseMillis: 60000}
	s.mustCall(calls.Message(off.AgentID.Value, "t1", grant.Encode()))
	ev = s.next(scheduler.Event_MESSAGE, 2*time.Second)
	if got, _ := election.Decode(ev.Message.Data); got.Type != election.TypePromoted || got.Epoch != 7 {
		t.Fatalf("answer to the grant %+v, want promoted", got)
	}
	s.mustCall(calls.Message(off.AgentID.Value, "t1", election.Message{Type: election.TypeFollow, Epoch: 8, TaskID: "t1"}.Encode()))
	ev = s.next(scheduler.Event_MESSAGE, 2*time.Second)
	if got, _ := election.Decode(ev.Message.Data); got.Type != election.TypeFollowed || got.Epoch != 8 {
		t.Fatalf("follow answer %+v", got)
	}
	if a1, a2 := simPosition("a"), simPosition("a"); a1 != a2 || a1 == simPosition("b") {
		t.Fatal("default position not deterministic")
	}
}

// TestManyAgentsOffersSplit: one offer round whose OFFERS event would exceed
// mesos-go's 4 MiB frame limit (300 agents with a 20 KB attribute each: 256
// offers, the most per event, make 5 MB) goes out as several events, each
// frame under the limit, and every agent's offer arrives. Frames are read off
// the wire, as RecordIO, to measure them.
func TestManyAgentsOffersSplit(t *testing.T) {
	const agents, limit = 300, 4 << 20 // mesos-go's recordio reader takes frames up to 1<<22 bytes
	o := testOptions()
	o.Agents = agents
	o.AgentAttributes = "pad:" + strings.Repeat("p", 20<<10) + ";rack:r{i}"
	m := startMesos(t, o)
	body := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"test","name":"split"}}}`
	req, err := http.NewRequest(http.MethodPost, m.URL()+"/api/v1/scheduler", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("SUBSCRIBE: %s", res.Status)
	}
	rd := bufio.NewReader(res.Body)
	hosts := map[string]bool{}
	var sizes, counts []int
	for len(hosts) < agents {
		frame, err := readRecordIO(rd)
		if err != nil {
			t.Fatalf("after %d OFFERS events (%d agents' offers): %v", len(counts), len(hosts), err)
		}
		var ev struct {
			Type   string `json:"type"`
			Offers struct {
				Offers []struct {
					Hostname string `json:"hostname"`
				} `json:"offers"`
			} `json:"offers"`
		}
		if err := json.Unmarshal(frame, &ev); err != nil {
			t.Fatalf("frame of %d bytes: %v", len(frame), err)
		}
		if ev.Type != "OFFERS" {
			continue
		}
		sizes, counts = append(sizes, len(frame)), append(counts, len(ev.Offers.Offers))
		for _, of := range ev.Offers.Offers {
			hosts[of.Hostname] = true
		}
	}
	t.Logf("OFFERS events: offers %v, frame bytes %v", counts, sizes)
	for k, n := range sizes {
		if n > limit {
			t.Errorf("OFFERS event %d (%d offers) is a %d-byte frame, over mesos-go's %d", k, counts[k], n, limit)
		}
	}
	// 300 offers fit in 2 events of at most offersPerEvent (256): more events
	// means the 256-offer one, too big to send, was split.
	if len(counts) <= (agents+offersPerEvent-1)/offersPerEvent {
		t.Errorf("%d OFFERS events for %d offers: the oversized event was not split", len(counts), agents)
	}
}

// readRecordIO reads one RecordIO record ("<length>\n<bytes>"), the framing of
// the scheduler API's event stream.
func readRecordIO(rd *bufio.Reader) ([]byte, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("bad RecordIO length %q", line)
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(rd, buf)
	return buf, err
}
