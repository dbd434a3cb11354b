package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// Labels of converge's dynamic reservations: every reserved resource of a
// member carries its reservation id and converge's owner name, so that
// converge finds its own after a restart or failover, and only its own.
const (
	LabelReservation = "converge.io/reservation"
	LabelOwner       = "converge.io/owner"
)

// defaultOwner labels reservations when the framework has no name.
const defaultOwner = "converge"

// newVolumeRecord is the reservation a member of spec launched as task id
// makes: its cpus, mem and disk reserved for the cluster's role, plus its
// volumes.
func newVolumeRecord(spec *v1alpha1.ClusterSpec, id string) *store.VolumeRecord {
	cpus, mem, disk := v1alpha1.ResourceScalars(spec.Task.Resources)
	v := &store.VolumeRecord{ID: id, Role: spec.Role, CPUs: cpus, MemMB: mem, DiskMB: disk}
	for _, vol := range spec.Task.Volumes {
		v.Volumes = append(v.Volumes, store.VolumeSpec{Name: vol.Name, ContainerPath: vol.ContainerPath, SizeMB: volumeMB(vol)})
	}
	return v
}

func volumeMB(v v1alpha1.Volume) float64 {
	if v.Size == nil {
		return 0
	}
	return float64(v.Size.Value()) / (1 << 20)
}

// volumesMB is the disk the volumes of spec take.
func volumesMB(spec *v1alpha1.ClusterSpec) float64 {
	var mb float64
	for _, v := range spec.Task.Volumes {
		mb += volumeMB(v)
	}
	return mb
}

func persistenceID(v *store.VolumeRecord, name string) string { return v.ID + "." + name }

// reservation renders v as Mesos resources (pre-reservation-refinement
// format, allocated to v.Role): the reserved cpus, mem and disk (the task's
// disk plus the disk each volume is created from) and the volumes.
func (c *Controller) reservation(v *store.VolumeRecord) (reserved, volumes []mesos.Resource) {
	mk := func(name string, amount float64) mesos.Resource { return c.reserved(v, name, amount) }
	reserved = append(reserved, mk("cpus", v.CPUs), mk("mem", v.MemMB))
	disk := v.DiskMB
	for _, vol := range v.Volumes {
		disk += vol.SizeMB
	}
	if disk > 0 {
		reserved = append(reserved, mk("disk", disk))
	}
	mode := mesos.RW
	for _, vol := range v.Volumes {
		r := mk("disk", vol.SizeMB)
		r.Disk = &mesos.Resource_DiskInfo{
			Persistence: &mesos.Resource_DiskInfo_Persistence{ID: persistenceID(v, vol.Name), Principal: r.Reservation.Principal},
			Volume:      &mesos.Volume{Mode: &mode, ContainerPath: vol.ContainerPath},
		}
		volumes = append(volumes, r)
	}
	return reserved, volumes
}

// reserved is amount of the scalar name reserved for v.Role, labelled as v's.
func (c *Controller) reserved(v *store.VolumeRecord, name string, amount float64) mesos.Resource {
	owner := c.cfg.FrameworkName
	if owner == "" {
		owner = defaultOwner
	}
	role, principal := v.Role, c.cfg.Principal
	r := mesos.Resource{
		Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: amount}, Role: &role,
		AllocationInfo: &mesos.Resource_AllocationInfo{Role: &role},
		Reservation: &mesos.Resource_ReservationInfo{Labels: &mesos.Labels{Labels: []mesos.Label{
			{Key: LabelReservation, Value: strPtr(v.ID)}, {Key: LabelOwner, Value: strPtr(owner)},
		}}},
	}
	if principal != "" {
		r.Reservation.Principal = &principal
	}
	return r
}

// resize brings the cpus and mem reserved for v to the spec's (a rolling
// update of task.resources relaunches a member on its reservation): the
// part that grows is reserved from the offer's unreserved resources, the
// part that shrinks unreserved, in the relaunch's ACCEPT, with v's labels.
// It returns the record as it will be, the operations, and what the growth
// takes of the offer's unreserved resources.
func (c *Controller) resize(v *store.VolumeRecord, cpus, mem float64) (*store.VolumeRecord, []mesos.Offer_Operation, Need) {
	next := *v
	next.CPUs, next.MemMB = cpus, mem
	var grow, shrink []mesos.Resource
	growth := Need{Role: v.Role}
	for _, d := range []struct {
		name       string
		have, want float64
		took       *float64
	}{{"cpus", v.CPUs, cpus, &growth.CPUs}, {"mem", v.MemMB, mem, &growth.MemMB}} {
		switch delta := roundScalar(d.want - d.have); {
		case delta > scalarEpsilon:
			grow = append(grow, c.reserved(v, d.name, delta))
			*d.took = delta
		case delta < -scalarEpsilon:
			shrink = append(shrink, c.reserved(v, d.name, -delta))
		}
	}
	var ops []mesos.Offer_Operation
	if len(grow) > 0 {
		ops = append(ops, calls.OpReserve(grow...))
	}
	if len(shrink) > 0 {
		ops = append(ops, calls.OpUnreserve(shrink...))
	}
	return &next, ops, growth
}

// taskResources are what a member's task takes of its reservation: its
// cpus, mem and disk, and its volumes.
func (c *Controller) taskResources(v *store.VolumeRecord) []mesos.Resource {
	reserved, volumes := c.reservation(v)
	out := reserved[:2:2]
	if v.DiskMB > 0 {
		d := reserved[2]
		d.Scalar = &mesos.Value_Scalar{Value: v.DiskMB}
		out = append(out, d)
	}
	return append(out, volumes...)
}

// createOps reserve v's resources and create its volumes: they go before the
// LAUNCH in the same ACCEPT.
func (c *Controller) createOps(v *store.VolumeRecord) []mesos.Offer_Operation {
	reserved, volumes := c.reservation(v)
	return []mesos.Offer_Operation{calls.OpReserve(reserved...), calls.OpCreate(volumes...)}
}

// ownReservation is one of converge's reservations as an offer shows it.
type ownReservation struct {
	id        string
	resources []mesos.Resource // reserved resources and volumes, as offered
}

// ownReservations lists the reservations of this converge in an offer.
func (c *Controller) ownReservations(o *mesos.Offer) map[string]*ownReservation {
	owner := c.cfg.FrameworkName
	if owner == "" {
		owner = defaultOwner
	}
	out := map[string]*ownReservation{}
	for _, r := range o.Resources {
		id, own := reservationLabels(&r)
		if id == "" || own != owner {
			continue
		}
		if out[id] == nil {
			out[id] = &ownReservation{id: id}
		}
		out[id].resources = append(out[id].resources, r)
	}
	return out
}

// reservationLabels reads converge's labels off a reserved resource.
func reservationLabels(r *mesos.Resource) (id, owner string) {
	var labels *mesos.Labels
	switch {
	case r.Reservation != nil:
		labels = r.Reservation.Labels
	case len(r.Reservations) > 0:
		labels = r.Reservations[len(r.Reservations)-1].Labels
	}
	if labels == nil {
		return "", ""
	}
	for _, l := range labels.Labels {
		switch l.Key {
		case LabelReservation:
			id = l.GetValue()
		case LabelOwner:
			owner = l.GetValue()
		}
	}
	return id, owner
}

// hasVolumes reports whether the offered reservation holds every volume of v.
func (r *ownReservation) hasVolumes(v *store.VolumeRecord) bool {
	have := map[string]bool{}
	for _, x := range r.resources {
		if p := x.GetDisk().GetPersistence(); p != nil {
			have[p.ID] = true
		}
	}
	for _, vol := range v.Volumes {
		if !have[persistenceID(v, vol.Name)] {
			return false
		}
	}
	return true
}

// releaseOps destroy the volumes of an offered reservation and unreserve
// all of it (the volumes' disk too, once destroyed), in one ACCEPT.
func releaseOps(r *ownReservation) []mesos.Offer_Operation {
	var vols, all []mesos.Resource
	for _, x := range r.resources {
		if x.Disk != nil && x.Disk.Persistence != nil {
			vols = append(vols, x)
			x.Disk = nil
		}
		all = append(all, x)
	}
	var ops []mesos.Offer_Operation
	if len(vols) > 0 {
		ops = append(ops, calls.OpDestroy(vols...))
	}
	return append(ops, calls.OpUnreserve(all...))
}

// keptReservations are the reservation ids converge keeps (c.mu held): each
// wanted ordinal's newest record's (the member is relaunched on it) and
// those of tasks not finished (still using them). Others are released.
func (c *Controller) keptReservations() map[string]bool {
	kept := map[string]bool{}
	for key := range c.volumeKeys {
		recs, cl := c.tasksLocked(key), c.clusterLocked(key)
		desired := -1
		if cl != nil && cl.DeletionTimestamp == nil {
			desired = int(v1alpha1.DefaultReplicas)
			if cl.Spec.Replicas != nil {
				desired = int(*cl.Spec.Replicas)
			}
		}
		newest := map[int32]*store.TaskRecord{}
		for _, r := range recs {
			if r.Volume == nil {
				continue
			}
			if !finished(r.State) {
				kept[r.Volume.ID] = true
			}
			if cur := newest[r.Ordinal]; cur == nil || r.LaunchedAt.After(cur.LaunchedAt) {
				newest[r.Ordinal] = r
			}
		}
		for ord, r := range newest {
			if int(ord) < desired {
				kept[r.Volume.ID] = true
			}
		}
	}
	return kept
}

// pendingReleases are the reservations of ledger records converge no
// longer keeps and has not yet seen gone (c.mu held): offers are wanted
// until each is destroyed and unreserved.
func (c *Controller) pendingReleases() []string {
	kept := c.keptReservations()
	gone := c.goneAgents()
	var out []string
	for key := range c.volumeKeys {
		recs := c.tasksLocked(key)
		for _, r := range recs {
			if r.Volume != nil && !kept[r.Volume.ID] && !c.released[r.Volume.ID] && !gone[r.AgentID] {
				out = append(out, r.Volume.ID)
			}
		}
	}
	for k := range c.releasing {
		if agent, id, _ := strings.Cut(k, "/"); !c.released[id] && !gone[agent] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// goneAgents are the agents Mesos said were marked gone (c.mu held): a task
// of a cluster with volumes ended TASK_GONE_BY_OPERATOR there. Their
// reservations and volumes went with them and they never offer again:
// nothing is left to release on them.
func (c *Controller) goneAgents() map[string]bool {
	gone := map[string]bool{}
	for key := range c.volumeKeys {
		recs := c.tasksLocked(key)
		for _, r := range recs {
			if r.State == stateGoneByOperator {
				gone[r.AgentID] = true
			}
		}
	}
	return gone
}

// noteReleases remembers the reservations of a cluster about to be deleted
// (its records go with it), so offers are wanted until they are released.
func (c *Controller) noteReleases(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.tasksLocked(key) {
		if r.Volume != nil {
			c.releasing[r.AgentID+"/"+r.Volume.ID] = r.Volume
		}
	}
}

// releaseOffers finds, in offers, converge's reservations that nothing
// keeps (released members, and orphans no record knows) and returns the
// operations that release them, by offer index; those offers launch
// nothing this round. A released reservation absent from an offer of its
// agent is noted gone.
func (c *Controller) releaseOffers(offers []mesos.Offer) map[int][]mesos.Offer_Operation {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.keptReservations()
	gone := c.goneAgents()
	agentOf, roleOf := map[string]string{}, map[string]string{}
	for k, v := range c.releasing {
		agent, id, _ := strings.Cut(k, "/")
		agentOf[id], roleOf[id] = agent, v.Role
		if c.released[id] || gone[agent] {
			delete(c.releasing, k)
		}
	}
	for key := range c.volumeKeys {
		recs := c.tasksLocked(key)
		for _, r := range recs {
			if r.Volume != nil {
				agentOf[r.Volume.ID], roleOf[r.Volume.ID] = r.AgentID, r.Volume.Role
			}
		}
	}
	out := map[int][]mesos.Offer_Operation{}
	seen := map[string]bool{}
	for i := range offers {
		own := c.ownReservations(&offers[i])
		for id, r := range own {
			seen[id] = true
			if kept[id] {
				continue
			}
			c.log.Info("releasing a reservation nothing keeps", "reservation", id, "agent", offers[i].Hostname, "known", agentOf[id] != "")
			out[i] = append(out[i], releaseOps(r)...)
		}
		for id, agent := range agentOf {
			if agent == offers[i].AgentID.Value && !seen[id] && !kept[id] && offers[i].AllocationInfo.GetRole() == roleOf[id] {
				c.released[id] = true
			}
		}
	}
	return out
}

// stickyLaunch builds the ACCEPT of a member that holds a reservation on
// the agent of offer o: LAUNCH on it if the offer shows its volumes; RESERVE,
// CREATE and LAUNCH if the reservation was never made (a crash or a dropped
// ACCEPT before it) and the offer's unreserved resources fit; ok false
// otherwise (the member waits for its agent).
func (c *Controller) stickyLaunch(o *mesos.Offer, n *Need) (ops []mesos.Offer_Operation, res []mesos.Resource, portList []uint64, next *store.VolumeRecord, ok bool) {
	v, ports := n.Volume, n.Ports
	if o.AllocationInfo.GetRole() != v.Role {
		return nil, nil, nil, nil, false
	}
	portRes, portList, ok := takePorts(o, ports)
	if !ok {
		return nil, nil, nil, nil, false
	}
	if own := c.ownReservations(o)[v.ID]; own != nil {
		if !own.hasVolumes(v) {
			return nil, nil, nil, nil, false
		}
		next, ops, growth := c.resize(v, n.CPUs, n.MemMB)
		if st := newOfferState(o); !st.fits(&growth) {
			return nil, nil, nil, nil, false
		}
		return ops, append(c.taskResources(next), portRes...), portList, next, true
	}
	v = &store.VolumeRecord{ID: v.ID, Role: v.Role, CPUs: n.CPUs, MemMB: n.MemMB, DiskMB: v.DiskMB, Volumes: v.Volumes}
	res = append(c.taskResources(v), portRes...)
	st := newOfferState(o)
	need := Need{Role: v.Role, CPUs: v.CPUs, MemMB: v.MemMB, DiskMB: v.DiskMB, Ports: ports}
	for _, vol := range v.Volumes {
		need.DiskMB += vol.SizeMB
	}
	if !st.fits(&need) {
		return nil, nil, nil, nil, false
	}
	return c.createOps(v), res, portList, v, true
}

// takePorts takes n ports from an offer's unreserved port ranges.
func takePorts(o *mesos.Offer, n int) ([]mesos.Resource, []uint64, bool) {
	if n == 0 {
		return nil, nil, true
	}
	for _, r := range o.Resources {
		if r.Name != "ports" || r.Ranges == nil || resourceRole(&r) != "*" {
			continue
		}
		var ports []uint64
		var ranges []mesos.Value_Range
		for _, rg := range r.Ranges.Range {
			for p := rg.Begin; p <= rg.End && len(ports) < n; p++ {
				ports = append(ports, p)
				ranges = append(ranges, mesos.Value_Range{Begin: p, End: p})
			}
		}
		if len(ports) < n {
			return nil, nil, false
		}
		out := r
		out.Ranges = &mesos.Value_Ranges{Range: ranges}
		return []mesos.Resource{out}, ports, true
	}
	return nil, nil, false
}

// noteVolumesLocked adds key to c.volumeKeys, the clusters whose
// reservations the release bookkeeping looks at, when its spec asks for
// volumes or rec holds one (c.mu held). Only these are walked: walking the
// whole ledger on every reconcile was a third of the controller's CPU at
// 3,000 x 10 without a single volume.
func (c *Controller) noteVolumesLocked(key string, cl *v1alpha1.Cluster, rec *store.TaskRecord) {
	if (cl != nil && len(cl.Spec.Task.Volumes) > 0) || (rec != nil && rec.Volume != nil) {
		c.volumeKeys[key] = true
	}
}

// add puts a task and its record into the offer's launch.
func (ol *offerLaunch) add(n Need, ti mesos.TaskInfo, rec store.TaskRecord, host string, now time.Time) {
	ol.op.tasks = append(ol.op.tasks, taskWrite{key: n.Key, id: rec.ID, create: &rec})
	ol.op.addLateEvents(n.Key, store.Event{Time: now, Type: "Normal", Reason: "Launching",
		Message: fmt.Sprintf("launching task %s (ordinal %d) on %s", rec.ID, n.Ordinal, host)})
	ol.tasks = append(ol.tasks, ti)
	ol.records = append(ol.records, rec)
}

// volumeEvents records the making of a member's new volumes, and why the
// old ones were given up.
func (c *Controller) volumeEvents(op *writeOp, n Need, host string, now time.Time) {
	if n.Abandoned != nil && n.AgentGone {
		op.addEvents(n.Key, store.Event{Time: now, Type: "Warning", Reason: "VolumesReplaced",
			Message: fmt.Sprintf("agent %s (%s), which held the volumes of ordinal %d, was marked gone: the member is re-created on %s with new, empty volumes (its data on that agent is lost)",
				n.Abandoned.Hostname, n.Abandoned.AgentID, n.Ordinal, host)})
	} else if n.Abandoned != nil {
		op.addEvents(n.Key, store.Event{Time: now, Type: "Warning", Reason: "VolumesReplaced",
			Message: fmt.Sprintf("agent %s did not offer the volumes of ordinal %d for %s: the member is re-created on %s with new, empty volumes (the old ones are released if that agent returns)",
				n.Abandoned.Hostname, n.Ordinal, c.replaceAfter(n.Key), host)})
	}
}

func (c *Controller) replaceAfter(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clusterLocked(key); cl != nil {
		return cl.Spec.ReplaceAfterDuration()
	}
	return v1alpha1.DefaultReplaceAfter
}

// placeSticky launches the needs pinned to their volumes' agents on those
// agents' offers (one per offer and round) and returns the other needs, and
// why pinned ones wait.
func (c *Controller) placeSticky(needs []Need, offers []mesos.Offer, inputs map[string]*Input, byOffer map[int]*offerLaunch, placed map[string]bool, now time.Time) ([]Need, map[string]string) {
	var rest []Need
	why := map[string]string{}
	for _, n := range needs {
		if n.Volume == nil {
			rest = append(rest, n)
			continue
		}
		why[n.Key] = fmt.Sprintf("ordinal %d waits for agent %s, which holds its volumes", n.Ordinal, n.VolumeHost)
		for i := range offers {
			o := &offers[i]
			if o.AgentID.Value != n.VolumeAgent || byOffer[i] != nil {
				continue
			}
			ops, resources, ports, vol, ok := c.stickyLaunch(o, &n)
			if !ok {
				continue
			}
			id := NewTaskID(n.Namespace, n.Cluster, n.Ordinal)
			a := Assignment{Offer: i, OfferID: o.ID, AgentID: o.AgentID.Value, Hostname: o.Hostname, Resources: resources, Ports: ports}
			ti, rec := c.buildTask(inputs[n.Key].Cluster, n, a, id)
			rec.Volume = vol
			ol := &offerLaunch{offer: o, op: &writeOp{}, ops: ops}
			byOffer[i] = ol
			ol.add(n, ti, rec, o.Hostname, now)
			placed[n.Key] = true
			break
		}
	}
	return rest, why
}

// offersExcept are the offers nothing was decided for yet, and their
// indices in offers.
func offersExcept(offers []mesos.Offer, byOffer map[int]*offerLaunch) ([]mesos.Offer, []int) {
	var out []mesos.Offer
	var index []int
	for i := range offers {
		if byOffer[i] == nil {
			out = append(out, offers[i])
			index = append(index, i)
		}
	}
	return out, index
}

func unusedOffers(offers []mesos.Offer, byOffer map[int]*offerLaunch) []mesos.OfferID {
	var out []mesos.OfferID
	for i := range offers {
		if byOffer[i] == nil {
			out = append(out, offers[i].ID)
		}
	}
	return out
}

// acceptReleases sends the ACCEPTs of offers that only release reservations.
func (c *Controller) acceptReleases(ctx context.Context, byOffer map[int]*offerLaunch) {
	for _, ol := range byOffer {
		if len(ol.tasks) > 0 || len(ol.ops) == 0 {
			continue
		}
		if err := c.bridge.Accept(ctx, []mesos.OfferID{ol.offer.ID}, ol.ops, refuseAfterUse); err != nil {
			c.log.Error(err, "release of reservations not sent; retried at the next offer", "offerID", ol.offer.ID.Value)
		}
	}
}

// portsOf are the port resources of an assignment.
func portsOf(rs []mesos.Resource) []mesos.Resource {
	var out []mesos.Resource
	for _, r := range rs {
		if r.Name == "ports" {
			out = append(out, r)
		}
	}
	return out
}
