package localmesos

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func roleFramework(name, role, principal string) *mesos.FrameworkInfo {
	fi := frameworkInfo(name)
	fi.Role = &role
	fi.Principal = optString(principal)
	return fi
}

// accept sends one ACCEPT of offer o with ops, refusing what is left for
// refuse seconds.
func (s *sched) accept(o mesos.Offer, refuse float64, ops ...mesos.Offer_Operation) {
	s.t.Helper()
	s.mustCall(calls.Accept(calls.OfferOperations(ops).WithOffers(o.ID)).With(calls.RefuseSeconds(time.Duration(refuse * float64(time.Second)))))
}

// nextOffer waits for the next offer (the first of its event).
func (s *sched) nextOffer() mesos.Offer {
	s.t.Helper()
	return s.offers(1, 5*time.Second)[0]
}

// declineAll declines every outstanding offer of s (the harness drops the
// offers that pass while it waits for other events) for refuse, and returns
// their ids.
func declineAll(m *Mesos, s *sched, refuse time.Duration) map[string]bool {
	s.t.Helper()
	m.mu.Lock()
	var ids []mesos.OfferID
	gone := map[string]bool{}
	for id := range m.frameworks[s.fwID].offers {
		ids = append(ids, mesos.OfferID{Value: id})
		gone[id] = true
	}
	m.mu.Unlock()
	if len(ids) > 0 {
		s.mustCall(calls.Decline(ids...).With(calls.RefuseSeconds(refuse)))
	}
	return gone
}

// freshOffer declines what s holds and returns the next new offer.
func freshOffer(m *Mesos, s *sched) mesos.Offer {
	s.t.Helper()
	gone := declineAll(m, s, 0)
	for {
		if o := s.nextOffer(); !gone[o.ID.Value] {
			return o
		}
	}
}

// reserved sums the scalar name of an offer's resources reserved for role
// (pre-refinement format), and checks each carries principal and labels.
func reserved(t *testing.T, o mesos.Offer, name, role string) (sum float64, rs []mesos.Resource) {
	t.Helper()
	for _, r := range o.Resources {
		if r.Name != name || r.GetRole() != role {
			continue
		}
		if role != "*" && r.Reservation == nil {
			t.Fatalf("reserved %s without reservation info: %v", name, r)
		}
		if len(r.Reservations) > 0 {
			t.Fatalf("offer to a framework without RESERVATION_REFINEMENT carries reservations: %v", r)
		}
		sum += r.GetScalar().GetValue()
		rs = append(rs, r)
	}
	return sum, rs
}

// masterState fetches GET /master/state as plain JSON.
func masterState(t *testing.T, m *Mesos) map[string]any {
	t.Helper()
	resp, err := http.Get(m.URL() + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func slaveState(t *testing.T, m *Mesos, id string) map[string]any {
	t.Helper()
	for _, s := range masterState(t, m)["slaves"].([]any) {
		if s := s.(map[string]any); s["id"] == id {
			return s
		}
	}
	t.Fatalf("agent %s not in /master/state", id)
	return nil
}

// TestReserveThenUnreserve ports src/tests/reservation_tests.cpp:
// ReserveThenUnreserve (a RESERVE shows in the next offer as reserved
// resources; an UNRESERVE turns them back into unreserved ones),
// DropReserveTooLarge (a RESERVE of more than the offer holds is dropped
// and the next offer is the same), ReserveAndLaunchThenUnreserve (tasks
// launch on reserved resources, the reservation outlives them) and
// ReserveShareWithinRole's converse: reserved resources are offered to
// their role only (allocator: a framework of another role never gets them).
func TestReserveThenUnreserve(t *testing.T) {
	o := testOptions()
	o.Agents = 1
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), pbCodec, roleFramework("fw", "role", "principal"))
	first := s.nextOffer()
	cpus, _ := reserved(t, first, "cpus", "*")

	// DropReserveTooLarge.
	s.accept(first, 0, calls.OpReserve(dynRes(scalar("cpus", cpus+1), "role", "principal")))
	again := s.nextOffer()
	if got, _ := reserved(t, again, "cpus", "role"); got != 0 {
		t.Fatalf("a RESERVE larger than the offer was applied: %v", again.Resources)
	}

	// ReserveThenUnreserve: labels and principal come back in the offer.
	want := []mesos.Resource{
		dynRes(scalar("cpus", 1), "role", "principal", "owner", "converge"),
		dynRes(scalar("mem", 512), "role", "principal", "owner", "converge"),
	}
	s.accept(again, 0, calls.OpReserve(want...))
	withRsv := s.nextOffer()
	c, rs := reserved(t, withRsv, "cpus", "role")
	mem, _ := reserved(t, withRsv, "mem", "role")
	if c != 1 || mem != 512 {
		t.Fatalf("offer after RESERVE: reserved cpus %v mem %v, want 1 and 512: %v", c, mem, withRsv.Resources)
	}
	if l := rs[0].Reservation.GetLabels().GetLabels(); rs[0].Reservation.GetPrincipal() != "principal" || len(l) != 1 || l[0].Key != "owner" || l[0].GetValue() != "converge" {
		t.Fatalf("reservation info not carried: %v", rs[0].Reservation)
	}
	if un, _ := reserved(t, withRsv, "cpus", "*"); un != cpus-1 {
		t.Fatalf("unreserved cpus %v, want %v", un, cpus-1)
	}
	sl := slaveState(t, m, withRsv.AgentID.Value)
	if r := sl["reserved_resources"].(map[string]any)["role"].(map[string]any); r["cpus"] != 1.0 || r["mem"] != 512.0 {
		t.Fatalf("/master/state reserved_resources[role] = %v", r)
	}
	full := sl["reserved_resources_full"].(map[string]any)["role"].([]any)
	if len(full) != 2 || full[0].(map[string]any)["role"] != "role" || full[0].(map[string]any)["reservation"] == nil || full[0].(map[string]any)["reservations"] == nil {
		t.Fatalf("/master/state reserved_resources_full[role] = %v", full)
	}

	// ReserveAndLaunchThenUnreserve: a task on the reserved resources.
	ti := cmdTask("on-reserved", withRsv, "sleep 1000", want...)
	s.accept(withRsv, 0, calls.OpLaunch(ti))
	s.reach("on-reserved", 5*time.Second, mesos.TASK_RUNNING)
	s.mustCall(calls.Kill("on-reserved", withRsv.AgentID.Value))
	s.reach("on-reserved", 5*time.Second, mesos.TASK_KILLED)

	// Another role never gets the reserved resources, even while free.
	declineAll(m, s, time.Hour)
	other := subscribe(t, m.URL(), pbCodec, roleFramework("other", "other", ""))
	for i := 0; i < 3; i++ {
		off := other.nextOffer()
		if un, _ := reserved(t, off, "cpus", "*"); un != cpus-1 {
			t.Fatalf("role 'other' offered %v unreserved cpus, want %v", un, cpus-1)
		}
		for _, r := range off.Resources {
			if r.GetRole() != "*" {
				t.Fatalf("role 'other' offered resources reserved for %q: %v", r.GetRole(), r)
			}
		}
		other.mustCall(calls.Decline(off.ID).With(calls.RefuseSeconds(0)))
	}
	other.close()

	// Unreserve.
	s.mustCall(calls.Revive())
	off := freshOffer(m, s)
	_, rs = reserved(t, off, "cpus", "role")
	_, rsMem := reserved(t, off, "mem", "role")
	s.accept(off, 0, calls.OpUnreserve(append(rs, rsMem...)...))
	after := freshOffer(m, s)
	if c, _ := reserved(t, after, "cpus", "role"); c != 0 {
		t.Fatalf("still reserved after UNRESERVE: %v", after.Resources)
	}
	if un, _ := reserved(t, after, "cpus", "*"); un != cpus {
		t.Fatalf("unreserved cpus %v after UNRESERVE, want %v", un, cpus)
	}
	if r := slaveState(t, m, after.AgentID.Value)["reserved_resources"].(map[string]any); len(r) != 0 {
		t.Fatalf("/master/state reserved_resources after UNRESERVE: %v", r)
	}
}

// TestPersistentVolume ports src/tests/persistent_volume_tests.cpp:
// CreateAndDestroyPersistentVolumes (RESERVE and CREATE in one ACCEPT, the
// volume in the next offers and in /master/state, DESTROY then UNRESERVE
// leave nothing reserved), AccessPersistentVolume (a task writes into the
// volume at its container path; the data outlives the task and a second task
// reads it; after DESTROY the directory is gone), DestroyPersistentVolumeMultipleTasks
// (a volume in use cannot be destroyed) and the CREATE-then-LAUNCH pipelining
// of Master::_accept (operations apply in order within one ACCEPT).
func TestPersistentVolume(t *testing.T) {
	o := realOptions(t)
	o.Agents = 1
	m := startMesos(t, o)
	fi := roleFramework("fw", "role", "principal")
	fi.Capabilities = append(fi.Capabilities, mesos.FrameworkInfo_Capability{Type: mesos.FrameworkInfo_Capability_RESERVATION_REFINEMENT})
	s := subscribe(t, m.URL(), pbCodec, fi)
	off := s.nextOffer()
	rsv := []mesos.Resource{
		refinedRes(scalar("cpus", 0.5), "role", "principal"),
		refinedRes(scalar("mem", 64), "role", "principal"),
		refinedRes(scalar("disk", 128), "role", "principal"),
	}
	vol := refinedRes(scalar("disk", 128), "role", "principal")
	mode := mesos.RW
	vol.Disk = &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: "id1", Principal: optString("principal")},
		Volume:      &mesos.Volume{Mode: &mode, ContainerPath: "path1"},
	}
	taskRes := []mesos.Resource{rsv[0], rsv[1], vol}
	write := cmdTask("writer", off, "echo abc > path1/file && sleep 1000", taskRes...)
	s.accept(off, 0, calls.OpReserve(rsv...), calls.OpCreate(vol), calls.OpLaunch(write))
	s.reach("writer", 10*time.Second, mesos.TASK_RUNNING)

	volDir := filepath.Join(m.workDir, "agents", off.AgentID.Value, "volumes", "roles", "role", "id1")
	waitFile(t, filepath.Join(volDir, "file"), "abc\n")
	st := slaveState(t, m, off.AgentID.Value)
	assertVolumeInState(t, st, "id1", "path1")

	// DestroyPersistentVolumeMultipleTasks: no DESTROY while in use (the
	// volume is not even offered while its task runs).
	next := freshOffer(m, s)
	for _, r := range next.Resources {
		if r.Disk != nil {
			t.Fatalf("a volume in use was offered: %v", r)
		}
	}
	s.accept(next, 0, calls.OpDestroy(vol))
	if _, err := os.Stat(volDir); err != nil {
		t.Fatalf("DESTROY of a volume in use removed it: %v", err)
	}
	s.mustCall(calls.Kill("writer", off.AgentID.Value))
	s.reach("writer", 5*time.Second, mesos.TASK_KILLED)

	// The data outlives its task: a new task reads it.
	off = offerWithVolume(t, m, s, "id1")
	read := cmdTask("reader", off, "test \"$(cat path1/file)\" = abc", taskRes...)
	s.accept(off, 0, calls.OpLaunch(read))
	s.reach("reader", 10*time.Second, mesos.TASK_FINISHED, mesos.TASK_FAILED)
	if st := s.update("reader", time.Second); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("reader did not find the data: %v", st)
	}

	// DESTROY then UNRESERVE in one ACCEPT: nothing left.
	off = offerWithVolume(t, m, s, "id1")
	s.accept(off, 0, calls.OpDestroy(vol), calls.OpUnreserve(rsv...))
	after := freshOffer(m, s)
	for _, r := range after.Resources {
		if len(r.Reservations) > 0 || r.Disk != nil {
			t.Fatalf("reserved resources left after DESTROY and UNRESERVE: %v", r)
		}
	}
	if _, err := os.Stat(volDir); !os.IsNotExist(err) {
		t.Fatalf("volume directory after DESTROY: %v", err)
	}
	sl := slaveState(t, m, off.AgentID.Value)
	if r := sl["reserved_resources"].(map[string]any); len(r) != 0 {
		t.Fatalf("/master/state reserved_resources after DESTROY and UNRESERVE: %v", r)
	}
}

// offerWithVolume waits for an offer holding volume id, declining others.
func offerWithVolume(t *testing.T, m *Mesos, s *sched, id string) mesos.Offer {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		off := freshOffer(m, s)
		for _, r := range off.Resources {
			if r.GetDisk().GetPersistence().GetID() == id {
				if len(r.Reservations) != 1 || r.Role != nil {
					t.Fatalf("a RESERVATION_REFINEMENT framework got %v", r)
				}
				return off
			}
		}
		s.mustCall(calls.Decline(off.ID).With(calls.RefuseSeconds(0)))
	}
	t.Fatalf("no offer with volume %s", id)
	return mesos.Offer{}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q, %v; want %q", path, b, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertVolumeInState checks /master/state's agent shows the volume as
// Mesos's SlavesWriter does: its disk in reserved_resources, and in
// reserved_resources_full with disk.persistence and disk.volume; in use, in
// used_resources_full.
func assertVolumeInState(t *testing.T, sl map[string]any, id, path string) {
	t.Helper()
	find := func(list []any) bool {
		for _, r := range list {
			d, _ := r.(map[string]any)["disk"].(map[string]any)
			if d == nil {
				continue
			}
			p, _ := d["persistence"].(map[string]any)
			v, _ := d["volume"].(map[string]any)
			if p["id"] == id && v["container_path"] == path && v["mode"] == "RW" {
				return true
			}
		}
		return false
	}
	if !find(sl["reserved_resources_full"].(map[string]any)["role"].([]any)) {
		t.Fatalf("volume %s not in reserved_resources_full: %v", id, sl["reserved_resources_full"])
	}
	if !find(sl["used_resources_full"].([]any)) {
		t.Fatalf("volume %s in use not in used_resources_full: %v", id, sl["used_resources_full"])
	}
	if d := sl["reserved_resources"].(map[string]any)["role"].(map[string]any)["disk"]; d != 128.0 {
		t.Fatalf("reserved_resources[role].disk = %v, want 128", d)
	}
	if sl["used_resources"].(map[string]any)["disk"] != 128.0 {
		t.Fatalf("used_resources = %v, want the volume's disk", sl["used_resources"])
	}
}
