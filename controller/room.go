package controller

import "time"

// room is one cluster's state in the controller, beside its object in
// c.clusters: what was published and when, and the pacing of its writes and
// election messages. Forgetting a cluster is deleting its room. Guarded by
// c.mu. (Issue 16 moves the controller's other per-cluster maps here, a few at
// a time.)
type room struct {
	// epLoaded: its endpoints record was read from the store into
	// c.endpoints (where nil then means none is published).
	epLoaded bool
	// needySince: when the cluster came to need offers (zero: it needs none).
	needySince time.Time
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
