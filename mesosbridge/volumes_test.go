package mesosbridge

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// reservedFor returns r dynamically reserved for role by principal, with
// labels (the pre-refinement format a framework without
// RESERVATION_REFINEMENT uses).
func reservedFor(r mesos.Resource, role, principal string, labels *mesos.Labels) mesos.Resource {
	r.Role = &role
	r.Reservation = &mesos.Resource_ReservationInfo{Principal: &principal, Labels: labels}
	return r
}

// TestRolesAndAccept: with Roles, the client subscribes MULTI_ROLE and gets
// offers allocated to each role; Accept sends RESERVE, CREATE and LAUNCH in
// one ACCEPT, which a master applies in order (the task runs on the
// reservation and its volume); the next offer for the role carries the
// reservation's labels and the volume's persistence id, and DESTROY with
// UNRESERVE leaves nothing reserved.
func TestRolesAndAccept(t *testing.T) {
	m := startMesos(t, localmesos.Options{Agents: 1})
	cfg := testConfig(m.URLs(), &memStore{})
	cfg.Roles = []string{"*", "db"}
	cfg.Principal = "conv"
	r := startClient(t, cfg)
	ctx := context.Background()

	var offer mesos.Offer
	_, next := r.waitEvent(0, 10*time.Second, "offer for role db", func(e Event) bool {
		for _, o := range e.Offers {
			if o.AllocationInfo.GetRole() == "db" {
				offer = o
				return true
			}
		}
		return false
	})
	labels := &mesos.Labels{Labels: []mesos.Label{{Key: "converge.io/cluster", Value: proto("pg")}}}
	rsv := []mesos.Resource{
		reservedFor(scalar("cpus", 0.5), "db", "conv", labels),
		reservedFor(scalar("mem", 64), "db", "conv", labels),
		reservedFor(scalar("disk", 100), "db", "conv", labels),
	}
	vol := rsv[2]
	mode := mesos.RW
	vol.Disk = &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: "pg-0-data", Principal: proto("conv")},
		Volume:      &mesos.Volume{Mode: &mode, ContainerPath: "data"},
	}
	ti := mesos.TaskInfo{
		Name: "t", TaskID: mesos.TaskID{Value: "t"}, AgentID: offer.AgentID,
		Resources: []mesos.Resource{rsv[0], rsv[1], vol},
		Command:   &mesos.CommandInfo{Value: proto("sleep 1000")},
	}
	ops := []mesos.Offer_Operation{calls.OpReserve(rsv...), calls.OpCreate(vol), calls.OpLaunch(ti)}
	if err := r.c.Accept(ctx, []mesos.OfferID{offer.ID}, ops, 0); err != nil {
		t.Fatal(err)
	}
	for {
		ev, k := r.waitEvent(next, 10*time.Second, "t RUNNING", isUpdate("t"))
		next = k + 1
		_ = r.c.Acknowledge(ctx, *ev.Status)
		if st := ev.Status.GetState(); st == mesos.TASK_RUNNING {
			break
		} else if st != mesos.TASK_STARTING && st != mesos.TASK_STAGING {
			t.Fatalf("task on a reservation made in the same ACCEPT: %v", ev.Status)
		}
	}
	if n := reservedIn(t, m.URL(), "db"); n != 3 {
		t.Fatalf("/master/state reserved_resources_full[db]: %d resources, want 3 (cpus, mem, the volume)", n)
	}
	if err := r.c.Kill(ctx, "t", offer.AgentID.Value); err != nil {
		t.Fatal(err)
	}
	ev, k := r.waitEvent(next, 10*time.Second, "t KILLED", isUpdate("t", mesos.TASK_KILLED))
	_ = r.c.Acknowledge(ctx, *ev.Status)
	next = k + 1

	// The reservation comes back in offers for db, labelled, with the volume.
	var again mesos.Offer
	r.waitEvent(next, 10*time.Second, "offer with the volume", func(e Event) bool {
		for _, o := range e.Offers {
			for _, x := range o.Resources {
				if x.GetDisk().GetPersistence().GetID() == "pg-0-data" && x.GetRole() == "db" &&
					len(x.GetReservation().GetLabels().GetLabels()) == 1 {
					again = o
					return true
				}
			}
			_ = r.c.Decline(ctx, []mesos.OfferID{o.ID}, 0)
		}
		return false
	})
	ops = []mesos.Offer_Operation{calls.OpDestroy(vol), calls.OpUnreserve(rsv...)}
	if err := r.c.Accept(ctx, []mesos.OfferID{again.ID}, ops, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no reservation left", func() bool { return reservedIn(t, m.URL(), "db") == 0 })
}

// reservedIn counts the agents' reserved_resources_full entries for role.
func reservedIn(t *testing.T, base, role string) int {
	t.Helper()
	res, err := http.Get(base + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var st struct {
		Slaves []struct {
			Full map[string][]json.RawMessage `json:"reserved_resources_full"`
		} `json:"slaves"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range st.Slaves {
		n += len(s.Full[role])
	}
	return n
}
