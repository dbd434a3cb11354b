package localmesos

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func TestParseAgentResources(t *testing.T) {
	r, err := ParseAgentResources("cpus:2;mem:1024;gpus:1;ports:[10000-10099,20000-20009]")
	if err != nil {
		t.Fatal(err)
	}
	if r.Scalars["cpus"] != 2 || r.Scalars["mem"] != 1024 || r.Scalars["disk"] != 65536 || r.Scalars["gpus"] != 1 || len(r.Ports) != 2 {
		t.Fatalf("%+v", r)
	}
	for _, bad := range []string{"cpus", "cpus:x", "cpus:-1", "ports:[5-1]", "ports:[1-2", "mem:[1-2]", "cpus:1;cpus:2"} {
		if _, err := ParseAgentResources(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if p := agentPorts([]mesos.Value_Range{{Begin: 31000, End: 31999}}, 2); p[0].Begin != 33000 || p[0].End != 33999 {
		t.Fatalf("agent 2 ports %v", p)
	}
	attrs, err := agentAttributes("rack:r{i%3};zone:z1;idx:{i}", 4)
	if err != nil || len(attrs) != 3 || attrs[0].Text.Value != "r1" || attrs[1].Text.Value != "z1" || attrs[2].Scalar.Value != 4 {
		t.Fatalf("%v %v", attrs, err)
	}
	if _, err := agentAttributes("rack:{j}", 0); err == nil {
		t.Fatal("bad template accepted")
	}
	if agentHostname(0) != "127.0.0.1" || agentHostname(299) != "127.0.1.44" {
		t.Fatal(agentHostname(299))
	}
}

func TestDeclineReviveSuppress(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	offers := s.offers(3, 2*time.Second)
	var ids []mesos.OfferID
	for _, o := range offers {
		ids = append(ids, o.ID)
	}
	s.mustCall(calls.Decline(ids...).With(calls.RefuseSeconds(time.Hour)))
	if ev := s.wait(300*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }); ev != nil {
		t.Fatalf("offers despite decline filter: %v", ev.Offers.Offers)
	}
	s.mustCall(calls.Revive())
	offers = s.offers(3, 2*time.Second)
	s.mustCall(calls.Suppress())
	ids = ids[:0]
	for _, o := range offers {
		ids = append(ids, o.ID)
	}
	s.mustCall(calls.Decline(ids...).With(calls.RefuseSeconds(0)))
	if ev := s.wait(300*time.Millisecond, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }); ev != nil {
		t.Fatal("offers while suppressed")
	}
	s.mustCall(calls.Revive())
	s.offers(3, 2*time.Second)
}

func TestLaunchGroup(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	offers := s.offers(2, 2*time.Second)
	ex := mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "grp"}, Type: mesos.ExecutorInfo_DEFAULT, Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32), scalar("disk", 1)},
		FrameworkID: &mesos.FrameworkID{Value: s.fwID}}
	groupTask := func(id string, o mesos.Offer, cpus float64) mesos.TaskInfo {
		return mesos.TaskInfo{Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID, Resources: []mesos.Resource{scalar("cpus", cpus), scalar("mem", 32)}}
	}
	o := offers[0]
	s.mustCall(calls.Accept(calls.OfferOperations{calls.OpLaunchGroup(ex, groupTask("g1", o, 1), groupTask("g2", o, 1))}.WithOffers(o.ID)))
	got := map[string]bool{}
	for len(got) < 2 {
		ev := s.next(scheduler.Event_UPDATE, 2*time.Second)
		st := ev.Update.Status
		s.ack(&st)
		if st.GetState() == mesos.TASK_RUNNING {
			if st.ExecutorID.GetValue() != "grp" {
				t.Fatalf("executor id %v", st.ExecutorID)
			}
			got[st.TaskID.Value] = true
		}
	}
	// All or nothing.
	o = offers[1]
	s.mustCall(calls.Accept(calls.OfferOperations{calls.OpLaunchGroup(ex, groupTask("g3", o, 1), groupTask("g4", o, 100))}.WithOffers(o.ID)))
	upd := s.updates(2, 2*time.Second)
	if upd["g3"].GetState() != mesos.TASK_ERROR || upd["g4"].GetState() != mesos.TASK_ERROR {
		t.Fatalf("group with a bad task: %v", upd)
	}
}

func TestMultiRoleOffersAndUpdateFramework(t *testing.T) {
	m := startMesos(t, testOptions())
	fi := frameworkInfo("fw", mesos.FrameworkInfo_Capability_MULTI_ROLE)
	fi.Roles = []string{"a", "b"}
	s := subscribe(t, m.URL(), pbCodec, fi)
	offers := s.offers(3, 2*time.Second)
	roles := map[string]int{}
	for _, o := range offers {
		if o.AllocationInfo == nil || o.Resources[0].AllocationInfo == nil || o.Resources[0].GetRole() != "*" {
			t.Fatalf("offer without allocation info: %v", o)
		}
		roles[o.AllocationInfo.GetRole()]++
	}
	if roles["a"] == 0 || roles["b"] == 0 || roles["a"]+roles["b"] != 3 {
		t.Fatalf("roles %v", roles)
	}
	// Dropping role b rescinds its offers.
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	fi.Roles = []string{"a"}
	resp, _ := rawPost(t, m.URL()+"/api/v1/scheduler", "application/x-protobuf", m.streamIDOf(s.fwID), encodeCall(t, calls.UpdateFramework(*fi).With(calls.Framework(s.fwID)), false))
	if resp.StatusCode != 200 {
		t.Fatalf("update framework %d", resp.StatusCode)
	}
	n := 0
	for n < roles["b"] {
		ev := s.next(scheduler.Event_RESCIND, 2*time.Second)
		for _, o := range offers {
			if o.ID == ev.Rescind.OfferID && o.AllocationInfo.GetRole() != "b" {
				t.Fatalf("rescinded role %s offer", o.AllocationInfo.GetRole())
			}
		}
		n++
	}
	// Legacy frameworks get no allocation info.
	s.mustCall(calls.Suppress())
	s2 := subscribe(t, m.URL(), pbCodec, frameworkInfo("legacy"))
	m.RescindOffers()
	for _, o := range s2.offers(1, 2*time.Second) {
		if o.AllocationInfo != nil || o.Resources[0].AllocationInfo != nil {
			t.Fatalf("legacy offer with allocation info: %v", o)
		}
	}
	// Bad roles are rejected with an ERROR event.
	bad := frameworkInfo("bad")
	role := ""
	bad.Role = &role
	c := newCaller(m.URL(), pbCodec)
	r, err := c.Call(t.Context(), calls.Subscribe(bad))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var e scheduler.Event
	if err := r.Decode(&e); err != nil || e.Type != scheduler.Event_ERROR {
		t.Fatalf("bad role: %v %v", e, err)
	}
}

func (m *Mesos) streamIDOf(fwID string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fw := m.frameworks[fwID]; fw != nil && fw.stream != nil {
		return fw.stream.id
	}
	return ""
}

func TestStateEndpoint(t *testing.T) {
	o := testOptions()
	o.AgentAttributes = "rack:r{i%2}"
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	running(t, s, "t1")
	resp, err := http.Get(m.URL() + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	fws := st["frameworks"].([]any)
	fw := fws[0].(map[string]any)
	task := fw["tasks"].([]any)[0].(map[string]any)
	if fw["id"] != s.fwID || fw["active"] != true || task["id"] != "t1" || task["state"] != "TASK_RUNNING" || task["framework_id"] != s.fwID || task["slave_id"] == "" {
		t.Fatalf("framework %v", fw)
	}
	if res := task["resources"].(map[string]any); res["cpus"].(float64) != 0.1 {
		t.Fatalf("task resources %v", res)
	}
	slaves := st["slaves"].([]any)
	if len(slaves) != 3 || st["leader"] == "" || st["hostname"] != "127.0.0.1" {
		t.Fatalf("state %v", st)
	}
	used := 0.0
	for _, sl := range slaves {
		a := sl.(map[string]any)
		used += a["used_resources"].(map[string]any)["cpus"].(float64)
		if a["active"] != true || a["attributes"].(map[string]any)["rack"] == nil || a["resources"].(map[string]any)["ports"] == "" {
			t.Fatalf("agent %v", a)
		}
	}
	if used < 0.099 || used > 0.101 {
		t.Fatalf("used cpus %v", used)
	}
}
