package localmesos

import (
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// dynRes is a resource dynamically reserved for role by principal, in the
// pre-reservation-refinement format (role + reservation).
func dynRes(r mesos.Resource, role, principal string, labels ...string) mesos.Resource {
	r.Role = &role
	r.Reservation = &mesos.Resource_ReservationInfo{Principal: optString(principal)}
	if len(labels) > 0 {
		r.Reservation.Labels = &mesos.Labels{}
		for i := 0; i+1 < len(labels); i += 2 {
			v := labels[i+1]
			r.Reservation.Labels.Labels = append(r.Reservation.Labels.Labels, mesos.Label{Key: labels[i], Value: &v})
		}
	}
	return r
}

// refinedRes is the same reservation in the post-refinement format.
func refinedRes(r mesos.Resource, role, principal string) mesos.Resource {
	typ := mesos.Resource_ReservationInfo_DYNAMIC
	r.Reservations = []mesos.Resource_ReservationInfo{{Type: &typ, Role: &role, Principal: optString(principal)}}
	return r
}

// volumeRes is Mesos's createPersistentVolume: reserved disk with a
// persistence id and a RW volume at containerPath.
func volumeRes(mb float64, role, principal, id, path string) mesos.Resource {
	r := dynRes(scalar("disk", mb), role, principal)
	mode := mesos.RW
	r.Disk = &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: id, Principal: optString(principal)},
		Volume:      &mesos.Volume{Mode: &mode, ContainerPath: path},
	}
	return r
}

func allocated(r mesos.Resource, role string) mesos.Resource {
	r.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	return r
}

// TestOperationValidation ports the expectations of Mesos's operation
// validation tests (src/tests/master_validation_tests.cpp) onto the
// validation localmesos runs for the operations of an ACCEPT
// (src/master/validation.cpp, operation::validate). Mesos's tests build
// volumes on statically reserved disk (Resources::parse("disk", "128",
// "role1")); localmesos agents have no static reservations, so the ports use
// dynamically reserved disk, which the same code paths accept.
func TestOperationValidation(t *testing.T) {
	fw := &framework{info: mesos.FrameworkInfo{Principal: optString("principal")}, roles: []string{"role1"}}
	noPrincipal := &framework{roles: []string{"role1"}}
	multi := &framework{info: mesos.FrameworkInfo{Principal: optString("principal")}, roles: []string{"role1", "role2"}}
	vol1 := volumeRes(128, "role1", "principal", "id1", "path1")
	vol2 := volumeRes(64, "role1", "principal", "id2", "path2")
	withVol1, _ := fromProto([]mesos.Resource{vol1})
	ro := volumeRes(128, "role1", "principal", "id1", "path1")
	mode := mesos.RO
	ro.Disk.Volume.Mode = &mode
	badID := volumeRes(128, "role1", "principal", "id1/", "path1")
	unreservedVol := volumeRes(128, "role1", "principal", "id1", "path1")
	unreservedVol.Role, unreservedVol.Reservation = nil, nil
	noVolPrincipal := volumeRes(128, "role1", "", "id1", "path1")
	otherVolPrincipal := volumeRes(128, "role1", "other-principal", "id1", "path1")
	cpus := scalar("cpus", 2)
	star := "*"
	staticCPUs := scalar("cpus", 8)
	role1 := "role1"
	staticCPUs.Role = &role1

	for _, tc := range []struct {
		name    string // the Mesos test it comes from
		fw      *framework
		total   res // the agent's checkpointed resources
		used    res
		op      mesos.Offer_Operation
		wantErr string // "" if valid; "?" for any error
	}{
		{"ReserveOperationValidationTest.MatchingRole", fw, res{}, res{},
			calls.OpReserve(allocated(refinedRes(scalar("cpus", 8), "resourceRole", "principal"), "resourceRole")),
			"A reserve operation was attempted for a resource allocated to role 'resourceRole', but the framework only has roles '{ role1 }'"},
		{"ReserveOperationValidationTest.DisallowReservingToStar", fw, res{}, res{},
			calls.OpReserve(refinedRes(scalar("cpus", 8), star, "principal")),
			`Invalid reservation: role "*" cannot be reserved`},
		{"ReserveOperationValidationTest.MatchingPrincipal", fw, res{}, res{},
			calls.OpReserve(dynRes(scalar("cpus", 8), "role1", "principal")), ""},
		{"ReserveOperationValidationTest.NonMatchingPrincipal", fw, res{}, res{},
			calls.OpReserve(dynRes(scalar("cpus", 8), "role1", "principal2")),
			"A reserve operation was attempted by authenticated principal 'principal', which does not match a reserved resource in the request with principal 'principal2'"},
		{"ReserveOperationValidationTest.ReservationInfoMissingPrincipal", fw, res{}, res{},
			calls.OpReserve(dynRes(scalar("cpus", 8), "role1", "")),
			"A reserve operation was attempted by principal 'principal', but there is a reserved resource in the request with no principal set"},
		{"ReserveOperationValidationTest.StaticReservation", fw, res{}, res{},
			calls.OpReserve(staticCPUs), "is not dynamically reserved"},
		{"ReserveOperationValidationTest.NoPersistentVolumes", fw, res{}, res{},
			calls.OpReserve(dynRes(scalar("cpus", 8), "role1", "principal"), vol1), "is not dynamically reserved"},
		{"ReserveOperationValidationTest.MismatchedAllocation", multi, res{}, res{},
			calls.OpReserve(allocated(dynRes(scalar("cpus", 8), "role1", "principal"), "role2")),
			"A reserve operation was attempted for a resource with role 'role1', but the resource was allocated to role 'role2'"},
		{"UnreserveOperationValidationTest.WithoutACL", noPrincipal, res{}, res{},
			calls.OpUnreserve(dynRes(scalar("cpus", 8), "role1", "principal")), ""},
		{"UnreserveOperationValidationTest.StaticReservation", fw, res{}, res{},
			calls.OpUnreserve(staticCPUs), "?"},
		{"UnreserveOperationValidationTest.NoPersistentVolumes", fw, res{}, res{},
			calls.OpUnreserve(dynRes(scalar("cpus", 8), "role1", "principal"), vol1),
			"cannot be unreserved directly. Please destroy the persistent volume first then unreserve the resource"},
		{"CreateOperationValidationTest.PersistentVolumes", fw, res{}, res{}, calls.OpCreate(vol1), ""},
		{"CreateOperationValidationTest.PersistentVolumes (cpus)", fw, res{}, res{}, calls.OpCreate(vol1, cpus), "Not a persistent volume"},
		{"CreateOperationValidationTest.DuplicatedPersistenceID (checkpointed)", fw, withVol1, res{},
			calls.OpCreate(volumeRes(64, "role1", "principal", "id1", "path1")), "Persistence ID 'id1' is not unique"},
		{"CreateOperationValidationTest.DuplicatedPersistenceID (same operation)", fw, res{}, res{},
			calls.OpCreate(vol1, volumeRes(64, "role1", "principal", "id1", "path1")), "Persistence ID 'id1' is not unique"},
		{"CreateOperationValidationTest.NonMatchingPrincipal", fw, res{}, res{}, calls.OpCreate(otherVolPrincipal),
			"Create volume operation attempted by authenticated principal 'principal', which does not match a volume in the operation with principal 'other-principal' set in 'disk.persistence'"},
		{"CreateOperationValidationTest.NonMatchingPrincipal (none)", fw, res{}, res{}, calls.OpCreate(noVolPrincipal),
			"Create volume operation attempted by principal 'principal', but there is a volume in the operation with no principal set in 'disk.persistence'"},
		{"CreateOperationValidationTest.ReadOnlyPersistentVolume", fw, res{}, res{}, calls.OpCreate(ro), "Read-only persistent volume not supported"},
		{"CreateOperationValidationTest.MixedAllocationRole", multi, res{}, res{},
			calls.OpCreate(allocated(vol1, "role2")), "The resources have multiple allocation roles"},
		{"ResourceValidationTest.UnreservedDiskInfo", fw, res{}, res{}, calls.OpCreate(unreservedVol),
			"Persistent volumes cannot be created from unreserved resources"},
		{"ResourceValidationTest.InvalidPersistenceID", fw, res{}, res{}, calls.OpCreate(badID),
			"Invalid persistence ID for persistent volume: 'id1/' contains invalid characters"},
		{"DestroyOperationValidationTest.PersistentVolumes", fw, withVol1, res{}, calls.OpDestroy(vol1), ""},
		{"DestroyOperationValidationTest.PersistentVolumes (cpus)", fw, withVol1, res{}, calls.OpDestroy(vol1, cpus), "Not a persistent volume"},
		{"DestroyOperationValidationTest.UnknownPersistentVolume", fw, withVol1, res{}, calls.OpDestroy(vol2), "Persistent volumes not found"},
		{"DestroyOperationValidationTest.SharedPersistentVolumeInUse (unshared)", fw, withVol1, withVol1, calls.OpDestroy(vol1), "Persistent volumes in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &agent{id: "S0", total: tc.total.clone(), used: tc.used.clone()}
			m := &Mesos{}
			_, _, err := m.conversion(tc.fw, a, "role1", tc.op)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.wantErr == "?" && err == nil, tc.wantErr != "" && tc.wantErr != "?" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want error %q, got %v", tc.wantErr, err)
			}
		})
	}
}
