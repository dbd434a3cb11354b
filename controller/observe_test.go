package controller

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/store"
)

func ptrF(f float64) *float64 { return &f }

func status(state mesos.TaskState, uuid string, ts float64) mesos.TaskStatus {
	st := mesos.TaskStatus{TaskID: mesos.TaskID{Value: "default.db.0.aa"}, State: state.Enum(), Timestamp: &ts, AgentID: &mesos.AgentID{Value: "S1"}}
	if uuid != "" {
		st.UUID = []byte(uuid)
	}
	return st
}

func TestApplyStatus(t *testing.T) {
	now := t0
	base := store.TaskRecord{ID: "default.db.0.aa", State: stateStaging, AgentID: "S1"}
	running := base
	if ok, _ := applyStatus(&running, status(mesos.TASK_RUNNING, "u-running-000001", 10), now); !ok || running.State != stateRunning || running.StatusTime != 10 {
		t.Fatalf("RUNNING not applied: %+v", running)
	}
	// minReadySeconds and the restart back-off count from the first RUNNING, not
	// from later updates of a running task (reconciliation answers).
	later, again := running, status(mesos.TASK_RUNNING, "", 11)
	again.Reason = mesos.REASON_RECONCILIATION.Enum()
	if ok, _ := applyStatus(&later, again, now.Add(time.Minute)); running.RunningAt == nil || !running.RunningAt.Equal(now) ||
		!ok || !later.RunningAt.Equal(now) {
		t.Fatalf("runningAt = %v, then %v after a later RUNNING update; want %v", running.RunningAt, later.RunningAt, now)
	}
	// Health and check results (Mesos's updates carry both): recorded, and
	// checkPassingSince set when the check starts passing, cleared when it fails.
	checked := running
	yes, no, zero, one := true, false, int32(0), int32(1)
	hs := status(mesos.TASK_RUNNING, "u-health-000001", 13)
	hs.Reason, hs.Healthy = mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(), &yes
	hs.CheckStatus = &mesos.CheckStatusInfo{Type: mesos.CheckInfo_COMMAND.Enum(), Command: &mesos.CheckStatusInfo_Command{ExitCode: &zero}}
	if ok, _ := applyStatus(&checked, hs, now.Add(time.Second)); !ok || !*checked.Healthy || !*checked.CheckPassing || !checked.CheckPassingSince.Equal(now.Add(time.Second)) {
		t.Fatalf("health and check results not recorded: %+v", checked)
	}
	sick := hs
	sick.UUID, sick.Timestamp, sick.Healthy = []byte("u-health-000002"), ptrF(14), &no
	sick.CheckStatus = &mesos.CheckStatusInfo{Type: mesos.CheckInfo_COMMAND.Enum(), Command: &mesos.CheckStatusInfo_Command{ExitCode: &one}}
	ok, evs := applyStatus(&checked, sick, now.Add(2*time.Second))
	if !ok || *checked.Healthy || *checked.CheckPassing || checked.CheckPassingSince != nil || len(evs) != 1 || evs[0].Reason != "Unhealthy" {
		t.Fatalf("unhealthy, failing: %+v, events %+v", checked, evs)
	}
	// A new leader's reconciliation answers RUNNING (stamped with the master's
	// clock) while the agent's RUNNING and then TASK_FAILED, older, wait for
	// their acknowledgement: the failure must still be written, or it is
	// acknowledged and lost.
	answered := base
	answer := status(mesos.TASK_RUNNING, "", 33)
	answer.Reason = mesos.REASON_RECONCILIATION.Enum()
	if ok, _ := applyStatus(&answered, answer, now); !ok || answered.State != stateRunning {
		t.Fatalf("reconciliation answer RUNNING not applied: %+v", answered)
	}
	applyStatus(&answered, status(mesos.TASK_RUNNING, "u-running-000002", 28.2), now)
	if ok, _ := applyStatus(&answered, status(mesos.TASK_FAILED, "u-failed-000002", 28.4), now); !ok || answered.State != "TASK_FAILED" {
		t.Fatalf("TASK_FAILED older than a reconciliation answer was dropped: changed=%v %+v", ok, answered)
	}
	cases := []struct {
		name    string
		rec     store.TaskRecord
		st      mesos.TaskStatus
		changed bool
		state   string
		event   string
	}{
		{"STARTING after STAGING is not written", base, status(mesos.TASK_STARTING, "u-starting-00001", 5), false, stateStaging, ""},
		{"duplicate (same uuid) changes nothing", running, status(mesos.TASK_FAILED, "u-running-000001", 11), false, stateRunning, ""},
		{"out of order (older) changes nothing", running, status(mesos.TASK_STARTING, "u-older-0000001", 9), false, stateRunning, ""},
		{"an older terminal update is still recorded", running, status(mesos.TASK_FINISHED, "u-older-0000002", 9), true, "TASK_FINISHED", ""},
		{"same state again changes nothing", running, status(mesos.TASK_RUNNING, "u-again-0000001", 12), false, stateRunning, ""},
		{"failure is recorded with an event", running, status(mesos.TASK_FAILED, "u-failed-000001", 12), true, "TASK_FAILED", "TaskFailed"},
		{"unreachable records since when", running, status(mesos.TASK_UNREACHABLE, "", 12), true, stateUnreachable, "TaskUnreachable"},
		{"reconciliation answer without uuid applies", running, status(mesos.TASK_LOST, "", 12), true, "TASK_LOST", "TaskFailed"},
		{"nothing after terminal", func() store.TaskRecord { r := running; r.State = "TASK_KILLED"; return r }(), status(mesos.TASK_RUNNING, "u-late-00000001", 20), false, "TASK_KILLED", ""},
		{"an expected kill is no failure", func() store.TaskRecord { r := running; r.KillRequested = true; return r }(), status(mesos.TASK_KILLED, "u-killed-000001", 12), true, "TASK_KILLED", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rec
			changed, evs := applyStatus(&r, tc.st, now)
			if changed != tc.changed || r.State != tc.state {
				t.Fatalf("changed=%v state=%s, want %v %s", changed, r.State, tc.changed, tc.state)
			}
			if (tc.event == "") != (len(evs) == 0) || (tc.event != "" && evs[0].Reason != tc.event) {
				t.Fatalf("events = %+v, want %q", evs, tc.event)
			}
			if tc.state == stateUnreachable && r.UnreachableAt == nil {
				t.Fatalf("no UnreachableAt")
			}
		})
	}
}

func TestBuildTask(t *testing.T) {
	c, err := New(Config{Store: &store.Store{}, ExecutorURI: "http://artifacts/converge", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	cl := newCluster("db", 3)
	cl.Namespace = "prod"
	n := Need{Key: "prod/db", Namespace: "prod", Cluster: "db", Ordinal: 2, TemplateHash: v1alpha1.TemplateHash(&cl.Spec)}
	a := Assignment{AgentID: "S1", Hostname: "127.0.0.2", Ports: []uint64{31005, 31006}}
	ti, rec := c.buildTask(cl, n, a, "prod.db.2.abcd1234")
	if ti.Name != "prod/db-2" || ti.Command == nil || ti.Executor != nil || !ti.Command.GetShell() || ti.Command.GetValue() != "sleep 1000" {
		t.Fatalf("task = %+v", ti)
	}
	env := map[string]string{}
	for _, v := range ti.Command.Environment.Variables {
		env[v.Name] = v.GetValue()
	}
	want := map[string]string{EnvNamespace: "prod", EnvCluster: "db", EnvOrdinal: "2", EnvTaskID: "prod.db.2.abcd1234", "PORT0": "31005", "PORT1": "31006", "PORTS": "31005,31006", "DB_PASSWORD": "s3cr3t-value"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if rec.State != stateStaging || rec.Ordinal != 2 || rec.TemplateHash != v1alpha1.TemplateHash(&cl.Spec) || rec.ExecutorID != "" || len(rec.Ports) != 2 || rec.Hostname != "127.0.0.2" {
		t.Fatalf("record = %+v", rec)
	}

	// Position strategy without an executor: converge executor, env contract on
	// ExecutorInfo.command, no CommandInfo on the task.
	positional(cl)
	q := resource.MustParse("1")
	cl.Spec.Task.Resources.CPUs = &q
	ti, rec = c.buildTask(cl, n, a, "prod.db.2.abcd1234")
	if ti.Command != nil || ti.Executor == nil || ti.Executor.ExecutorID.Value != "prod.db.2.abcd1234" || rec.ExecutorID != "prod.db.2.abcd1234" {
		t.Fatalf("task = %+v", ti)
	}
	cmd := ti.Executor.Command
	if cmd.GetValue() != DefaultExecutorCommand || len(cmd.URIs) != 1 || cmd.URIs[0].Value != "http://artifacts/converge" || !cmd.URIs[0].GetExecutable() {
		t.Fatalf("executor command = %+v", cmd)
	}
	env = map[string]string{}
	for _, v := range cmd.Environment.Variables {
		env[v.Name] = v.GetValue()
	}
	for k, v := range map[string]string{EnvTaskCommand: "sleep 1000", EnvPositionCommand: "cat position", EnvPromoteCommand: "touch promoted", EnvElectionStrategy: "position", EnvOrdinal: "2", "PORT0": "31005"} {
		if env[k] != v {
			t.Errorf("executor env %s = %q, want %q", k, env[k], v)
		}
	}
}

// killRecorder is a Mesos bridge that records KILL calls (other calls are not
// expected: the embedded nil interface panics on them).
type killRecorder struct {
	mesosbridge.Bridge
	mu    sync.Mutex
	kills []string
}

func (k *killRecorder) Kill(_ context.Context, taskID, _ string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kills = append(k.kills, taskID)
	return nil
}

// TestUpdateKillsWhatMustNotRun: a member written off while unreachable, or
// finished as TASK_UNKNOWN, that Mesos reports alive again is killed at once,
// even though a KILL was sent before (issue 11 §3, §4); a live member, or one
// still unreachable, is not.
func TestUpdateKillsWhatMustNotRun(t *testing.T) {
	c, err := New(Config{Store: &store.Store{}, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	kr := &killRecorder{}
	c.bridge = kr
	recs := map[string]*store.TaskRecord{
		"default.db.0.aa": {ID: "default.db.0.aa", Ordinal: 0, State: stateUnreachable, KillRequested: true, KillReason: "unreachable for more than 10s"},
		"default.db.1.bb": {ID: "default.db.1.bb", Ordinal: 1, State: stateUnknown, Reason: "REASON_RECONCILIATION"},
		"default.db.2.cc": {ID: "default.db.2.cc", Ordinal: 2, State: stateRunning},
		"default.db.3.dd": {ID: "default.db.3.dd", Ordinal: 3, State: stateUnreachable, KillRequested: true},
	}
	c.roomLocked("default/db").tasks = recs
	c.killSent["default.db.0.aa"] = true // its first KILL could not reach it
	report := func(id string, state mesos.TaskState) {
		ts := 100.0
		c.handleUpdate(context.Background(), mesos.TaskStatus{TaskID: mesos.TaskID{Value: id}, State: state.Enum(),
			Reason: mesos.REASON_RECONCILIATION.Enum(), Timestamp: &ts, AgentID: &mesos.AgentID{Value: "S1"}})
	}
	report("default.db.0.aa", mesos.TASK_RUNNING)
	report("default.db.1.bb", mesos.TASK_RUNNING)
	report("default.db.2.cc", mesos.TASK_RUNNING)
	report("default.db.3.dd", mesos.TASK_UNREACHABLE)
	if want := []string{"default.db.0.aa", "default.db.1.bb"}; !reflect.DeepEqual(kr.kills, want) {
		t.Fatalf("KILL sent for %v, want %v", kr.kills, want)
	}
}

func TestApplyStatusUnknownIsFinished(t *testing.T) {
	r := store.TaskRecord{ID: "default.db.0.aa", State: stateRunning, AgentID: "S1"}
	st := status(mesos.TASK_UNKNOWN, "", 12)
	st.Reason = mesos.REASON_RECONCILIATION.Enum()
	if changed, _ := applyStatus(&r, st, t0); !changed || r.State != stateUnknown || r.UnreachableAt != nil || !finished(r.State) {
		t.Fatalf("TASK_UNKNOWN: changed=%v, record %+v", changed, r)
	}
	if changed, _ := applyStatus(&r, status(mesos.TASK_RUNNING, "u-back-00000001", 20), t0); changed || r.State != stateUnknown {
		t.Fatalf("a finished record changed: %+v", r)
	}
}
