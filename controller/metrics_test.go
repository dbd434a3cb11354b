package controller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/converge-io/converge/store"
)

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := New(Config{Store: &store.Store{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c.roomLocked("default/db").tasks = map[string]*store.TaskRecord{"a": {State: stateRunning}, "b": {State: stateRunning}, "c": {State: "TASK_FAILED"}}
	c.m.launches.Add(3)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	var running float64
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetName() == "converge_controller_tasks" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == stateRunning {
					running = m.GetGauge().GetValue()
				}
			}
		}
	}
	for _, n := range []string{"reconciles_total", "reconcile_duration_seconds", "queue_depth", "tasks", "launches_total", "kills_total", "status_writes_total", "resyncs_total"} {
		if !names["converge_controller_"+n] {
			t.Errorf("metric converge_controller_%s missing", n)
		}
	}
	if !names["converge_controller_launches_total"] || running != 2 {
		t.Fatalf("metrics = %v, running = %v", names, running)
	}
}
