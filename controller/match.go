package controller

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// Assignment places one Need on one offer.
type Assignment struct {
	// Need is the index into MatchOffers' needs.
	Need int
	// Offer is the index into MatchOffers' offers.
	Offer    int
	OfferID  mesos.OfferID
	AgentID  string
	Hostname string
	// Resources to put in the TaskInfo, taken from the offer (role, allocation
	// info and reservations kept).
	Resources []mesos.Resource
	// Ports taken from the offer's ranges, in order (PORT0, PORT1, ...).
	Ports []uint64
}

// MatchResult is what MatchOffers decided.
type MatchResult struct {
	Assignments []Assignment
	// Unplaced holds, per cluster key, why some of its needs found no offer: a
	// sentence for Stalled/NoOfferFits ("needs mem 64Gi, the largest offer has 8Gi").
	Unplaced map[string]string
}

const scalarEpsilon = 1e-6

// MatchOffers places needs on offers: by role, by cpus/mem/disk and port ranges,
// by placement (spread: hostname; Marathon constraints UNIQUE, CLUSTER, GROUP_BY,
// LIKE, UNLIKE, MAX_PER on agent attributes, "hostname" meaning the agent's
// hostname), several tasks per offer. agents gives the attributes of agents that
// hold existing members (learned from earlier offers), for constraints. Needs are
// tried in order, each on the offers round-robin from where the last one landed,
// so members spread over agents. It is pure.
func MatchOffers(needs []Need, offers []mesos.Offer, agents map[string][]mesos.Attribute) MatchResult {
	m := matcher{
		offers:  make([]*offerState, len(offers)),
		agents:  agents,
		extra:   map[string][]placed{},
		regexps: map[string]*regexp.Regexp{},
		values:  map[string]map[string]bool{},
		failed:  map[string]bool{},
	}
	for i := range offers {
		m.offers[i] = newOfferState(&offers[i])
	}
	res := MatchResult{Unplaced: map[string]string{}}
	for ni := range needs {
		n := &needs[ni]
		a, ok, why := m.place(n)
		if !ok {
			if _, seen := res.Unplaced[n.Key]; !seen {
				res.Unplaced[n.Key] = why
			}
			continue
		}
		a.Need = ni
		res.Assignments = append(res.Assignments, a)
	}
	return res
}

type placed struct {
	agentID  string
	hostname string
	attrs    []mesos.Attribute
}

type pool struct {
	tmpl   *mesos.Resource
	role   string
	scalar float64
	ranges []mesos.Value_Range // remaining, sorted
}

type offerState struct {
	offer     *mesos.Offer
	allocRole string
	pools     map[string][]*pool // by resource name
}

type shape struct{ cpus, mem, disk, ports float64 }

func resourceRole(r *mesos.Resource) string {
	if n := len(r.Reservations); n > 0 {
		return r.Reservations[n-1].GetRole()
	}
	if r.Role != nil && *r.Role != "" {
		return *r.Role
	}
	if r.Reservation != nil {
		return "" // reserved to an unknown role: never usable
	}
	return "*"
}

func newOfferState(o *mesos.Offer) *offerState {
	s := &offerState{offer: o, pools: map[string][]*pool{}}
	if o.AllocationInfo != nil {
		s.allocRole = o.AllocationInfo.GetRole()
	}
	for i := range o.Resources {
		r := &o.Resources[i]
		if r.Disk != nil || r.ProviderID != nil || r.Revocable != nil || r.Shared != nil {
			continue // volumes, provider and revocable resources are not ours to use
		}
		if id, _ := reservationLabels(r); id != "" {
			continue // a member's reservation: only that member uses it (placeSticky)
		}
		p := &pool{tmpl: r, role: resourceRole(r)}
		switch {
		case r.Scalar != nil:
			p.scalar = r.Scalar.Value
		case r.Ranges != nil:
			p.ranges = append([]mesos.Value_Range(nil), r.Ranges.Range...)
			sort.Slice(p.ranges, func(i, j int) bool { return p.ranges[i].Begin < p.ranges[j].Begin })
		default:
			continue
		}
		s.pools[r.Name] = append(s.pools[r.Name], p)
	}
	return s
}

func usable(p *pool, role string) bool { return p.role == "*" || (p.role != "" && p.role == role) }

func (s *offerState) roleOK(role string) bool {
	return s.allocRole == "" || role == "*" || s.allocRole == role
}

func (s *offerState) scalarAvail(name, role string) float64 {
	var v float64
	for _, p := range s.pools[name] {
		if usable(p, role) {
			v += p.scalar
		}
	}
	return v
}

func (s *offerState) portsAvail(role string) int {
	n := 0
	for _, p := range s.pools["ports"] {
		if usable(p, role) {
			for _, r := range p.ranges {
				n += int(r.End - r.Begin + 1)
			}
		}
	}
	return n
}

func (s *offerState) fits(n *Need) bool {
	return s.scalarAvail("cpus", n.Role)+scalarEpsilon >= n.CPUs &&
		s.scalarAvail("mem", n.Role)+scalarEpsilon >= n.MemMB &&
		s.scalarAvail("disk", n.Role)+scalarEpsilon >= n.DiskMB &&
		s.portsAvail(n.Role) >= n.Ports
}

// take removes the need's resources from the offer and returns them as
// TaskInfo resources and the ports taken. fits must have said yes.
func (s *offerState) take(n *Need) ([]mesos.Resource, []uint64) {
	var out []mesos.Resource
	for _, want := range []struct {
		name string
		v    float64
	}{{"cpus", n.CPUs}, {"mem", n.MemMB}, {"disk", n.DiskMB}} {
		left := roundScalar(want.v)
		for _, p := range s.pools[want.name] {
			if left <= scalarEpsilon {
				break
			}
			if !usable(p, n.Role) || p.scalar <= scalarEpsilon {
				continue
			}
			t := math.Min(left, p.scalar)
			p.scalar -= t
			left -= t
			r := *p.tmpl
			r.Scalar = &mesos.Value_Scalar{Value: roundScalar(t)}
			out = append(out, r)
		}
	}
	var ports []uint64
	left := n.Ports
	for _, p := range s.pools["ports"] {
		if left == 0 {
			break
		}
		if !usable(p, n.Role) {
			continue
		}
		var taken []mesos.Value_Range
		for left > 0 && len(p.ranges) > 0 {
			r := &p.ranges[0]
			cnt := min(uint64(left), r.End-r.Begin+1)
			taken = append(taken, mesos.Value_Range{Begin: r.Begin, End: r.Begin + cnt - 1})
			for port := r.Begin; port < r.Begin+cnt; port++ {
				ports = append(ports, port)
			}
			left -= int(cnt)
			r.Begin += cnt
			if r.Begin > r.End {
				p.ranges = p.ranges[1:]
			}
		}
		if len(taken) > 0 {
			r := *p.tmpl
			r.Scalar = nil
			r.Ranges = &mesos.Value_Ranges{Range: taken}
			out = append(out, r)
		}
	}
	return out, ports
}

// roundScalar rounds up to Mesos's fixed point (three decimals).
func roundScalar(v float64) float64 { return math.Ceil(v*1000-1e-6) / 1000 }

type matcher struct {
	offers  []*offerState
	cursor  int
	agents  map[string][]mesos.Attribute
	extra   map[string][]placed // members placed in this round, by cluster key
	regexps map[string]*regexp.Regexp
	values  map[string]map[string]bool // attribute -> values seen in offers
	// failed remembers resource shapes (without placement) no offer could hold,
	// so identical needs do not scan every offer again.
	failed map[string]bool
}

type diag struct {
	checked, roleOK, placementOK int
	placementWhy                 map[string]int
}

func (m *matcher) place(n *Need) (Assignment, bool, string) {
	unconstrained := (n.Spread == "" || n.Spread == v1alpha1.SpreadNone) && len(n.Constraints) == 0
	shapeKey := fmt.Sprintf("%s|%g|%g|%g|%d", n.Role, n.CPUs, n.MemMB, n.DiskMB, n.Ports)
	if unconstrained && m.failed[shapeKey] {
		return Assignment{}, false, m.explain(n, &diag{checked: len(m.offers), roleOK: -1})
	}
	d := diag{placementWhy: map[string]int{}}
	var peers []placed
	if !unconstrained {
		peers = m.peers(n)
	}
	for k := 0; k < len(m.offers); k++ {
		i := (m.cursor + k) % len(m.offers)
		s := m.offers[i]
		d.checked++
		if !s.roleOK(n.Role) {
			continue
		}
		d.roleOK++
		if !unconstrained {
			if why := m.placementViolation(n, s, peers); why != "" {
				d.placementWhy[why]++
				continue
			}
		}
		d.placementOK++
		if !s.fits(n) {
			continue
		}
		res, ports := s.take(n)
		m.cursor = (i + 1) % len(m.offers)
		o := s.offer
		m.extra[n.Key] = append(m.extra[n.Key], placed{agentID: o.AgentID.Value, hostname: o.Hostname, attrs: o.Attributes})
		return Assignment{Offer: i, OfferID: o.ID, AgentID: o.AgentID.Value, Hostname: o.Hostname, Resources: res, Ports: ports}, true, ""
	}
	if unconstrained {
		m.failed[shapeKey] = true
	}
	return Assignment{}, false, m.explain(n, &d)
}

func (m *matcher) peers(n *Need) []placed {
	out := make([]placed, 0, len(n.Peers)+len(m.extra[n.Key]))
	for _, p := range n.Peers {
		out = append(out, placed{agentID: p.AgentID, hostname: p.Hostname, attrs: m.agents[p.AgentID]})
	}
	return append(out, m.extra[n.Key]...)
}

func attrValue(name, hostname string, attrs []mesos.Attribute) (string, bool) {
	if name == "hostname" {
		return hostname, hostname != ""
	}
	for i := range attrs {
		a := &attrs[i]
		if a.Name != name {
			continue
		}
		switch {
		case a.Text != nil:
			return a.Text.Value, true
		case a.Scalar != nil:
			return strconv.FormatFloat(a.Scalar.Value, 'f', -1, 64), true
		case a.Ranges != nil:
			var parts []string
			for _, r := range a.Ranges.Range {
				parts = append(parts, fmt.Sprintf("%d-%d", r.Begin, r.End))
			}
			return "[" + strings.Join(parts, ",") + "]", true
		case a.Set != nil:
			return "{" + strings.Join(a.Set.Item, ",") + "}", true
		}
	}
	return "", false
}

// placementViolation returns "" when the offer satisfies the need's placement,
// else a short description of the rule it breaks.
func (m *matcher) placementViolation(n *Need, s *offerState, peers []placed) string {
	o := s.offer
	if n.Spread == v1alpha1.SpreadHostname {
		for _, p := range peers {
			if p.hostname == o.Hostname {
				return "spread: hostname (every offered host already has a member)"
			}
		}
	}
	for _, c := range n.Constraints {
		val, has := attrValue(c.Attribute, o.Hostname, o.Attributes)
		counts := map[string]int{}
		for _, p := range peers {
			if pv, ok := attrValue(c.Attribute, p.hostname, p.attrs); ok {
				counts[pv]++
			}
		}
		desc := strings.TrimSpace(fmt.Sprintf("constraint %s %s %s", c.Attribute, c.Operator, c.Value))
		ok := has
		switch c.Operator {
		case v1alpha1.OpUnique:
			ok = has && counts[val] == 0
		case v1alpha1.OpCluster:
			if has && c.Value != "" {
				ok = val == c.Value
			} else if has {
				for v := range counts {
					if v != val {
						ok = false
					}
				}
			}
		case v1alpha1.OpGroupBy:
			if has {
				// Known groups: the values of peers and of every offer at hand
				// (or at least Value of them); the offer's group must be among
				// the least used.
				groups, _ := strconv.Atoi(c.Value)
				known := m.offerValues(c.Attribute)
				minCount := math.MaxInt
				for v := range known {
					minCount = min(minCount, counts[v])
				}
				for _, cnt := range counts {
					minCount = min(minCount, cnt)
				}
				if minCount == math.MaxInt || len(union(known, counts)) < groups {
					minCount = 0
				}
				ok = counts[val] <= minCount
			}
		case v1alpha1.OpLike, v1alpha1.OpUnlike:
			re := m.regexp(c.Value)
			match := has && re != nil && re.MatchString(val)
			if c.Operator == v1alpha1.OpLike {
				ok = match
			} else {
				ok = re != nil && !match
			}
		case v1alpha1.OpMaxPer:
			limit, err := strconv.Atoi(c.Value)
			ok = has && err == nil && counts[val] < limit
		default:
			ok = false
		}
		if !ok {
			return desc
		}
	}
	return ""
}

// offerValues is the set of values an attribute has across the offers.
func (m *matcher) offerValues(attr string) map[string]bool {
	if v, ok := m.values[attr]; ok {
		return v
	}
	v := map[string]bool{}
	for _, s := range m.offers {
		if val, ok := attrValue(attr, s.offer.Hostname, s.offer.Attributes); ok {
			v[val] = true
		}
	}
	m.values[attr] = v
	return v
}

func union(a map[string]bool, b map[string]int) map[string]bool {
	u := make(map[string]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

func (m *matcher) regexp(expr string) *regexp.Regexp {
	if re, ok := m.regexps[expr]; ok {
		return re
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		re = nil
	}
	m.regexps[expr] = re
	return re
}

// explain writes the diagnosis for a need no offer could hold.
func (m *matcher) explain(n *Need, d *diag) string {
	if len(m.offers) == 0 {
		return "no offers from Mesos"
	}
	if d.roleOK == 0 {
		return fmt.Sprintf("no offer for role %q among %d offers", n.Role, d.checked)
	}
	if d.placementOK == 0 && len(d.placementWhy) > 0 {
		best, cnt := "", 0
		for why, c := range d.placementWhy {
			if c > cnt || (c == cnt && why < best) {
				best, cnt = why, c
			}
		}
		return fmt.Sprintf("no offer satisfies %s (%d offers checked)", best, d.checked)
	}
	// Resources: compare with the largest offer of a usable role, as offered.
	var largest shape
	for _, s := range m.offers {
		if !s.roleOK(n.Role) {
			continue
		}
		var sh shape
		for name, ps := range offeredTotals(s.offer, n.Role) {
			switch name {
			case "cpus":
				sh.cpus = ps
			case "mem":
				sh.mem = ps
			case "disk":
				sh.disk = ps
			case "ports":
				sh.ports = ps
			}
		}
		largest.cpus = math.Max(largest.cpus, sh.cpus)
		largest.mem = math.Max(largest.mem, sh.mem)
		largest.disk = math.Max(largest.disk, sh.disk)
		largest.ports = math.Max(largest.ports, sh.ports)
	}
	var parts []string
	if n.MemMB > largest.mem+scalarEpsilon {
		parts = append(parts, fmt.Sprintf("needs mem %s, the largest offer has %s", orText(n.MemText, mbQuantity(n.MemMB)), mbQuantity(largest.mem)))
	}
	if n.CPUs > largest.cpus+scalarEpsilon {
		parts = append(parts, fmt.Sprintf("needs cpus %s, the largest offer has %s", orText(n.CPUText, cpuQuantity(n.CPUs)), cpuQuantity(largest.cpus)))
	}
	if n.DiskMB > largest.disk+scalarEpsilon {
		parts = append(parts, fmt.Sprintf("needs disk %s, the largest offer has %s", orText(n.DiskText, mbQuantity(n.DiskMB)), mbQuantity(largest.disk)))
	}
	if float64(n.Ports) > largest.ports {
		parts = append(parts, fmt.Sprintf("needs %d ports, the largest offer has %d", n.Ports, int(largest.ports)))
	}
	if len(parts) > 0 {
		return strings.Join(parts, "; ")
	}
	return fmt.Sprintf("no offer has cpus %s, mem %s, disk %s and %d ports free at once (%d offers checked)",
		orText(n.CPUText, cpuQuantity(n.CPUs)), orText(n.MemText, mbQuantity(n.MemMB)), orText(n.DiskText, mbQuantity(n.DiskMB)), n.Ports, d.checked)
}

// offeredTotals sums an offer's resources usable by role, as offered: scalars by
// value, ports by count.
func offeredTotals(o *mesos.Offer, role string) map[string]float64 {
	out := map[string]float64{}
	for i := range o.Resources {
		r := &o.Resources[i]
		rr := resourceRole(r)
		if rr != "*" && (rr == "" || rr != role) {
			continue
		}
		switch {
		case r.Scalar != nil:
			out[r.Name] += r.Scalar.Value
		case r.Ranges != nil:
			for _, g := range r.Ranges.Range {
				out[r.Name] += float64(g.End - g.Begin + 1)
			}
		}
	}
	return out
}

func orText(text, alt string) string {
	if text != "" {
		return text
	}
	return alt
}

func mbQuantity(mb float64) string {
	return resource.NewQuantity(int64(math.Round(mb*(1<<20))), resource.BinarySI).String()
}

func cpuQuantity(c float64) string {
	return resource.NewMilliQuantity(int64(math.Round(c*1000)), resource.DecimalSI).String()
}
