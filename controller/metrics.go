package controller

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reconciles       prometheus.Counter
	resyncs          prometheus.Counter // periodic sweeps: tells converge bench whether one fell inside a measurement
	reconcileErrors  prometheus.Counter
	reconcileSeconds prometheus.Histogram
	launches         prometheus.Counter
	kills            prometheus.Counter
	elections        *prometheus.CounterVec
	statusWrites     prometheus.Counter
	commits          prometheus.Counter
	commitOps        prometheus.Histogram
	commitsUnknown   prometheus.Counter
	duplicates       prometheus.Counter
	offers           prometheus.Counter
	acks             prometheus.Counter
	ackSeconds       prometheus.Histogram
}

// taskStateCollector reports tasks by state from the ledger cache at scrape time
// (no bookkeeping on the hot path).
type taskStateCollector struct {
	c    *Controller
	desc *prometheus.Desc
}

func (t *taskStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

func (t *taskStateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	t.c.mu.Lock()
	for _, rm := range t.c.rooms {
		for _, r := range rm.tasks {
			counts[r.State]++
		}
	}
	t.c.mu.Unlock()
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(t.desc, prometheus.GaugeValue, float64(n), s)
	}
}

func newMetrics(reg prometheus.Registerer, c *Controller) (*metrics, error) {
	const ns = "converge_controller"
	m := &metrics{
		reconciles:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reconciles_total", Help: "Cluster reconciles run."}),
		resyncs:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "resyncs_total", Help: "Periodic resync sweeps (every cluster enqueued)."}),
		reconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reconcile_errors_total", Help: "Cluster reconciles that failed and were retried."}),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "reconcile_duration_seconds", Help: "Time of one cluster reconcile.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		launches:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "launches_total", Help: "Tasks launched."}),
		kills:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "kills_total", Help: "Tasks killed."}),
		elections:    prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "elections_total", Help: "Election steps persisted, by phase."}, []string{"phase"}),
		statusWrites: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "status_writes_total", Help: "Cluster status writes."}),
		commits:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "ledger_commits_total", Help: "Ledger/election/endpoint transactions."}),
		commitOps: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "ledger_commit_ops", Help: "Writes per ledger transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		commitsUnknown: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "ledger_commits_unknown_total",
			Help: "Ledger transactions whose outcome was unknown (sent, no answer); each ends the leadership term."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "duplicate_members_killed_total",
			Help: "Tasks killed as a second live task of one ordinal (the ledger should never hold one)."}),
		offers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "offers_total", Help: "Offers received."}),
		acks:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "acknowledgements_total", Help: "Status updates acknowledged."}),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "ack_latency_seconds",
			Help:    "Time from a status update's arrival to its ACKNOWLEDGE (after the durable write).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.reconciles, m.resyncs, m.reconcileErrors, m.reconcileSeconds, m.launches, m.kills, m.elections, m.statusWrites, m.commits, m.commitOps, m.commitsUnknown, m.duplicates, m.offers, m.acks, m.ackSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_depth", Help: "Clusters waiting in the work queue."}, func() float64 { return float64(c.queue.Len()) }),
		&taskStateCollector{c: c, desc: prometheus.NewDesc(ns+"_tasks", "Ledger tasks by Mesos state.", []string{"state"}, nil)},
	}
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, fmt.Errorf("register controller metrics: %w", err)
		}
	}
	return m, nil
}
