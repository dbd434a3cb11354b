package localmesos

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// runSimulated launches n simulated tasks, perAgent per offer, through mesos-go's
// client over real HTTP, acknowledging every update, until all are RUNNING.
func runSimulated(t testing.TB, agents, n, perAgent int) time.Duration {
	o := testOptions()
	o.Agents = agents
	o.AllocationInterval = 100 * time.Millisecond
	o.ResendInterval = 10 * time.Second
	o.HeartbeatInterval = 15 * time.Second
	m := startMesos(t, o)
	start := time.Now()
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("bench", mesos.FrameworkInfo_Capability_PARTITION_AWARE))

	acks := make(chan *mesos.TaskStatus, 4096)
	var wg sync.WaitGroup
	var ackErrs atomic.Int64
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for st := range acks {
				if err := s.call(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID)); err != nil {
					ackErrs.Add(1)
				}
			}
		}()
	}
	defer func() { close(acks); wg.Wait() }()

	launched, runningN := 0, 0
	seen := map[string]bool{}
	deadline := time.After(120 * time.Second)
	for runningN < n {
		var ev *scheduler.Event
		select {
		case ev = <-s.events:
		case <-s.ended:
			t.Fatal("stream ended")
		case <-deadline:
			t.Fatalf("%d of %d tasks running (%d launched)", runningN, n, launched)
		}
		switch ev.Type {
		case scheduler.Event_OFFERS:
			var accepts []*scheduler.Call
			var declines []mesos.OfferID
			for _, off := range ev.Offers.Offers {
				if launched >= n {
					declines = append(declines, off.ID)
					continue
				}
				var tasks []mesos.TaskInfo
				for k := 0; k < perAgent && launched < n; k++ {
					id := fmt.Sprintf("task-%05d", launched)
					tasks = append(tasks, cmdTask(id, off, "sleep 1000", scalar("cpus", 0.01), scalar("mem", 1)))
					launched++
				}
				accepts = append(accepts, launch(off, tasks...))
			}
			for _, c := range accepts {
				s.mustCall(c)
			}
			if len(declines) > 0 {
				s.mustCall(calls.Decline(declines...).With(calls.RefuseSeconds(time.Hour)))
			}
		case scheduler.Event_UPDATE:
			st := ev.Update.Status
			if st.GetState() == mesos.TASK_RUNNING && !seen[st.TaskID.Value] {
				seen[st.TaskID.Value] = true
				runningN++
			}
			if len(st.UUID) > 0 {
				acks <- &st
			}
		}
	}
	d := time.Since(start)
	if ackErrs.Load() > 0 {
		t.Fatalf("%d acknowledgements failed", ackErrs.Load())
	}
	st := m.State()
	if got := len(st.Frameworks[0].Tasks); got != n {
		t.Fatalf("state shows %d tasks, want %d", got, n)
	}
	return d
}

func TestSimulatedScaleSmall(t *testing.T) {
	runSimulated(t, 100, 1000, 10)
}

// BenchmarkLaunch10000SimulatedTasks: 1,000 agents, 10,000 simulated tasks, every
// update acknowledged through mesos-go's client over HTTP.
func BenchmarkLaunch10000SimulatedTasks(b *testing.B) {
	for i := 0; i < b.N; i++ {
		d := runSimulated(b, 1000, 10000, 10)
		b.ReportMetric(float64(10000)/d.Seconds(), "tasks/s")
	}
}

// BenchmarkAllocate measures one offer round over 1,000 agents with 10,000 tasks
// booked (used-resource accounting is incremental, so tasks do not add cost).
func BenchmarkAllocate(b *testing.B) {
	o := testOptions()
	o.Agents = 1000
	m, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	m.opts.setDefaults()
	fw := &framework{id: "bench", roles: []string{"*"}, tasks: map[string]*task{}, suppressed: map[string]bool{}, filters: map[string]filter{}, offers: map[string]*offer{}, connected: true}
	fw.stream = newStream("s", pbCodec)
	m.frameworks[fw.id] = fw
	m.fwOrder = append(m.fwOrder, fw)
	for i := 0; i < 10000; i++ {
		a := m.agents[i%len(m.agents)]
		t := &task{id: fmt.Sprint(i), fw: fw, agent: a, res: res{cpus: 0.01, mem: 1}}
		fw.tasks[t.id] = t
		a.tasks[t] = struct{}{}
		a.used.add(t.res)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.allocate(time.Now())
		if len(fw.offers) != 1000 {
			b.Fatalf("%d offers", len(fw.offers))
		}
		m.discardOffers(fw, false)
		fw.stream.mu.Lock()
		fw.stream.queue = nil
		fw.stream.mu.Unlock()
	}
}
