package localmesos

import (
	"fmt"
	"math"
	"sort"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// res is a resource vector: named scalars and port ranges. Kept small and
// allocation-free on the hot path so used-resource accounting stays incremental.
type res struct {
	cpus, mem, disk float64
	other           map[string]float64 // further scalars (gpus, ...), rarely set
	ports           []mesos.Value_Range
	// rsv holds dynamically reserved resources and persistent volumes by
	// reservation (reservation.go); the fields above are the unreserved ones
	// (role "*"). Values in rsv have no rsv of their own.
	rsv map[resv]res
}

const epsilon = 1e-9

func (r res) empty() bool {
	if r.cpus > epsilon || r.mem > epsilon || r.disk > epsilon || len(r.ports) > 0 {
		return false
	}
	for _, v := range r.other {
		if v > epsilon {
			return false
		}
	}
	for _, v := range r.rsv {
		if !v.empty() {
			return false
		}
	}
	return true
}

func (r res) clone() res {
	out := r
	if r.other != nil {
		out.other = make(map[string]float64, len(r.other))
		for k, v := range r.other {
			out.other[k] = v
		}
	}
	out.ports = append([]mesos.Value_Range(nil), r.ports...)
	out.rsv = nil
	for k, v := range r.rsv {
		if out.rsv == nil {
			out.rsv = make(map[resv]res, len(r.rsv))
		}
		out.rsv[k] = v.clone()
	}
	return out
}

func (r *res) add(o res) {
	r.cpus += o.cpus
	r.mem += o.mem
	r.disk += o.disk
	for k, v := range o.other {
		if r.other == nil {
			r.other = map[string]float64{}
		}
		r.other[k] += v
	}
	if len(o.ports) > 0 {
		r.ports = squash(append(append([]mesos.Value_Range(nil), r.ports...), o.ports...))
	}
	for k, v := range o.rsv {
		if r.rsv == nil {
			r.rsv = map[resv]res{}
		}
		x := r.rsv[k]
		x.add(v)
		r.rsv[k] = x
	}
}

func (r *res) sub(o res) {
	r.cpus = clampZero(r.cpus - o.cpus)
	r.mem = clampZero(r.mem - o.mem)
	r.disk = clampZero(r.disk - o.disk)
	for k, v := range o.other {
		if r.other != nil {
			r.other[k] = clampZero(r.other[k] - v)
		}
	}
	if len(o.ports) > 0 {
		r.ports = subtractRanges(r.ports, o.ports)
	}
	for k, v := range o.rsv {
		x, ok := r.rsv[k]
		if !ok {
			continue
		}
		x.sub(v)
		if x.empty() {
			delete(r.rsv, k)
		} else {
			r.rsv[k] = x
		}
	}
}

func clampZero(f float64) float64 {
	if f < epsilon {
		return 0
	}
	return f
}

// contains reports whether o fits in r.
func (r res) contains(o res) bool {
	if o.cpus > r.cpus+epsilon || o.mem > r.mem+epsilon || o.disk > r.disk+epsilon {
		return false
	}
	for k, v := range o.other {
		if v > r.other[k]+epsilon {
			return false
		}
	}
	if !rangesContain(r.ports, o.ports) {
		return false
	}
	for k, v := range o.rsv {
		have, ok := r.rsv[k]
		if !ok && !v.empty() {
			return false
		}
		if !have.contains(v) {
			return false
		}
		// A persistent volume is used whole, never in part (Mesos
		// Resources::contains: a persistent volume is not splittable).
		if k.volID != "" && !v.empty() && math.Abs(have.disk-v.disk) > epsilon {
			return false
		}
	}
	return true
}

// proto renders the vector as Mesos resources in the pre-reservation-refinement
// format (unreserved ones with role "*"), with allocation info for role when
// allocRole is set.
func (r res) proto(allocRole string) []mesos.Resource { return r.protoIn(allocRole, preRefinement) }

// protoIn renders the vector in format f: the unreserved resources, then each
// reservation's.
func (r res) protoIn(allocRole string, f resFormat) []mesos.Resource {
	out := r.plainProto(allocRole, f)
	for _, k := range sortedResv(r.rsv) {
		part := r.rsv[k].plainProto(allocRole, postRefinement)
		for i := range part {
			k.decorate(&part[i], f)
		}
		out = append(out, part...)
	}
	return out
}

// plainProto renders the unreserved fields of r.
func (r res) plainProto(allocRole string, f resFormat) []mesos.Resource {
	var out []mesos.Resource
	mk := func(name string) mesos.Resource {
		rs := mesos.Resource{Name: name}
		if f != postRefinement {
			star := "*"
			rs.Role = &star
		}
		if allocRole != "" {
			role := allocRole
			rs.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
		}
		return rs
	}
	scalar := func(name string, v float64) {
		if v <= epsilon {
			return
		}
		rs := mk(name)
		rs.Type, rs.Scalar = mesos.SCALAR.Enum(), &mesos.Value_Scalar{Value: v}
		out = append(out, rs)
	}
	scalar("cpus", r.cpus)
	scalar("mem", r.mem)
	scalar("disk", r.disk)
	if len(r.other) > 0 {
		names := make([]string, 0, len(r.other))
		for k := range r.other {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			scalar(k, r.other[k])
		}
	}
	if len(r.ports) > 0 {
		rs := mk("ports")
		rs.Type, rs.Ranges = mesos.RANGES.Enum(), &mesos.Value_Ranges{Range: append([]mesos.Value_Range(nil), r.ports...)}
		out = append(out, rs)
	}
	return out
}

// fromProto sums Mesos resources into a vector, reserved ones (in either
// format) by reservation. Unsupported types are an error.
func fromProto(rs []mesos.Resource) (res, error) {
	var out res
	for i := range rs {
		k, err := resvOf(&rs[i])
		if err != nil {
			return out, err
		}
		if k == (resv{}) {
			err = out.addProto(rs[i])
		} else {
			if out.rsv == nil {
				out.rsv = map[resv]res{}
			}
			x := out.rsv[k]
			err = x.addProto(rs[i])
			out.rsv[k] = x
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// addProto adds one resource's value, whatever its reservation.
func (out *res) addProto(r mesos.Resource) error {
	switch {
	case r.Scalar != nil && (r.Type == nil || *r.Type == mesos.SCALAR):
		v := r.Scalar.Value
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("resource %s: invalid value %v", r.Name, v)
		}
		switch r.Name {
		case "cpus":
			out.cpus += v
		case "mem":
			out.mem += v
		case "disk":
			out.disk += v
		default:
			if out.other == nil {
				out.other = map[string]float64{}
			}
			out.other[r.Name] += v
		}
	case r.Ranges != nil && r.Name == "ports":
		for _, rg := range r.Ranges.Range {
			if rg.End < rg.Begin {
				return fmt.Errorf("resource ports: bad range [%d-%d]", rg.Begin, rg.End)
			}
		}
		if overlaps(out.ports, r.Ranges.Range) {
			return fmt.Errorf("resource ports: ranges overlap")
		}
		out.ports = squash(append(out.ports, r.Ranges.Range...))
	default:
		return fmt.Errorf("resource %s: unsupported type", r.Name)
	}
	return nil
}

func (r res) portList() []uint64 {
	var out []uint64
	for _, rg := range r.ports {
		for p := rg.Begin; p <= rg.End && len(out) < 65536; p++ {
			out = append(out, p)
		}
	}
	return out
}

func squash(rs []mesos.Value_Range) []mesos.Value_Range {
	if len(rs) == 0 {
		return nil
	}
	rs = append([]mesos.Value_Range(nil), rs...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Begin < rs[j].Begin })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Begin <= last.End+1 {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func overlaps(a, b []mesos.Value_Range) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Begin <= y.End && y.Begin <= x.End {
				return true
			}
		}
	}
	return false
}

// subtractRanges removes b from a (both squashed).
func subtractRanges(a, b []mesos.Value_Range) []mesos.Value_Range {
	out := append([]mesos.Value_Range(nil), a...)
	for _, rm := range b {
		var next []mesos.Value_Range
		for _, r := range out {
			if rm.End < r.Begin || rm.Begin > r.End {
				next = append(next, r)
				continue
			}
			if rm.Begin > r.Begin {
				next = append(next, mesos.Value_Range{Begin: r.Begin, End: rm.Begin - 1})
			}
			if rm.End < r.End {
				next = append(next, mesos.Value_Range{Begin: rm.End + 1, End: r.End})
			}
		}
		out = next
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// rangesContain reports whether every range of b lies inside a range of a.
func rangesContain(a, b []mesos.Value_Range) bool {
	for _, y := range b {
		ok := false
		for _, x := range a {
			if y.Begin >= x.Begin && y.End <= x.End {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
