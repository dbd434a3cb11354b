package localmesos

import (
	"bytes"
	"context"
	"net/url"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	execpb "github.com/mesos/mesos-go/api/v1/lib/executor"
	execcalls "github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// apiExecutor is a custom executor driven by the test itself through mesos-go's
// httpexec client, against the agent's real /api/v1/executor endpoint: the
// executor process localmesos starts only holds the place (it sleeps), the test
// subscribes, sends updates and re-subscribes in its name.
type apiExecutor struct {
	t          *testing.T
	sender     execcalls.Sender
	subscriber execcalls.Sender
	events     chan *execpb.Event
	resp       mesos.Response
}

// placeholderTask is a task whose custom executor is a sleeping process, for an
// apiExecutor to stand in for.
func placeholderTask(id, execID string, o mesos.Offer) mesos.TaskInfo {
	cmd := "exec sleep 600"
	return mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
		Executor: &mesos.ExecutorInfo{
			ExecutorID: mesos.ExecutorID{Value: execID},
			Command:    &mesos.CommandInfo{Value: &cmd},
		},
	}
}

func newAPIExecutor(t *testing.T, m *Mesos, agentID, fwID, execID string, codec encoding.Codec) *apiExecutor {
	t.Helper()
	m.mu.Lock()
	a := m.agentsByID[agentID]
	if a == nil {
		m.mu.Unlock()
		t.Fatalf("no agent %s", agentID)
	}
	endpoint := m.agentEndpoint(a)
	m.mu.Unlock()
	u := url.URL{Scheme: "http", Host: endpoint, Path: "/api/v1/executor"}
	opts := []execpb.CallOpt{execcalls.Framework(fwID), execcalls.Executor(execID)}
	calls := httpcli.New(httpcli.Endpoint(u.String()), httpcli.Codec(codec), httpcli.Do(httpcli.With(httpcli.Timeout(5*time.Second))))
	stream := httpcli.New(httpcli.Endpoint(u.String()), httpcli.Codec(codec))
	x := &apiExecutor{
		t:          t,
		sender:     execcalls.SenderWith(httpexec.NewSender(calls.Send), opts...),
		subscriber: execcalls.SenderWith(httpexec.NewSender(stream.Send, httpcli.Close(true)), opts...),
	}
	t.Cleanup(x.close)
	return x
}

// subscribe (re-)subscribes, with the given unacknowledged updates, and waits for
// SUBSCRIBED. Events of an earlier subscription are discarded.
func (x *apiExecutor) subscribe(unacked ...mesos.TaskStatus) {
	x.t.Helper()
	x.close()
	var ups []execpb.Call_Update
	for _, st := range unacked {
		ups = append(ups, execpb.Call_Update{Status: st})
	}
	resp, err := x.subscriber.Send(context.Background(), execcalls.NonStreaming(execcalls.Subscribe(nil, ups)))
	if err != nil {
		x.t.Fatalf("executor subscribe: %v", err)
	}
	x.resp = resp
	events := make(chan *execpb.Event, 1000)
	x.events = events
	go func() {
		defer close(events)
		for {
			var e execpb.Event
			if err := resp.Decode(&e); err != nil {
				return
			}
			events <- &e
		}
	}()
	x.next(execpb.Event_SUBSCRIBED, 5*time.Second)
}

func (x *apiExecutor) close() {
	if x.resp != nil {
		x.resp.Close()
		x.resp = nil
	}
}

// wait returns the first event matching f within d (nil if none).
func (x *apiExecutor) wait(d time.Duration, f func(*execpb.Event) bool) *execpb.Event {
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-x.events:
			if !ok {
				return nil
			}
			if f(e) {
				return e
			}
		case <-deadline:
			return nil
		}
	}
}

func (x *apiExecutor) next(typ execpb.Event_Type, d time.Duration) *execpb.Event {
	x.t.Helper()
	ev := x.wait(d, func(e *execpb.Event) bool { return e.Type == typ })
	if ev == nil {
		x.t.Fatalf("executor: no %s event within %v", typ, d)
	}
	return ev
}

// acknowledged waits for the ACKNOWLEDGED of uuid (nil if none within d).
func (x *apiExecutor) acknowledged(uuid []byte, d time.Duration) *execpb.Event {
	return x.wait(d, func(e *execpb.Event) bool {
		return e.Type == execpb.Event_ACKNOWLEDGED && bytes.Equal(e.Acknowledged.UUID, uuid)
	})
}

func (x *apiExecutor) update(st mesos.TaskStatus) {
	x.t.Helper()
	resp, err := x.sender.Send(context.Background(), execcalls.NonStreaming(execcalls.Update(st)))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		x.t.Fatalf("executor update %s: %v", st.GetState(), err)
	}
}

func executorStatus(taskID string, state mesos.TaskState) mesos.TaskStatus {
	return mesos.TaskStatus{TaskID: mesos.TaskID{Value: taskID}, State: state.Enum(), Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: newUUID()}
}

// countUpdates counts the UPDATE events carrying uuid that arrive within d.
func (s *sched) countUpdates(uuid []byte, d time.Duration) int {
	n := 0
	s.wait(d, func(e *scheduler.Event) bool {
		if e.Type == scheduler.Event_UPDATE && bytes.Equal(e.Update.Status.UUID, uuid) {
			n++
		}
		return false
	})
	return n
}

// The agent acknowledges an executor's update as soon as it has stored it
// (Slave::___statusUpdate), not when the scheduler acknowledges; it then resends
// the update to the scheduler on its own until the scheduler acknowledges it.
func TestExecutorAcknowledgedWhenAgentStoresUpdate(t *testing.T) {
	m := startMesos(t, realOptions(t)) // resends every 200ms, doubling
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	s.mustCall(launch(off, placeholderTask("acked", "ackex", off)))
	x := newAPIExecutor(t, m, off.AgentID.Value, s.fwID, "ackex", jsonCodec)
	x.subscribe()
	if ev := x.next(execpb.Event_LAUNCH, 5*time.Second); ev.Launch.Task.TaskID.Value != "acked" {
		t.Fatalf("launch %v", ev.Launch.Task.TaskID)
	}

	running := executorStatus("acked", mesos.TASK_RUNNING)
	x.update(running)
	// ACKNOWLEDGED at once, though the scheduler has acknowledged nothing.
	if ev := x.acknowledged(running.UUID, 2*time.Second); ev == nil || ev.Acknowledged.TaskID.Value != "acked" {
		t.Fatal("no ACKNOWLEDGED for an update the agent stored (the scheduler has not acknowledged it)")
	}
	// The agent keeps resending it to the scheduler...
	st := s.update("acked", 2*time.Second, mesos.TASK_RUNNING)
	if !bytes.Equal(st.UUID, running.UUID) || st.GetSource() != mesos.SOURCE_EXECUTOR {
		t.Fatalf("update %v", st)
	}
	if n := s.countUpdates(running.UUID, 700*time.Millisecond); n < 1 {
		t.Fatal("the agent did not resend an update the scheduler had not acknowledged")
	}
	// ...until the scheduler acknowledges it; the executor hears nothing more.
	s.ack(st)
	if ev := x.acknowledged(running.UUID, time.Second); ev != nil {
		t.Fatal("a second ACKNOWLEDGED after the scheduler's acknowledgement")
	}
	s.countUpdates(running.UUID, 200*time.Millisecond) // resends already under way
	if n := s.countUpdates(running.UUID, 2*time.Second); n != 0 {
		t.Fatalf("%d resends after the scheduler acknowledged", n)
	}

	// The next update is acknowledged to the executor at once too, and forwarded.
	finished := executorStatus("acked", mesos.TASK_FINISHED)
	x.update(finished)
	if x.acknowledged(finished.UUID, 2*time.Second) == nil {
		t.Fatal("no ACKNOWLEDGED for TASK_FINISHED")
	}
	st = s.update("acked", 2*time.Second, mesos.TASK_FINISHED)
	s.ack(st)
	waitFor(t, 2*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.frameworks[s.fwID].tasks["acked"] == nil
	})
}

// An update the agent already received (the executor re-sends it, in an UPDATE or
// in the unacknowledged updates of a re-subscription) is acknowledged to the
// executor again but never delivered to the scheduler again: not while it is
// pending, not after the scheduler acknowledged it, not after the task was
// forgotten.
func TestDuplicateExecutorUpdatesDeliveredOnce(t *testing.T) {
	o := realOptions(t)
	o.ResendInterval = time.Hour // every delivery below is a first delivery or a bug
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	off := s.offers(1, 2*time.Second)[0]
	s.mustCall(launch(off, placeholderTask("dup", "dupex", off)))
	x := newAPIExecutor(t, m, off.AgentID.Value, s.fwID, "dupex", pbCodec)
	x.subscribe()
	x.next(execpb.Event_LAUNCH, 5*time.Second)

	// Forwarded, acknowledged by the scheduler, then re-sent by the executor.
	running := executorStatus("dup", mesos.TASK_RUNNING)
	x.update(running)
	if x.acknowledged(running.UUID, 2*time.Second) == nil {
		t.Fatal("no ACKNOWLEDGED for TASK_RUNNING")
	}
	s.ack(s.update("dup", 2*time.Second, mesos.TASK_RUNNING))
	x.subscribe(running)
	if x.acknowledged(running.UUID, 2*time.Second) == nil {
		t.Fatal("an update re-sent on re-subscription was not acknowledged again")
	}
	x.update(running)
	if x.acknowledged(running.UUID, 2*time.Second) == nil {
		t.Fatal("a re-sent UPDATE was not acknowledged again")
	}
	if n := s.countUpdates(running.UUID, time.Second); n != 0 {
		t.Fatalf("an acknowledged update re-sent by the executor reached the scheduler %d more times", n)
	}

	// Re-sent while still unacknowledged by the scheduler.
	finished := executorStatus("dup", mesos.TASK_FINISHED)
	x.update(finished)
	x.acknowledged(finished.UUID, 2*time.Second)
	st := s.update("dup", 2*time.Second, mesos.TASK_FINISHED)
	x.subscribe(finished)
	if x.acknowledged(finished.UUID, 2*time.Second) == nil {
		t.Fatal("a pending update re-sent on re-subscription was not acknowledged again")
	}
	if n := s.countUpdates(finished.UUID, time.Second); n != 0 {
		t.Fatalf("a pending update re-sent by the executor reached the scheduler %d more times", n)
	}

	// Re-sent after the task was forgotten (its terminal update acknowledged).
	s.ack(st)
	waitFor(t, 2*time.Second, func() bool {
		ts := m.State().Frameworks[0].CompletedTasks
		return len(ts) == 1 && ts[0].ID == "dup"
	})
	x.subscribe(finished)
	if x.acknowledged(finished.UUID, 2*time.Second) == nil {
		t.Fatal("an update of a forgotten task re-sent on re-subscription was not acknowledged")
	}
	x.update(finished) // 202, as the agent answers
	if x.acknowledged(finished.UUID, 2*time.Second) == nil {
		t.Fatal("an UPDATE of a forgotten task was not acknowledged")
	}
	if n := s.countUpdates(finished.UUID, time.Second); n != 0 {
		t.Fatalf("an update of a forgotten task reached the scheduler %d more times", n)
	}
	if st := m.State().Frameworks[0]; len(st.Tasks) != 0 || len(st.CompletedTasks) != 1 || st.CompletedTasks[0].State != "TASK_FINISHED" {
		t.Fatalf("state %+v", st)
	}
}
