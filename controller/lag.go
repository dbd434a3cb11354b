package controller

import (
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/store"
)

// Lag on failover (election.maximumLagOnFailover), as Patroni's
// maximum_lag_on_failover: the master reports its position in its lease
// requests (the executor runs positionCommand beside its renewals); the
// controller keeps the latest report in memory (LeaseState) and persists it
// in the election record at most once per lease duration, so a controller
// that restarts, or an election after the master died, still knows about
// where the master was (Patroni writes its leader's optime to the DCS each
// loop, 10 s by default). An election excludes the members that lag that
// position by more than the limit; with none within it nobody is elected
// (Patroni's _is_healthiest_node refuses to take the leader key), and the
// election retries each timeout.

// masterPosition returns the last position a master reported, the newer of
// the latest report the controller holds in memory and the one persisted in
// cur, and the epoch of the master that reported it ("" if none is known).
func (p *planner) masterPosition(cur store.ElectionRecord) (string, int64) {
	l := p.in.Lease
	if l.Position != "" && l.PositionEpoch >= cur.MasterPositionEpoch {
		return l.Position, l.PositionEpoch
	}
	return cur.MasterPosition, cur.MasterPositionEpoch
}

// recordMasterPosition persists the master's latest reported position when
// it differs from the persisted one and that is at least a lease duration
// old (or was never written). Only clusters with a lag limit need it: for
// the others it would be a reconcile and a write per master per lease, work
// that grows with every master that exists rather than with what changed.
func (p *planner) recordMasterPosition(cur store.ElectionRecord) {
	pos, epoch := p.masterPosition(cur)
	if p.c.Spec.Election.MaximumLagOnFailover == nil || pos == "" || (pos == cur.MasterPosition && epoch == cur.MasterPositionEpoch) || !positionDue(cur, p.in.Now, leaseDurationOf(&p.c.Spec)) {
		return
	}
	next := cur
	if p.out.Election != nil {
		next = *p.out.Election
	}
	t := p.in.Now
	next.MasterPosition, next.MasterPositionEpoch, next.MasterPositionAt = pos, epoch, &t
	p.out.Election = &next
}

// positionDue reports whether a new master position may be persisted now:
// one write per lease duration at most.
func positionDue(rec store.ElectionRecord, now time.Time, d time.Duration) bool {
	return rec.MasterPositionAt == nil || !now.Before(rec.MasterPositionAt.Add(d))
}

// carryMasterPosition copies the last known master position into a new
// election record.
func (p *planner) carryMasterPosition(cur store.ElectionRecord, next *store.ElectionRecord) {
	pos, epoch := p.masterPosition(cur)
	if pos == "" {
		return
	}
	next.MasterPosition, next.MasterPositionEpoch = pos, epoch
	next.MasterPositionAt = cur.MasterPositionAt
	if pos != cur.MasterPosition || epoch != cur.MasterPositionEpoch {
		t := p.in.Now
		next.MasterPositionAt = &t
	}
}

// withinLag returns the answers whose lag behind the last known master
// position is within election.maximumLagOnFailover, and, when some are not,
// why (for conditions and events). Without a limit or a known position every
// answer is eligible, as is one whose lag cannot be measured (another format).
func (p *planner) withinLag(cur store.ElectionRecord, answered map[string]string) (map[string]string, string) {
	limit := p.c.Spec.Election.MaximumLagOnFailover
	master, epoch := p.masterPosition(cur)
	if limit == nil || master == "" {
		return answered, ""
	}
	max := big.NewInt(*limit)
	eligible := map[string]string{}
	var lagging []string
	for id, pos := range answered {
		lag, err := election.Lag(master, pos)
		if err != nil || lag.Cmp(max) <= 0 {
			eligible[id] = pos
			continue
		}
		m := p.byID[id].rec
		lagging = append(lagging, fmt.Sprintf("task %s (ordinal %d) at %q lags by %s", m.ID, m.Ordinal, pos, lag))
	}
	if len(lagging) == 0 {
		return eligible, ""
	}
	sort.Strings(lagging)
	if len(lagging) > 3 {
		lagging = append(lagging[:3], fmt.Sprintf("and %d more", len(lagging)-3))
	}
	return eligible, fmt.Sprintf("%s behind the last position the master of epoch %d reported, %q, more than election.maximumLagOnFailover (%d)",
		strings.Join(lagging, ", "), epoch, master, *limit)
}
