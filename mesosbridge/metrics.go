package mesosbridge

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's Prometheus collectors. They exist (and count) even when
// no Registerer is configured, so the code never checks for nil.
type metrics struct {
	subscribed          prometheus.Gauge
	frameworkRemoved    prometheus.Gauge
	events              *prometheus.CounterVec
	calls               *prometheus.CounterVec
	offersAccepted      prometheus.Counter
	offersDeclined      prometheus.Counter
	reconcileRounds     prometheus.Counter
	reconcileDuration   prometheus.Histogram
	reconnects          prometheus.Counter
	heartbeatTimeouts   prometheus.Counter
	leaderChanges       prometheus.Counter
	killsOutstanding    prometheus.Gauge
	revivesCoalesced    prometheus.Counter
	authenticationFails prometheus.Counter
	dials               *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "converge", "mesos"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		subscribed: gauge("subscribed",
			"1 while the scheduler event stream to the leading Mesos master is up."),
		frameworkRemoved: gauge("framework_removed",
			"1 when the master said the framework was removed; an operator must start a new framework."),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_total", Help: "Scheduler events received from the master, by type."}, []string{"type"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "calls_total", Help: "Scheduler calls sent to the master, by type and result (ok, error, redirect)."}, []string{"type", "result"}),
		offersAccepted: counter("offers_accepted_total",
			"Offers accepted (ACCEPT calls' offer ids)."),
		offersDeclined: counter("offers_declined_total",
			"Offers declined (DECLINE calls' offer ids)."),
		reconcileRounds: counter("reconciliation_rounds_total",
			"Explicit reconciliation rounds completed (every listed task answered)."),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "reconciliation_duration_seconds", Help: "Duration of completed explicit reconciliation rounds.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
		reconnects: counter("subscribe_attempts_total",
			"SUBSCRIBE attempts."),
		heartbeatTimeouts: counter("heartbeat_timeouts_total",
			"Streams dropped because heartbeats stopped."),
		leaderChanges: counter("leader_changes_total",
			"Times the bridge moved to another master."),
		killsOutstanding: gauge("kills_outstanding",
			"Tasks being killed that have not reported a terminal state yet."),
		revivesCoalesced: counter("revives_coalesced_total",
			"REVIVE requests folded into another because of the rate limit."),
		authenticationFails: counter("authentication_failures_total",
			"SUBSCRIBE attempts the master refused (401/403)."),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "dials_total", Help: "TCP connections dialled to the masters, by lane (calls, acks, stream): connections are reused, so this stays near the lanes' bounds."}, []string{"lane"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.subscribed, m.frameworkRemoved, m.events, m.calls,
		m.offersAccepted, m.offersDeclined, m.reconcileRounds, m.reconcileDuration, m.reconnects,
		m.heartbeatTimeouts, m.leaderChanges, m.killsOutstanding, m.revivesCoalesced, m.authenticationFails, m.dials} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("mesosbridge: metrics already registered (one Client per registry): %w", err)
			}
			return nil, fmt.Errorf("mesosbridge: register metrics: %w", err)
		}
	}
	return m, nil
}
