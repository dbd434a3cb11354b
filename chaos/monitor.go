package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/mesosbridge/masterstate"
	"github.com/converge-io/converge/store"
)

// frameworkName is what `converge serve` registers as by default.
const frameworkName = "converge"

// Grace periods: how long a condition may last before it is a violation.
// The controller needs a moment to react (a returning agent brings back a
// task its replacement already stands for; a scale-down kills after the
// spec changes), so only a sustained excess counts.
const (
	overGrace    = 15 * time.Second
	unknownGrace = 10 * time.Second
	specWindow   = 20 * time.Second
)

type replicasAt struct {
	at time.Time
	n  int32
}

// monitor checks the invariants continuously: it polls /master/state and
// follows every revision of converge's keys with an etcd watch from
// revision 1 (so it misses no intermediate value).
type monitor struct {
	s *suite

	mu sync.Mutex
	// expected spec per cluster: replicas history, last generation written.
	replicas   map[string][]replicasAt
	generation map[string]int64
	strategy   map[string]string
	// masters per cluster and epoch, from elections, endpoints and status.
	masters map[string]map[int64]map[string]bool
	// ledger history: task ids ever recorded, and terminal states recorded.
	inLedger       map[string]bool
	ledgerTerminal map[string]string
	// Mesos: when a task unknown to the ledger history was first seen.
	unknownSince map[string]time.Time
	overSince    map[string]time.Time
	maxActive    map[string]int
	polls        int
	watchEvents  int

	activeViol  []string
	orphanViol  []string
	connected   bool
	lastPollErr error
}

func newMonitor(s *suite) *monitor {
	return &monitor{
		s:              s,
		replicas:       map[string][]replicasAt{},
		generation:     map[string]int64{},
		strategy:       map[string]string{},
		masters:        map[string]map[int64]map[string]bool{},
		inLedger:       map[string]bool{},
		ledgerTerminal: map[string]string{},
		unknownSince:   map[string]time.Time{},
		overSince:      map[string]time.Time{},
		maxActive:      map[string]int{},
	}
}

// expect records the spec the suite wrote (Create or Update result).
func (m *monitor) expect(c *v1alpha1.Cluster) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int32(1)
	if c.Spec.Replicas != nil {
		n = *c.Spec.Replicas
	}
	m.replicas[c.Name] = append(m.replicas[c.Name], replicasAt{time.Now(), n})
	m.generation[c.Name] = c.Generation
	m.strategy[c.Name] = c.Spec.Election.Strategy
}

// allowedLocked is the most members a cluster may run now: the largest replicas
// in effect within specWindow (a scale-down takes a moment), plus surge 0
// (converge replaces members in place: a rolling update kills first).
func (m *monitor) allowedLocked(name string, now time.Time) int {
	h := m.replicas[name]
	if len(h) == 0 {
		return 0
	}
	best := h[len(h)-1].n
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].n > best {
			best = h[i].n
		}
		if now.Sub(h[i].at) > specWindow {
			break
		}
	}
	return int(best)
}

func (m *monitor) currentReplicas(name string) int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.replicas[name]
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].n
}

func (m *monitor) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.watch(ctx) }()
	go func() { defer wg.Done(); m.poll(ctx) }()
	go func() { wg.Wait(); close(done) }()
	return done
}

func (m *monitor) watch(ctx context.Context) {
	rev := int64(1)
	for ctx.Err() == nil {
		wch := m.s.st.Client().Watch(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithPrevKV())
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				m.observe(ev)
				rev = ev.Kv.ModRevision + 1
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (m *monitor) observe(ev *clientv3.Event) {
	if ev.Type != clientv3.EventTypePut {
		return
	}
	key := strings.TrimPrefix(string(ev.Kv.Key), prefix+"/")
	kind, rest, _ := strings.Cut(key, "/")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watchEvents++
	switch kind {
	case "elections":
		var e store.ElectionRecord
		if json.Unmarshal(ev.Kv.Value, &e) == nil && e.MasterTaskID != "" {
			m.addMasterLocked(rest, e.Epoch, e.MasterTaskID)
		}
	case "endpoints":
		var e store.Endpoints
		if json.Unmarshal(ev.Kv.Value, &e) == nil && e.Master != nil {
			m.addMasterLocked(rest, e.Epoch, e.Master.TaskID)
		}
	case "clusters":
		var c v1alpha1.Cluster
		if json.Unmarshal(ev.Kv.Value, &c) == nil && c.Status.Master != nil {
			m.addMasterLocked(rest, c.Status.Master.Epoch, c.Status.Master.TaskID)
		}
	case "tasks":
		var r store.TaskRecord
		if json.Unmarshal(ev.Kv.Value, &r) == nil && r.ID != "" {
			m.inLedger[r.ID] = true
			if controller.IsTerminalState(r.State) {
				m.ledgerTerminal[r.ID] = r.State
			}
		}
	}
}

func (m *monitor) addMasterLocked(cluster string, epoch int64, task string) {
	if m.masters[cluster] == nil {
		m.masters[cluster] = map[int64]map[string]bool{}
	}
	if m.masters[cluster][epoch] == nil {
		m.masters[cluster][epoch] = map[string]bool{}
	}
	m.masters[cluster][epoch][task] = true
}

func (m *monitor) poll(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fw, _, err := m.s.ourFramework(ctx)
		if err != nil {
			m.mu.Lock()
			m.lastPollErr = err
			m.mu.Unlock()
			continue
		}
		m.check(fw, time.Now())
	}
}

// check applies the continuous invariants to converge's framework in one
// /master/state snapshot (the zero Framework if Mesos does not know it).
func (m *monitor) check(fw masterstate.Framework, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls++
	m.connected = fw.Connected
	active := map[string]int{}
	for _, t := range fw.Tasks {
		if controller.IsTerminalState(t.State) {
			continue
		}
		ns, name, _, ok := controller.ParseTaskID(t.ID)
		if !ok || ns != v1alpha1.DefaultNamespace {
			continue
		}
		active[name]++
		if m.inLedger[t.ID] {
			delete(m.unknownSince, t.ID)
		} else if since, seen := m.unknownSince[t.ID]; !seen {
			m.unknownSince[t.ID] = now
		} else if now.Sub(since) > unknownGrace {
			m.orphanViol = append(m.orphanViol, fmt.Sprintf("%s: task %s (%s) ran on Mesos for %s without ever being in the ledger",
				now.Format("15:04:05"), t.ID, t.State, now.Sub(since).Round(time.Second)))
			m.unknownSince[t.ID] = now.Add(time.Hour) // once
		}
	}
	for name := range m.replicas {
		n := active[name]
		if n > m.maxActive[name] {
			m.maxActive[name] = n
		}
		allowed := m.allowedLocked(name, now)
		if n <= allowed {
			delete(m.overSince, name)
			continue
		}
		since, over := m.overSince[name]
		if !over {
			m.overSince[name] = now
			continue
		}
		if now.Sub(since) > overGrace {
			m.activeViol = append(m.activeViol, fmt.Sprintf("%s: %s ran %d active members for %s, %d allowed",
				now.Format("15:04:05"), name, n, now.Sub(since).Round(time.Second), allowed))
			m.overSince[name] = now // report again only if it lasts another grace
		}
	}
}

func (m *monitor) frameworkConnected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected
}

// verdicts are the invariants' results; the final checks read the store
// and Mesos once more.
func (m *monitor) verdicts(ctx context.Context, converged bool) []Invariant {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Invariant

	maxes := []string{}
	for name, n := range m.maxActive {
		maxes = append(maxes, fmt.Sprintf("%s max %d", name, n))
	}
	sort.Strings(maxes)
	out = append(out, Invariant{Name: "active members <= replicas + surge", Held: len(m.activeViol) == 0, Violations: m.activeViol,
		Detail: fmt.Sprintf("%d polls of /master/state; surge 0, %s grace; %s", m.polls, overGrace, strings.Join(maxes, ", "))})

	var split []string
	epochs := 0
	for cl, es := range m.masters {
		for ep, ms := range es {
			epochs++
			if len(ms) > 1 {
				var ids []string
				for id := range ms {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				split = append(split, fmt.Sprintf("%s epoch %d: masters %s", cl, ep, strings.Join(ids, ", ")))
			}
		}
	}
	sort.Strings(split)
	out = append(out, Invariant{Name: "at most one master per epoch", Held: len(split) == 0, Violations: split,
		Detail: fmt.Sprintf("%d epochs seen in %d watched revisions", epochs, m.watchEvents)})

	out = append(out, Invariant{Name: "no task outside the ledger", Held: len(m.orphanViol) == 0, Violations: m.orphanViol,
		Detail: fmt.Sprintf("%d task ids recorded in the ledger", len(m.inLedger))})

	// Specs: every cluster is still there with the spec last written.
	var lost []string
	names := make([]string, 0, len(m.generation))
	for n := range m.generation {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c, err := m.s.st.Get(ctx, v1alpha1.DefaultNamespace, name)
		h := m.replicas[name]
		switch {
		case err != nil:
			lost = append(lost, fmt.Sprintf("%s: %v", name, err))
		case c.Generation != m.generation[name]:
			lost = append(lost, fmt.Sprintf("%s: generation %d, last written %d", name, c.Generation, m.generation[name]))
		case c.Spec.Replicas == nil || *c.Spec.Replicas != h[len(h)-1].n:
			lost = append(lost, fmt.Sprintf("%s: replicas %v, last written %d", name, c.Spec.Replicas, h[len(h)-1].n))
		}
	}
	out = append(out, Invariant{Name: "no spec lost", Held: len(lost) == 0, Violations: lost,
		Detail: fmt.Sprintf("%d clusters", len(names))})

	// Acknowledged updates: Mesos forgets a task (completed_tasks) once its
	// terminal update is acknowledged, and converge acknowledges only what
	// is durable, so the ledger must have recorded that terminal state.
	// Running tasks: the ledger says RUNNING (checked at convergence).
	var lostAcks []string
	completedN := 0
	if fw, _, err := m.s.ourFramework(ctx); err == nil {
		for _, t := range fw.CompletedTasks {
			if _, _, _, ok := controller.ParseTaskID(t.ID); !ok {
				continue
			}
			completedN++
			if !m.inLedger[t.ID] {
				continue // an orphan, killed: reported above if it ran long
			}
			if _, ok := m.ledgerTerminal[t.ID]; !ok {
				lostAcks = append(lostAcks, fmt.Sprintf("task %s: Mesos has its acknowledged %s, the ledger never recorded a terminal state", t.ID, t.State))
			}
		}
	} else {
		lostAcks = append(lostAcks, fmt.Sprintf("final /master/state: %v", err))
	}
	out = append(out, Invariant{Name: "no acknowledged update lost", Held: len(lostAcks) == 0, Violations: lostAcks,
		Detail: fmt.Sprintf("%d acknowledged terminal updates checked, running tasks checked at convergence", completedN)})

	out = append(out, Invariant{Name: "every cluster converges", Held: converged})
	return out
}

// forgetLastExpect drops the last expect of name (an update that failed).
func (m *monitor) forgetLastExpect(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := m.replicas[name]; len(h) > 1 {
		m.replicas[name] = h[:len(h)-1]
	}
}
