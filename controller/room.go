package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// room is everything the controller holds about one cluster: its object, its
// ledger and election records as committed, what it published, its answers
// from members, and the pacing of its writes and messages. A cluster's life
// reads in one place, and forgetting it is dropping its room (dropRoomLocked).
// Guarded by c.mu.
type room struct {
	// cluster is the object as the store last returned it; nil while its
	// ledger is known but its object is not (deleted, or not read yet).
	cluster *v1alpha1.Cluster
	// tasks is its task ledger as committed, by task id.
	tasks map[string]*store.TaskRecord
	// election is its election record as committed (nil: none yet).
	election *store.ElectionRecord
	// endpoints is the published record; nil means none is published once
	// epLoaded says it was read from the store.
	endpoints *store.Endpoints
	epLoaded  bool
	// events is its event history as committed; historyLoaded says it was
	// read (a history never read is not written over: see stageEvents).
	events        []store.Event
	historyLoaded bool

	// answers are the members' position answers for the current epochs;
	// promoted and demoted the latest such messages. The planner holds these
	// slices, so they are replaced, never changed in place.
	answers           []election.Message
	promoted, demoted *election.Message
	// lease is the master's lease and the follow answers (nil: no lease).
	lease *LeaseState

	// view is cluster with its defaults set and specErrors its validation,
	// made once per object (viewOf) rather than for every planner input: an
	// offer round plans every needy cluster.
	view       *v1alpha1.Cluster
	viewOf     *v1alpha1.Cluster
	specErrors field.ErrorList

	// needySince: when the cluster came to need offers (zero: it needs none);
	// unplaced says why its needs found no offer.
	needySince time.Time
	unplaced   *Unplaced
	// demand counts the reconciles that found the cluster needing members,
	// so an offer round can tell whether the demand it planned from is still
	// the latest (see dropSatisfied).
	demand uint64
	// lastStatus, lastEP: the last status and endpoints writes, which
	// writeMinInterval spaces.
	lastStatus, lastEP time.Time
	// lastSent: the last election message round; sentMsgs the messages sent
	// in it.
	lastSent time.Time
	sentMsgs map[string]bool
}

// roomLocked returns key's room, making it on first use; c.mu is held.
func (c *Controller) roomLocked(key string) *room {
	r := c.rooms[key]
	if r == nil {
		r = &room{}
		c.rooms[key] = r
	}
	return r
}

// clusterLocked returns key's object, nil when it is unknown; c.mu is held.
func (c *Controller) clusterLocked(key string) *v1alpha1.Cluster {
	if r := c.rooms[key]; r != nil {
		return r.cluster
	}
	return nil
}

// taskLocked returns the committed record of task id of key, or nil; c.mu is
// held.
func (c *Controller) taskLocked(key, id string) *store.TaskRecord {
	if r := c.rooms[key]; r != nil {
		return r.tasks[id]
	}
	return nil
}

// tasksLocked returns key's committed ledger (nil when it has none); c.mu
// is held. The map is the room's own: callers only read it.
func (c *Controller) tasksLocked(key string) map[string]*store.TaskRecord {
	if r := c.rooms[key]; r != nil {
		return r.tasks
	}
	return nil
}

// historyLocked returns key's committed event history and whether it was
// read; c.mu is held.
func (c *Controller) historyLocked(key string) ([]store.Event, bool) {
	if r := c.rooms[key]; r != nil {
		return r.events, r.historyLoaded
	}
	return nil, false
}

// putTaskLocked records a committed task record (nil rec: deleted); c.mu is
// held.
func (c *Controller) putTaskLocked(key, id string, rec *store.TaskRecord) {
	r := c.roomLocked(key)
	if rec == nil {
		delete(r.tasks, id)
		return
	}
	if r.tasks == nil {
		r.tasks = map[string]*store.TaskRecord{}
	}
	r.tasks[id] = rec
	c.noteVolumesLocked(key, nil, rec)
}

// setClusterLocked caches obj unless the cache already holds a newer version;
// c.mu is held.
func (c *Controller) setClusterLocked(obj *v1alpha1.Cluster) {
	key := obj.Namespace + "/" + obj.Name
	r := c.roomLocked(key)
	if r.cluster == nil || rvOf(r.cluster) <= rvOf(obj) {
		r.cluster = obj
		c.noteVolumesLocked(key, obj, nil)
	}
}

// dropRoomLocked forgets key: its room and its place in the needy and volume
// indexes. It returns the room (nil if there was none); c.mu is held.
func (c *Controller) dropRoomLocked(key string) *room {
	r := c.rooms[key]
	if r != nil && r.lease != nil && r.lease.lapse != nil {
		r.lease.lapse.Stop()
	}
	delete(c.rooms, key)
	delete(c.needy, key)
	delete(c.volumeKeys, key)
	return r
}

// viewLocked returns the cluster defaulted and its validation errors, made
// once per object version; c.mu is held. Callers copy the view before
// handing it out: even reading a Quantity caches its string form.
func (r *room) viewLocked() (*v1alpha1.Cluster, field.ErrorList) {
	if r.viewOf != r.cluster {
		v := r.cluster.DeepCopy()
		v1alpha1.SetDefaults(v)
		r.view, r.viewOf, r.specErrors = v, r.cluster, v1alpha1.Validate(v)
	}
	return r.view, r.specErrors
}
