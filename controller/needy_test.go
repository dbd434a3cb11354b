package controller

import (
	"testing"
	"time"

	"github.com/converge-io/converge/store"
)

// An offer round takes out of the needy index the clusters whose members
// were all launched by an earlier round, so later rounds do not plan them
// again; but not one that a reconcile found needing members since the
// round's snapshot (a member failed meanwhile), nor one that still needs.
func TestOfferRoundDropsSatisfiedClusters(t *testing.T) {
	c, err := New(Config{Store: &store.Store{}, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	c.subscribed, c.reconciled = true, true
	place := func(name string, launched ...int32) {
		cl := testCluster(3)
		cl.Name = name
		rm := c.roomLocked("default/" + name)
		rm.cluster, rm.tasks = cl, map[string]*store.TaskRecord{}
		for _, o := range launched {
			r := rec(cl, o, stateStaging)
			rm.tasks[r.ID] = &r
		}
		rm.needySince, rm.demand = t0, 1
		c.needy["default/"+name] = true
	}
	place("launched", 0, 1, 2)
	place("failed-meanwhile", 0, 1, 2)
	place("waiting", 0)

	_, snapshot := c.noteOffers(nil)
	needs, _, _, satisfied := c.planNeeds(snapshot)
	if len(needs) != 2 || len(satisfied) != 2 {
		t.Fatalf("needs %d, satisfied %d; want the 2 members of waiting, and 2 clusters satisfied", len(needs), len(satisfied))
	}
	c.rooms["default/failed-meanwhile"].demand++ // its reconcile ran after the snapshot
	c.dropSatisfied(satisfied)
	for key, want := range map[string]bool{"default/launched": false, "default/failed-meanwhile": true, "default/waiting": true} {
		if c.needy[key] != want {
			t.Errorf("%s needy = %t, want %t", key, c.needy[key], want)
		}
	}
	if !c.rooms["default/launched"].needySince.IsZero() {
		t.Error("a satisfied cluster keeps its needySince")
	}
}

// The planner's view of a cluster (defaults set, validation run), cached per
// object, follows a new version of the object, never changes the cached
// object, and each input has its own copy.
func TestInputViewPerObjectVersion(t *testing.T) {
	c, err := New(Config{Store: &store.Store{}, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	raw := testCluster(3)
	raw.Spec.Task.Resources.Ports = -1 // invalid
	c.setClusterLocked(raw)
	a, b := c.inputLocked("default/db"), c.inputLocked("default/db")
	if a.Cluster == b.Cluster || len(a.SpecErrors) == 0 {
		t.Fatalf("inputs share their cluster (%t) or miss its errors %v", a.Cluster == b.Cluster, a.SpecErrors)
	}
	fixed := raw.DeepCopy()
	fixed.ResourceVersion = "2"
	fixed.Spec.Task.Resources.Ports = 1
	fixed.Spec.Replicas = nil // defaulted in the view
	c.setClusterLocked(fixed)
	in := c.inputLocked("default/db")
	if len(in.SpecErrors) != 0 || in.Cluster.Spec.Replicas == nil || in.Cluster.ResourceVersion != "2" {
		t.Fatalf("a new object version kept the old view: errors %v, replicas %v", in.SpecErrors, in.Cluster.Spec.Replicas)
	}
	if fixed.Spec.Replicas != nil {
		t.Fatal("defaulting changed the cached object")
	}
}
