package localmesos

import (
	"encoding/json"
	"fmt"
	"sort"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// resv identifies dynamically reserved resources: Mesos's ReservationInfo
// (role, principal, labels) and, for a persistent volume's disk, its
// DiskInfo (persistence id and principal, container path). Resources with
// equal resv are one reservation, as Mesos's Resources merges them; each
// persistent volume is its own.
type resv struct {
	role      string
	principal string
	labels    string // canonical (sorted) JSON of the labels; "" for none
	volID     string // persistence id; "" for resources that are not a volume
	volOwner  string // persistence principal
	volPath   string // volume container_path
}

// resFormat is how resources are rendered (Mesos's ResourceFormat).
type resFormat int

const (
	// preRefinement: `role` and `reservation` (frameworks without the
	// RESERVATION_REFINEMENT capability).
	preRefinement resFormat = iota
	// postRefinement: the `reservations` stack only.
	postRefinement
	// endpointFormat: both, as /master/state renders them.
	endpointFormat
)

func canonicalLabels(l *mesos.Labels) string {
	if l == nil || len(l.Labels) == 0 {
		return ""
	}
	kv := make([][2]string, 0, len(l.Labels))
	for _, x := range l.Labels {
		kv = append(kv, [2]string{x.Key, x.GetValue()})
	}
	// Mesos compares Labels as sets (type_utils.cpp operator==).
	sort.Slice(kv, func(i, j int) bool {
		if kv[i][0] != kv[j][0] {
			return kv[i][0] < kv[j][0]
		}
		return kv[i][1] < kv[j][1]
	})
	b, _ := json.Marshal(kv)
	return string(b)
}

func (k resv) labelsProto() *mesos.Labels {
	if k.labels == "" {
		return nil
	}
	var kv [][2]string
	_ = json.Unmarshal([]byte(k.labels), &kv)
	out := &mesos.Labels{}
	for _, x := range kv {
		v := x[1]
		out.Labels = append(out.Labels, mesos.Label{Key: x[0], Value: &v})
	}
	return out
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// decorate sets the reservation and disk fields of a resource of k in format f.
func (k resv) decorate(r *mesos.Resource, f resFormat) {
	if f != postRefinement {
		role := k.role
		r.Role = &role
		r.Reservation = &mesos.Resource_ReservationInfo{Principal: optString(k.principal), Labels: k.labelsProto()}
	}
	if f != preRefinement {
		typ := mesos.Resource_ReservationInfo_DYNAMIC
		role := k.role
		r.Reservations = []mesos.Resource_ReservationInfo{{Type: &typ, Role: &role, Principal: optString(k.principal), Labels: k.labelsProto()}}
		if f == postRefinement {
			r.Role = nil
		}
	}
	if k.volID != "" {
		mode := mesos.RW
		r.Disk = &mesos.Resource_DiskInfo{
			Persistence: &mesos.Resource_DiskInfo_Persistence{ID: k.volID, Principal: optString(k.volOwner)},
			Volume:      &mesos.Volume{Mode: &mode, ContainerPath: k.volPath},
		}
	}
}

// resvOf reads a resource's reservation and disk fields in either format;
// the zero resv is unreserved. Errors follow Mesos's Resources::validate and
// validation.cpp's resource::validateDiskInfo.
func resvOf(r *mesos.Resource) (resv, error) {
	var k resv
	switch {
	case len(r.Reservations) > 0:
		if r.Role != nil || r.Reservation != nil {
			return k, fmt.Errorf("resource %s: 'Resource.role' and 'Resource.reservation' must not be set with 'Resource.reservations'", r.Name)
		}
		if len(r.Reservations) > 1 {
			return k, fmt.Errorf("resource %s: refined reservations are not supported", r.Name)
		}
		ri := r.Reservations[0]
		if ri.Type == nil || *ri.Type != mesos.Resource_ReservationInfo_DYNAMIC || ri.GetRole() == "" {
			return k, fmt.Errorf("resource %s: only a DYNAMIC reservation with a role is supported", r.Name)
		}
		k = resv{role: ri.GetRole(), principal: ri.GetPrincipal(), labels: canonicalLabels(ri.Labels)}
	case r.GetRole() != "*":
		if r.Reservation == nil {
			// A static reservation: localmesos agents have none.
			return k, fmt.Errorf("Resource %s(%s) is not dynamically reserved (static reservations are not supported)", r.Name, r.GetRole())
		}
		k = resv{role: r.GetRole(), principal: r.Reservation.GetPrincipal(), labels: canonicalLabels(r.Reservation.Labels)}
	case r.Reservation != nil:
		return k, fmt.Errorf("resource %s: an unreserved resource must not have 'reservation'", r.Name)
	}
	if msg := validateRole(k.role); k.role != "" && msg != "" {
		return k, fmt.Errorf("resource %s: %s", r.Name, msg)
	}
	if k.role == "*" {
		return k, fmt.Errorf("Invalid reservation: role \"*\" cannot be reserved")
	}
	d := r.Disk
	if d == nil {
		return k, nil
	}
	if r.Name != "disk" {
		return k, fmt.Errorf("resource %s: DiskInfo should not be set for %s resource", r.Name, r.Name)
	}
	switch {
	case d.Persistence != nil:
		if k.role == "" {
			return k, fmt.Errorf("Persistent volumes cannot be created from unreserved resources")
		}
		if d.Volume == nil {
			return k, fmt.Errorf("Expecting 'volume' to be set for persistent volume")
		}
		if d.Volume.HostPath != nil {
			return k, fmt.Errorf("Expecting 'host_path' to be unset for persistent volume")
		}
		if msg := validateID(d.Persistence.ID); msg != "" {
			return k, fmt.Errorf("Invalid persistence ID for persistent volume: %s", msg)
		}
		if d.Volume.GetMode() == mesos.RO {
			return k, fmt.Errorf("Read-only persistent volume not supported")
		}
		k.volID, k.volOwner, k.volPath = d.Persistence.ID, d.Persistence.GetPrincipal(), d.Volume.ContainerPath
	case d.Volume != nil:
		return k, fmt.Errorf("Non-persistent volume not supported")
	default:
		return k, fmt.Errorf("DiskInfo is set but empty")
	}
	return k, nil
}

// unreserved is r without its reservations.
func (r res) unreserved() res {
	out := r.clone()
	out.rsv = nil
	return out
}

// forRole is what of r may be offered to role: the unreserved resources and
// those reserved for role (Mesos offers reserved resources only to their role).
func (r res) forRole(role string) res {
	if len(r.rsv) == 0 {
		return r // the allocator's hot path: no reservations, no copy
	}
	out := r.clone()
	for k := range out.rsv {
		if k.role != role {
			delete(out.rsv, k)
		}
	}
	return out
}

// byRole splits r's reservations by role (State's reserved_resources).
func (r res) byRole() map[string]res {
	out := map[string]res{}
	for k, v := range r.rsv {
		x := out[k.role]
		if x.rsv == nil {
			x.rsv = map[resv]res{}
		}
		x.rsv[k] = v.clone()
		out[k.role] = x
	}
	return out
}

// volumes lists r's persistent volumes.
func (r res) volumes() []resv {
	var out []resv
	for k := range r.rsv {
		if k.volID != "" {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].volID < out[j].volID })
	return out
}

// flat sums r's resources whatever their reservation (the summaries of State).
func (r res) flat() res {
	if len(r.rsv) == 0 {
		return r
	}
	out := r.unreserved()
	for _, v := range r.rsv {
		out.add(v)
	}
	return out
}

func sortedResv(m map[resv]res) []resv {
	keys := make([]resv, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.role != b.role {
			return a.role < b.role
		}
		if a.principal != b.principal {
			return a.principal < b.principal
		}
		if a.labels != b.labels {
			return a.labels < b.labels
		}
		return a.volID < b.volID
	})
	return keys
}

// resFormat is the format fw gets resources in: without the
// RESERVATION_REFINEMENT capability the master converts offers to the
// pre-refinement format (Master::offer, convertResourceFormat).
func (fw *framework) resFormat() resFormat {
	if hasCapability(&fw.info, mesos.FrameworkInfo_Capability_RESERVATION_REFINEMENT) {
		return postRefinement
	}
	return preRefinement
}
