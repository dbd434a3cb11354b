package localmesos

import (
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

const (
	defaultRefuseSeconds = 5.0
	maxRefuseSeconds     = 365 * 24 * 3600.0
	// offersPerEvent bounds one OFFERS event; events larger than maxFrameBytes after
	// encoding are split further.
	offersPerEvent = 256

	minAllocatableCPUs = 0.01
	minAllocatableMem  = 32.0
)

func (m *Mesos) allocatorLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.AllocationInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.mu.Lock()
			if !m.closed {
				m.allocate(time.Now())
			}
			m.mu.Unlock()
		}
	}
}

// allocate makes one offer round: per connected framework, one offer per reachable
// agent with all of its unused, unoffered resources, for one of the framework's
// unsuppressed roles (roles take turns), unless a decline filter covers them. Frameworks take turns being first, so that several
// frameworks share the cluster. Cost: O(frameworks * roles * agents).
func (m *Mesos) allocate(now time.Time) {
	n := len(m.fwOrder)
	if n == 0 {
		return
	}
	m.allocRound++
	for k := 0; k < n; k++ {
		fw := m.fwOrder[(m.allocRound+k)%n]
		if !fw.connected {
			continue
		}
		var batch []mesos.Offer
		nr := len(fw.roles)
		for i, a := range m.agents {
			if !a.reachable {
				continue
			}
			all := a.available()
			// An agent's resources go to one role per round; roles take turns.
			for r := 0; r < nr; r++ {
				role := fw.roles[(m.allocRound+i+r)%nr]
				// The unreserved resources and those reserved for role.
				av := all.forRole(role)
				if fl := av.flat(); fl.cpus < minAllocatableCPUs && fl.mem < minAllocatableMem {
					continue // Mesos's default --min_allocatable_resources
				}
				if fw.suppressed[role] || m.filtered(fw, a, role, av, now) {
					continue
				}
				m.nextOffer++
				o := &offer{id: fmt.Sprintf("%s-O%d", m.masters[m.leader].id, m.nextOffer), fw: fw, agent: a, role: role, res: av}
				a.offered.add(av)
				m.offers[o.id] = o
				fw.offers[o.id] = o
				batch = append(batch, m.offerProto(o))
				break
			}
		}
		m.sendOffers(fw, batch)
	}
}

// filtered reports whether a decline filter of fw covers av on agent a for role.
func (m *Mesos) filtered(fw *framework, a *agent, role string, av res, now time.Time) bool {
	key := a.id + "/" + role
	f, ok := fw.filters[key]
	if !ok {
		return false
	}
	if !now.Before(f.until) {
		delete(fw.filters, key)
		return false
	}
	return f.res.contains(av)
}

func (m *Mesos) offerProto(o *offer) mesos.Offer {
	allocRole := ""
	if o.fw.multiRole {
		allocRole = o.role
	}
	a := o.agent
	port := int32(a.port())
	path := "/slave(1)"
	off := mesos.Offer{
		ID:          mesos.OfferID{Value: o.id},
		FrameworkID: mesos.FrameworkID{Value: o.fw.id},
		AgentID:     mesos.AgentID{Value: a.id},
		Hostname:    a.hostname,
		URL: &mesos.URL{
			Scheme:  "http",
			Address: mesos.Address{Hostname: &a.hostname, IP: &a.hostname, Port: port},
			Path:    &path,
		},
		Resources:  o.res.protoIn(allocRole, o.fw.resFormat()),
		Attributes: a.attrs,
	}
	for _, e := range a.executors {
		if e.fw == o.fw && e.hasExecutorID() && !e.exited {
			off.ExecutorIDs = append(off.ExecutorIDs, mesos.ExecutorID{Value: e.id})
		}
	}
	if o.fw.multiRole {
		role := o.role
		off.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	}
	return off
}

// sendOffers sends offers in OFFERS events whose frames stay under 4 MiB.
func (m *Mesos) sendOffers(fw *framework, offers []mesos.Offer) {
	for len(offers) > 0 && fw.stream != nil {
		n := len(offers)
		if n > offersPerEvent {
			n = offersPerEvent
		}
		m.sendOfferChunk(fw, offers[:n])
		offers = offers[n:]
	}
}

func (m *Mesos) sendOfferChunk(fw *framework, offers []mesos.Offer) {
	ev := &scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: offers}}
	b, err := encode(fw.stream.codec, ev)
	if err != nil {
		m.log.Error(err, "encode offers")
		return
	}
	if len(b) > maxFrameBytes-64 && len(offers) > 1 {
		half := len(offers) / 2
		m.sendOfferChunk(fw, offers[:half])
		m.sendOfferChunk(fw, offers[half:])
		return
	}
	fw.stream.sendRaw(b)
}

// removeOffer takes an offer out of the books and returns its resources to the agent.
func (m *Mesos) removeOffer(o *offer) {
	delete(m.offers, o.id)
	delete(o.fw.offers, o.id)
	o.agent.offered.sub(o.res)
}

// rescind removes an offer; with notify, the framework gets RESCIND.
func (m *Mesos) rescind(o *offer, notify bool) {
	m.removeOffer(o)
	if notify && o.fw.stream != nil {
		o.fw.stream.send(&scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: o.id}}})
	}
}

// discardOffers drops all of a framework's outstanding offers.
func (m *Mesos) discardOffers(fw *framework, notify bool) {
	for _, o := range fw.offers {
		m.rescind(o, notify)
	}
}

// rescindAgentOffers rescinds every offer on an agent (agent lost).
func (m *Mesos) rescindAgentOffers(a *agent) {
	for _, o := range m.offers {
		if o.agent == a {
			m.rescind(o, true)
		}
	}
}

func refuseDuration(f *mesos.Filters) time.Duration {
	secs := defaultRefuseSeconds
	if f != nil && f.RefuseSeconds != nil && *f.RefuseSeconds >= 0 {
		secs = *f.RefuseSeconds
	}
	if secs > maxRefuseSeconds {
		secs = maxRefuseSeconds
	}
	return time.Duration(secs * float64(time.Second))
}

// addFilter refuses resources r on agent a for role for the filter's duration.
func (m *Mesos) addFilter(fw *framework, a *agent, role string, r res, f *mesos.Filters) {
	d := refuseDuration(f)
	if d <= 0 || r.empty() {
		return
	}
	key := a.id + "/" + role
	fl := fw.filters[key]
	until := time.Now().Add(d)
	if fl.until.Before(time.Now()) {
		fl = filter{}
	}
	fl.res.add(r)
	if until.After(fl.until) {
		fl.until = until
	}
	fw.filters[key] = fl
}

func (m *Mesos) decline(fw *framework, ids []mesos.OfferID, f *mesos.Filters) {
	for _, id := range ids {
		o := fw.offers[id.Value]
		if o == nil {
			continue
		}
		m.removeOffer(o)
		m.addFilter(fw, o.agent, o.role, o.res, f)
	}
}

func (m *Mesos) revive(fw *framework, roles []string) {
	if len(roles) == 0 {
		roles = fw.roles
	}
	for _, r := range roles {
		delete(fw.suppressed, r)
		for k := range fw.filters {
			if len(k) > len(r) && k[len(k)-len(r)-1:] == "/"+r {
				delete(fw.filters, k)
			}
		}
	}
	// As Mesos's allocator (HierarchicalAllocatorProcess::reviveOffers ends
	// with generateOffers()): a REVIVE allocates now rather than at the next
	// interval, so a framework with new demand gets offers at once.
	if !m.closed {
		m.allocate(time.Now())
	}
}

func (m *Mesos) suppress(fw *framework, roles []string) {
	if len(roles) == 0 {
		roles = fw.roles
	}
	for _, r := range roles {
		fw.suppressed[r] = true
	}
}
