package mesosbridge

import (
	"context"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// Every call the bridge sends, with the shapes the controller uses, passes a
// master that validates as Mesos's does (localmesos ports the expectations of
// Mesos's own tests: required fields, call validation, task and task group
// validation): no call is refused (a 4xx is an error here) and no task gets
// TASK_ERROR, TASK_DROPPED or TASK_LOST.
func TestBridgeCallsPassMesosValidation(t *testing.T) {
	t.Parallel()
	m := startMesos(t, localmesos.Options{Agents: 3})
	r := startClient(t, testConfig([]string{m.URL()}, &memStore{}))
	ctx := context.Background()
	_, i := r.waitEvent(0, 10*time.Second, "SUBSCRIBED", isType(EventSubscribed))
	offers := map[string]mesos.Offer{}
	for len(offers) < 3 {
		ev, k := r.waitEvent(i, 10*time.Second, "offers", isType(EventOffers))
		for _, o := range ev.Offers {
			offers[o.AgentID.Value] = o
		}
		i = k + 1
	}
	var os []mesos.Offer
	for _, o := range offers {
		os = append(os, o)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// A task under a custom executor, as controller.buildTask makes it (no
	// executor framework id when the bridge has none yet: LAUNCH fills it in).
	grace := int64(2 * time.Second)
	env := &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "CONVERGE_CLUSTER", Value: proto("db")}, {Name: "EMPTY", Value: proto("")}}}
	executorTask := mesos.TaskInfo{
		Name: "default/db-0", TaskID: mesos.TaskID{Value: "exec-task"}, AgentID: os[0].AgentID,
		Resources:  []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
		Labels:     &mesos.Labels{Labels: []mesos.Label{{Key: "converge.io/cluster", Value: proto("db")}}},
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace}},
		Executor: &mesos.ExecutorInfo{
			Type: mesos.ExecutorInfo_CUSTOM, ExecutorID: mesos.ExecutorID{Value: "exec-task"}, Name: proto("converge executor for default/db-0"),
			Command:             &mesos.CommandInfo{Shell: proto2(true), Value: proto("./converge executor"), Environment: env},
			ShutdownGracePeriod: &mesos.DurationInfo{Nanoseconds: grace + int64(time.Second)},
		},
	}
	commandTask := mesos.TaskInfo{
		Name: "default/web-0", TaskID: mesos.TaskID{Value: "cmd-task"}, AgentID: os[0].AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
		Command:   &mesos.CommandInfo{Shell: proto2(true), Value: proto("sleep 100"), Environment: env},
	}
	must("launch", r.c.Launch(ctx, []mesos.OfferID{os[0].ID}, []mesos.TaskInfo{executorTask, commandTask}, 1))
	// A task group: the bridge fills in the executor's framework id.
	group := mesos.ExecutorInfo{Type: mesos.ExecutorInfo_DEFAULT, ExecutorID: mesos.ExecutorID{Value: "grp"},
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32), scalar("disk", 16)}}
	groupTask := mesos.TaskInfo{Name: "g", TaskID: mesos.TaskID{Value: "group-task"}, AgentID: os[1].AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}}
	must("launch group", r.c.LaunchGroup(ctx, []mesos.OfferID{os[1].ID}, group, []mesos.TaskInfo{groupTask}, 1))
	must("decline", r.c.Decline(ctx, []mesos.OfferID{os[2].ID}, 5))

	running := map[string]bool{}
	for len(running) < 3 {
		ev, k := r.waitEvent(i, 10*time.Second, "updates", isType(EventUpdate))
		i = k + 1
		st := ev.Status
		switch st.GetState() {
		case mesos.TASK_ERROR, mesos.TASK_DROPPED, mesos.TASK_LOST:
			t.Fatalf("%s: %s %s %q", st.TaskID.Value, st.GetState(), st.GetReason(), st.GetMessage())
		case mesos.TASK_RUNNING:
			running[st.TaskID.Value] = true
		}
		must("acknowledge", r.c.Acknowledge(ctx, *st))
	}
	must("message", r.c.SendMessage(ctx, os[0].AgentID.Value, "exec-task", []byte("hello")))
	must("reconcile", r.c.Reconcile(ctx, []ReconcileTask{{TaskID: "exec-task", AgentID: os[0].AgentID.Value}, {TaskID: "gone"}}))
	must("implicit reconcile", r.c.Reconcile(ctx, nil))
	must("kill", r.c.Kill(ctx, "cmd-task", os[0].AgentID.Value))
	must("suppress", r.c.Suppress(ctx))
	must("revive", r.c.Revive(ctx))
	if _, k := r.waitEvent(i, 10*time.Second, "cmd-task KILLED", isUpdate("cmd-task", mesos.TASK_KILLED)); k < i {
		t.Fatal("no TASK_KILLED")
	}
}

func proto2(b bool) *bool { return &b }
