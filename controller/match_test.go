package controller

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/apis/v1alpha1"
)

func scalar(name string, v float64, role string) mesos.Resource {
	t := mesos.SCALAR
	r := mesos.Resource{Name: name, Type: &t, Scalar: &mesos.Value_Scalar{Value: v}}
	if role != "" {
		r.Role = &role
	}
	return r
}

func ports(begin, end uint64) mesos.Resource {
	t := mesos.RANGES
	return mesos.Resource{Name: "ports", Type: &t, Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: begin, End: end}}}}
}

func textAttr(name, v string) mesos.Attribute {
	return mesos.Attribute{Name: name, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}}
}

// offer on agent i: host 127.0.0.(i+1), cpus 4, mem 8Gi, ports 31000+100i..+99.
func offer(i int, attrs ...mesos.Attribute) mesos.Offer {
	return mesos.Offer{
		ID: mesos.OfferID{Value: fmt.Sprintf("O%d", i)}, AgentID: mesos.AgentID{Value: fmt.Sprintf("S%d", i)},
		Hostname:   fmt.Sprintf("127.0.0.%d", i+1),
		Resources:  []mesos.Resource{scalar("cpus", 4, ""), scalar("mem", 8192, ""), scalar("disk", 65536, ""), ports(uint64(31000+100*i), uint64(31099+100*i))},
		Attributes: attrs,
	}
}

func need(key string, ord int32, mods ...func(*Need)) Need {
	n := Need{Key: key, Namespace: "default", Cluster: key, Ordinal: ord, Role: "*", CPUs: 1, MemMB: 1024, Ports: 2, MemText: "1Gi"}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func hosts(res MatchResult, offers []mesos.Offer) []string {
	var out []string
	for _, a := range res.Assignments {
		out = append(out, offers[a.Offer].Hostname)
	}
	return out
}

func TestMatchResourcesAndPorts(t *testing.T) {
	offers := []mesos.Offer{offer(0)}
	res := MatchOffers([]Need{need("a", 0), need("a", 1), need("a", 2), need("a", 3), need("a", 4)}, offers, nil)
	if len(res.Assignments) != 4 {
		t.Fatalf("4 cpus should hold 4 tasks of 1 cpu, got %d", len(res.Assignments))
	}
	a := res.Assignments[1]
	if !reflect.DeepEqual(a.Ports, []uint64{31002, 31003}) {
		t.Fatalf("ports = %v", a.Ports)
	}
	var cpus, mem float64
	var rng []mesos.Value_Range
	for _, r := range a.Resources {
		switch r.Name {
		case "cpus":
			cpus += r.Scalar.Value
		case "mem":
			mem += r.Scalar.Value
		case "ports":
			rng = r.Ranges.Range
		}
	}
	if cpus != 1 || mem != 1024 || !reflect.DeepEqual(rng, []mesos.Value_Range{{Begin: 31002, End: 31003}}) {
		t.Fatalf("resources = cpus %v mem %v ports %v", cpus, mem, rng)
	}
	if why := res.Unplaced["a"]; !strings.Contains(why, "no offer has") {
		t.Fatalf("unplaced = %q", why)
	}
}

func TestMatchRoles(t *testing.T) {
	reserved := offer(0)
	reserved.Resources = []mesos.Resource{scalar("cpus", 2, "db"), scalar("cpus", 2, "*"), scalar("mem", 4096, "db"), ports(31000, 31010)}
	role := "db"
	reserved.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	// Role db may use its reservation plus unreserved resources.
	res := MatchOffers([]Need{need("a", 0, func(n *Need) { n.Role = "db"; n.CPUs = 3 })}, []mesos.Offer{reserved}, nil)
	if len(res.Assignments) != 1 {
		t.Fatalf("db need not placed: %v", res.Unplaced)
	}
	var roles []string
	for _, r := range res.Assignments[0].Resources {
		if r.Name == "cpus" {
			roles = append(roles, resourceRole(&r)+fmt.Sprint(r.Scalar.Value))
		}
	}
	if !reflect.DeepEqual(roles, []string{"db2", "*1"}) {
		t.Fatalf("cpus taken = %v", roles)
	}
	// Role "*" may not use the db reservation (mem is all reserved).
	res = MatchOffers([]Need{need("b", 0)}, []mesos.Offer{reserved}, nil)
	if len(res.Assignments) != 0 || !strings.Contains(res.Unplaced["b"], "needs mem 1Gi, the largest offer has 0") {
		t.Fatalf("unplaced = %v", res.Unplaced)
	}
	// Another role: offers allocated to db do not serve it.
	res = MatchOffers([]Need{need("c", 0, func(n *Need) { n.Role = "web" })}, []mesos.Offer{reserved}, nil)
	if !strings.Contains(res.Unplaced["c"], `no offer for role "web"`) {
		t.Fatalf("unplaced = %v", res.Unplaced)
	}
}

func TestMatchDiagnosis(t *testing.T) {
	res := MatchOffers([]Need{need("big", 0, func(n *Need) { n.MemMB = 64 * 1024; n.MemText = "64Gi" })}, []mesos.Offer{offer(0), offer(1)}, nil)
	if got := res.Unplaced["big"]; got != "needs mem 64Gi, the largest offer has 8Gi" {
		t.Fatalf("diagnosis = %q", got)
	}
	res = MatchOffers([]Need{need("p", 0, func(n *Need) { n.Ports = 500 })}, []mesos.Offer{offer(0)}, nil)
	if got := res.Unplaced["p"]; got != "needs 500 ports, the largest offer has 100" {
		t.Fatalf("diagnosis = %q", got)
	}
}

func TestMatchSpreadHostname(t *testing.T) {
	offers := []mesos.Offer{offer(0), offer(1), offer(2)}
	spread := func(n *Need) { n.Spread = v1alpha1.SpreadHostname }
	peers := func(n *Need) { n.Peers = []Peer{{AgentID: "S1", Hostname: "127.0.0.2"}} }
	res := MatchOffers([]Need{need("a", 0, spread, peers), need("a", 1, spread, peers), need("a", 2, spread, peers)}, offers, nil)
	if got := hosts(res, offers); !reflect.DeepEqual(got, []string{"127.0.0.1", "127.0.0.3"}) {
		t.Fatalf("hosts = %v", got)
	}
	if why := res.Unplaced["a"]; !strings.Contains(why, "spread: hostname") {
		t.Fatalf("unplaced = %q", why)
	}
	// Without spread the three land round-robin too, but may share.
	res = MatchOffers([]Need{need("b", 0), need("b", 1), need("b", 2), need("b", 3)}, offers, nil)
	if got := hosts(res, offers); !reflect.DeepEqual(got, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"}) {
		t.Fatalf("hosts = %v", got)
	}
}

func TestMatchConstraints(t *testing.T) {
	rack := func(r string) mesos.Attribute { return textAttr("rack", r) }
	offers := []mesos.Offer{offer(0, rack("r1")), offer(1, rack("r1")), offer(2, rack("r2")), offer(3, rack("r3")), offer(4)}
	agents := map[string][]mesos.Attribute{"S9": {rack("r2")}}
	with := func(cs ...v1alpha1.Constraint) func(*Need) {
		return func(n *Need) { n.Constraints = cs }
	}
	cases := []struct {
		name  string
		cons  []v1alpha1.Constraint
		peers []Peer
		n     int
		want  []string
	}{
		{"UNIQUE rack", []v1alpha1.Constraint{{Attribute: "rack", Operator: "UNIQUE"}}, nil, 4, []string{"127.0.0.1", "127.0.0.3", "127.0.0.4"}},
		{"UNIQUE rack with a peer in r2", []v1alpha1.Constraint{{Attribute: "rack", Operator: "UNIQUE"}}, []Peer{{AgentID: "S9", Hostname: "10.0.0.9"}}, 3, []string{"127.0.0.1", "127.0.0.4"}},
		{"UNIQUE hostname", []v1alpha1.Constraint{{Attribute: "hostname", Operator: "UNIQUE"}}, []Peer{{AgentID: "S0", Hostname: "127.0.0.1"}}, 2, []string{"127.0.0.2", "127.0.0.3"}},
		{"CLUSTER value", []v1alpha1.Constraint{{Attribute: "rack", Operator: "CLUSTER", Value: "r1"}}, nil, 3, []string{"127.0.0.1", "127.0.0.2", "127.0.0.1"}},
		{"CLUSTER follows the peers", []v1alpha1.Constraint{{Attribute: "rack", Operator: "CLUSTER"}}, []Peer{{AgentID: "S9"}}, 2, []string{"127.0.0.3", "127.0.0.3"}},
		{"LIKE", []v1alpha1.Constraint{{Attribute: "rack", Operator: "LIKE", Value: "r[23]"}}, nil, 2, []string{"127.0.0.3", "127.0.0.4"}},
		{"UNLIKE", []v1alpha1.Constraint{{Attribute: "rack", Operator: "UNLIKE", Value: "r1"}}, nil, 3, []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"}},
		{"MAX_PER 1", []v1alpha1.Constraint{{Attribute: "rack", Operator: "MAX_PER", Value: "1"}}, nil, 4, []string{"127.0.0.1", "127.0.0.3", "127.0.0.4"}},
		{"GROUP_BY spreads evenly", []v1alpha1.Constraint{{Attribute: "rack", Operator: "GROUP_BY", Value: "3"}}, nil, 6, []string{"127.0.0.1", "127.0.0.3", "127.0.0.4", "127.0.0.1", "127.0.0.3", "127.0.0.4"}},
		{"GROUP_BY with a peer", []v1alpha1.Constraint{{Attribute: "rack", Operator: "GROUP_BY"}}, []Peer{{AgentID: "S9"}}, 2, []string{"127.0.0.1", "127.0.0.4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var needs []Need
			for i := 0; i < tc.n; i++ {
				needs = append(needs, need("c", int32(i), with(tc.cons...), func(n *Need) { n.Peers = tc.peers; n.CPUs = 0.1; n.MemMB = 10 }))
			}
			res := MatchOffers(needs, offers, agents)
			if got := hosts(res, offers); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("hosts = %v, want %v (unplaced %v)", got, tc.want, res.Unplaced)
			}
			if len(res.Assignments) < tc.n && !strings.Contains(res.Unplaced["c"], "constraint rack") && !strings.Contains(res.Unplaced["c"], "constraint hostname") {
				t.Fatalf("unplaced = %q", res.Unplaced["c"])
			}
		})
	}
}

func BenchmarkMatchOffers(b *testing.B) {
	var offers []mesos.Offer
	for i := 0; i < 1000; i++ {
		offers = append(offers, offer(i))
	}
	var needs []Need
	for c := 0; c < 1000; c++ {
		for o := 0; o < 10; o++ {
			needs = append(needs, need(fmt.Sprintf("c%d", c), int32(o), func(n *Need) { n.Spread = v1alpha1.SpreadHostname; n.CPUs = 0.1; n.MemMB = 32; n.Ports = 1 }))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := MatchOffers(needs, offers, nil)
		if len(res.Assignments) != len(needs) {
			b.Fatalf("placed %d of %d", len(res.Assignments), len(needs))
		}
	}
}
