package chaos

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/mesosbridge/masterstate"
	"github.com/converge-io/converge/store"
)

// fault is one kind of injection; weight is its share of the schedule.
type fault struct {
	name   string
	weight int
	do     func(ctx context.Context, s *suite, bg *sync.WaitGroup) error
}

var faultKinds = []fault{
	{"controller-kill-leader", 3, killLeader},
	{"controller-kill-standby", 1, killStandby},
	{"controller-pause-leader", 2, pauseLeader},
	{"task-fail", 3, failTask},
	{"agent-lose", 2, loseAgent},
	{"master-failover", 2, masterFailover},
	{"updates-drop-duplicate", 1, updateFaults},
	{"etcd-member-kill", 2, killEtcdMember},
	{"scale", 2, scale},
}

// faults injects faults until d has passed; faults with a duration (an agent
// lost, an etcd member down, update faults) end by themselves.
func (s *suite) faults(ctx context.Context, d time.Duration) {
	end := time.Now().Add(d)
	var bg sync.WaitGroup
	total := 0
	for _, f := range faultKinds {
		total += f.weight
	}
	// Every kind once first (in a random order), so that even a short run
	// injects each; then by weight.
	first := s.rng.Perm(len(faultKinds))
	tries := 0
	for time.Now().Before(end) && ctx.Err() == nil {
		var f fault
		if len(first) > 0 {
			f = faultKinds[first[0]]
		} else {
			pick := s.rng.Intn(total)
			for _, k := range faultKinds {
				if pick < k.weight {
					f = k
					break
				}
				pick -= k.weight
			}
		}
		err := f.do(ctx, s, &bg)
		if err != nil {
			s.logf("fault %s skipped: %v", f.name, err)
		} else {
			s.count(f.name)
		}
		if len(first) > 0 {
			if tries++; err == nil || tries == 20 {
				first, tries = first[1:], 0
			}
		}
		pause := s.cfg.FaultEvery/2 + time.Duration(s.rng.Int63n(int64(s.cfg.FaultEvery)))
		if err != nil {
			pause = 500 * time.Millisecond // skipped (e.g. a controller is down): try again soon
		}
		if rest := time.Until(end); pause > rest {
			pause = rest
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	bg.Wait()
}

func (s *suite) isDown(what string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down[what]
}

func (s *suite) setDown(what string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if down {
		s.down[what] = true
	} else {
		delete(s.down, what)
	}
}

func (s *suite) anyDown(kind string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.down {
		if strings.HasPrefix(k, kind+"/") {
			return true
		}
	}
	return false
}

// later runs f after d in the background (tracked by bg).
func later(ctx context.Context, bg *sync.WaitGroup, d time.Duration, f func()) {
	bg.Add(1)
	go func() {
		defer bg.Done()
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		f()
	}()
}

func killLeader(ctx context.Context, s *suite, bg *sync.WaitGroup) error {
	if s.anyDown("ctrl") {
		return fmt.Errorf("a controller is already down")
	}
	id := s.leaderIdentity(ctx)
	p := s.ctrl(id)
	if p == nil {
		return fmt.Errorf("no leader to kill (leader %q)", id)
	}
	if !s.mon.frameworkConnected() {
		return fmt.Errorf("leader %s is not subscribed yet", id)
	}
	s.setDown("ctrl/"+id, true)
	t0 := time.Now()
	p.kill()
	s.logf("SIGKILL leading controller %s", id)
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.measureTakeover(ctx, id, t0)
	}()
	later(ctx, bg, 3*time.Second+time.Duration(s.rng.Int63n(int64(3*time.Second))), func() {
		if err := p.start(); err != nil {
			s.logf("restart %s: %v", id, err)
		}
		s.setDown("ctrl/"+id, false)
		s.logf("restarted controller %s (now a standby)", id)
	})
	return nil
}

// measureTakeover times, from t0 (the SIGKILL of leader old), the election
// of a standby and its first action: the framework subscribed to Mesos again.
func (s *suite) measureTakeover(ctx context.Context, old string, t0 time.Time) {
	deadline := t0.Add(60 * time.Second)
	var elected time.Duration
	for time.Now().Before(deadline) && ctx.Err() == nil {
		id := s.leaderIdentity(ctx)
		if elected == 0 && id != "" && id != old {
			elected = time.Since(t0)
		}
		if elected > 0 {
			if fw, _, err := s.ourFramework(ctx); err == nil {
				if fw.Connected {
					took := time.Since(t0)
					s.mu.Lock()
					s.report.ElectionSeconds = append(s.report.ElectionSeconds, elected.Seconds())
					s.report.TakeoverSeconds = append(s.report.TakeoverSeconds, took.Seconds())
					if took.Seconds() > s.report.TakeoverMaxSeconds {
						s.report.TakeoverMaxSeconds = took.Seconds()
					}
					s.mu.Unlock()
					s.logf("takeover after killing %s: %s elected in %.2fs, subscribed to Mesos in %.2fs", old, id, elected.Seconds(), took.Seconds())
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.logf("takeover after killing %s: not within 60s", old)
	s.mu.Lock()
	s.report.TakeoverSeconds = append(s.report.TakeoverSeconds, 60)
	s.report.TakeoverMaxSeconds = 60
	s.mu.Unlock()
}

// pauseLeader freezes the leading controller (SIGSTOP) for longer than its
// lease, so a standby takes over, then lets it run again (SIGCONT): the
// deposed leader wakes up with a plan it may no longer carry out. Its etcd
// writes must be refused by the fence and it must stand down; the
// invariants (one master per epoch, no task outside the ledger) say whether
// it did.
func pauseLeader(ctx context.Context, s *suite, bg *sync.WaitGroup) error {
	if s.anyDown("ctrl") {
		return fmt.Errorf("a controller is already down")
	}
	id := s.leaderIdentity(ctx)
	p := s.ctrl(id)
	if p == nil || !s.mon.frameworkConnected() {
		return fmt.Errorf("no subscribed leader to pause (leader %q)", id)
	}
	s.setDown("ctrl/"+id, true)
	if !p.pause() {
		s.setDown("ctrl/"+id, false)
		return fmt.Errorf("SIGSTOP %s failed", id)
	}
	t0 := time.Now()
	d := 7*time.Second + time.Duration(s.rng.Int63n(int64(3*time.Second)))
	s.logf("SIGSTOP leading controller %s for %s", id, d.Round(time.Second))
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.measureTakeover(ctx, id, t0)
	}()
	later(ctx, bg, d, func() {
		p.resume()
		s.setDown("ctrl/"+id, false)
		s.logf("SIGCONT controller %s (deposed while frozen)", id)
	})
	return nil
}

func killStandby(ctx context.Context, s *suite, bg *sync.WaitGroup) error {
	if s.anyDown("ctrl") {
		return fmt.Errorf("a controller is already down")
	}
	lead := s.leaderIdentity(ctx)
	var standbys []*proc
	for _, p := range s.ctrls {
		if p.name != "serve-"+lead && p.running() {
			standbys = append(standbys, p)
		}
	}
	if len(standbys) == 0 {
		return fmt.Errorf("no standby")
	}
	p := standbys[s.rng.Intn(len(standbys))]
	id := strings.TrimPrefix(p.name, "serve-")
	s.setDown("ctrl/"+id, true)
	p.kill()
	s.logf("SIGKILL standby controller %s", id)
	later(ctx, bg, 2*time.Second, func() {
		_ = p.start()
		s.setDown("ctrl/"+id, false)
	})
	return nil
}

func (s *suite) liveTasks(ctx context.Context) ([]masterstate.Task, error) {
	fw, _, err := s.ourFramework(ctx)
	if err != nil {
		return nil, err
	}
	var out []masterstate.Task
	for _, t := range fw.Tasks {
		if t.State == "TASK_RUNNING" {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func failTask(ctx context.Context, s *suite, _ *sync.WaitGroup) error {
	tasks, err := s.liveTasks(ctx)
	if err != nil {
		return err
	}
	if len(tasks) == 0 {
		return fmt.Errorf("no running task")
	}
	t := tasks[s.rng.Intn(len(tasks))]
	if err := s.postFault(ctx, "/fault/task/fail?task="+url.QueryEscape(t.ID)); err != nil {
		return err
	}
	s.logf("failed task %s", t.ID)
	return nil
}

func agentHost(i int) string { return fmt.Sprintf("127.0.0.%d", i+1) }

func loseAgent(ctx context.Context, s *suite, bg *sync.WaitGroup) error {
	if s.anyDown("agent") {
		return fmt.Errorf("an agent is already lost")
	}
	host := agentHost(s.rng.Intn(s.cfg.Agents))
	if err := s.postFault(ctx, "/fault/agent/lose?agent="+host); err != nil {
		return err
	}
	s.setDown("agent/"+host, true)
	d := 3*time.Second + time.Duration(s.rng.Int63n(int64(7*time.Second)))
	s.logf("lost agent %s for %s", host, d.Round(time.Second))
	later(ctx, bg, d, func() {
		if err := s.postFault(context.Background(), "/fault/agent/restore?agent="+host); err != nil {
			s.logf("restore agent %s: %v", host, err)
			return
		}
		s.setDown("agent/"+host, false)
		s.count("agent-restore")
		s.logf("restored agent %s", host)
	})
	return nil
}

func masterFailover(ctx context.Context, s *suite, _ *sync.WaitGroup) error {
	if err := s.postFault(ctx, "/fault/master/failover"); err != nil {
		return err
	}
	s.logf("Mesos master failover")
	return nil
}

func updateFaults(ctx context.Context, s *suite, bg *sync.WaitGroup) error {
	if s.isDown("updates/faulty") {
		return fmt.Errorf("update faults already on")
	}
	if err := s.postFault(ctx, "/fault/updates?drop=0.2&duplicate=0.2"); err != nil {
		return err
	}
	s.setDown("updates/faulty", true)
	s.logf("status updates: 20%% dropped, 20%% duplicated for 10s")
	later(ctx, bg, 10*time.Second, func() {
		if err := s.postFault(context.Background(), "/fault/updates?drop=0&duplicate=0"); err != nil {
			s.logf("update faults off: %v", err)
			return
		}
		s.setDown("updates/faulty", false)
		s.logf("status updates: faults off")
	})
	return nil
}

func killEtcdMember(ctx context.Context, s *suite, bg *sync.WaitGroup) error {
	if s.anyDown("etcd") {
		return fmt.Errorf("an etcd member is already down")
	}
	i := s.rng.Intn(len(s.etcd))
	p := s.etcd[i]
	s.setDown("etcd/"+p.name, true)
	p.kill()
	d := 4*time.Second + time.Duration(s.rng.Int63n(int64(4*time.Second)))
	s.logf("SIGKILL etcd member %s for %s", p.name, d.Round(time.Second))
	later(ctx, bg, d, func() {
		if err := p.start(); err != nil {
			s.logf("restart %s: %v", p.name, err)
			return
		}
		s.setDown("etcd/"+p.name, false)
		s.count("etcd-member-restart")
		s.logf("restarted etcd member %s", p.name)
	})
	return nil
}

func scale(ctx context.Context, s *suite, _ *sync.WaitGroup) error {
	name := clusterName(s.rng.Intn(s.cfg.Clusters))
	to := s.cfg.Replicas - 1 + int32(s.rng.Intn(3)) // replicas-1 .. replicas+1
	if to < 1 {
		to = 1
	}
	for i := 0; i < 10; i++ {
		c, err := s.st.Get(ctx, v1alpha1.DefaultNamespace, name)
		if err != nil {
			return err
		}
		if c.Spec.Replicas != nil && *c.Spec.Replicas == to {
			return fmt.Errorf("%s already has %d replicas", name, to)
		}
		c.Spec.Replicas = &to
		// Record the new size before it can take effect.
		s.mon.expect(c)
		upd, err := s.st.Update(ctx, c)
		if err == nil {
			s.mon.expect(upd)
			s.logf("scaled %s to %d", name, to)
			return nil
		}
		if !isConflict(err) {
			s.mon.forgetLastExpect(name)
			return err
		}
		s.mon.forgetLastExpect(name)
	}
	return fmt.Errorf("scale %s: conflicts", name)
}

// storm is the last blow before the faults stop, so that the convergence
// time measures a recovery: the leading controller SIGKILLed, a member of
// every cluster failed and the Mesos master failed over, all at once.
func (s *suite) storm(ctx context.Context) {
	if id := s.leaderIdentity(ctx); id != "" {
		if p := s.ctrl(id); p != nil {
			p.kill()
			s.count("controller-kill-leader")
			s.logf("storm: SIGKILL leading controller %s", id)
		}
	}
	tasks, err := s.liveTasks(ctx)
	if err == nil {
		done := map[string]bool{}
		for _, t := range tasks {
			_, name, _, ok := controller.ParseTaskID(t.ID)
			if !ok || done[name] {
				continue
			}
			if s.postFault(ctx, "/fault/task/fail?task="+url.QueryEscape(t.ID)) == nil {
				done[name] = true
				s.count("task-fail")
				s.logf("storm: failed task %s", t.ID)
			}
		}
	}
	if s.postFault(ctx, "/fault/master/failover") == nil {
		s.count("master-failover")
		s.logf("storm: Mesos master failover")
	}
}

// heal ends every fault: agents restored, update faults off, every process
// running.
func (s *suite) heal(ctx context.Context) {
	_ = s.postFault(ctx, "/fault/updates?drop=0&duplicate=0")
	for i := 0; i < s.cfg.Agents; i++ {
		_ = s.postFault(ctx, "/fault/agent/restore?agent="+agentHost(i))
	}
	for _, p := range append(append([]*proc{}, s.etcd...), s.ctrls...) {
		p.resume()
		if !p.running() {
			_ = p.start()
		}
	}
	s.mu.Lock()
	s.down = map[string]bool{}
	s.mu.Unlock()
}

// waitConverged waits until every cluster is Ready for its generation and
// Mesos runs exactly its members: one RUNNING task per ordinal, each known
// to the ledger as RUNNING, none unknown, none unreachable, and the master
// (where the strategy elects one) one of them.
func (s *suite) waitConverged(ctx context.Context, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	last := ""
	lastLog := time.Now()
	for time.Since(start) < timeout && ctx.Err() == nil {
		problem := s.convergedProblem(ctx)
		if problem == "" {
			return time.Since(start), true
		}
		if problem != last && time.Since(lastLog) > 5*time.Second {
			s.logf("not converged yet: %s", problem)
			last, lastLog = problem, time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.logf("not converged: %s", s.convergedProblem(ctx))
	return time.Since(start), false
}

func (s *suite) convergedProblem(ctx context.Context) string {
	fw, found, err := s.ourFramework(ctx)
	if err != nil {
		return fmt.Sprintf("/master/state: %v", err)
	}
	if !found || !fw.Connected {
		return "framework not subscribed"
	}
	for _, t := range fw.UnreachableTasks {
		if _, _, _, ok := controller.ParseTaskID(t.ID); ok {
			return fmt.Sprintf("task %s unreachable", t.ID)
		}
	}
	byCluster := map[string]map[int32][]masterstate.Task{}
	for _, t := range fw.Tasks {
		if controller.IsTerminalState(t.State) {
			continue
		}
		_, name, ord, ok := controller.ParseTaskID(t.ID)
		if !ok {
			continue
		}
		if byCluster[name] == nil {
			byCluster[name] = map[int32][]masterstate.Task{}
		}
		byCluster[name][ord] = append(byCluster[name][ord], t)
	}
	for i := 0; i < s.cfg.Clusters; i++ {
		name := clusterName(i)
		c, err := s.st.Get(ctx, v1alpha1.DefaultNamespace, name)
		if err != nil {
			return fmt.Sprintf("get %s: %v", name, err)
		}
		if !v1alpha1.IsReady(c) {
			return fmt.Sprintf("%s not Ready", name)
		}
		want := s.mon.currentReplicas(name)
		ords := byCluster[name]
		if int32(len(ords)) != want {
			return fmt.Sprintf("%s: %d ordinals active on Mesos, want %d", name, len(ords), want)
		}
		ledger, err := s.st.ListTasks(ctx, v1alpha1.DefaultNamespace, name)
		if err != nil {
			return err.Error()
		}
		rec := map[string]string{}
		for _, r := range ledger {
			rec[r.ID] = r.State
		}
		for ord, ts := range ords {
			if ord >= want || len(ts) != 1 {
				return fmt.Sprintf("%s: ordinal %d has %d tasks", name, ord, len(ts))
			}
			t := ts[0]
			if t.State != "TASK_RUNNING" {
				return fmt.Sprintf("%s: task %s is %s", name, t.ID, t.State)
			}
			if rec[t.ID] != "TASK_RUNNING" {
				return fmt.Sprintf("%s: task %s runs but the ledger has %q", name, t.ID, rec[t.ID])
			}
		}
		if c.Spec.Election.Strategy != v1alpha1.ElectionNone {
			if c.Status.Master == nil {
				return fmt.Sprintf("%s: no master", name)
			}
			_, _, ord, _ := controller.ParseTaskID(c.Status.Master.TaskID)
			if ts := ords[ord]; len(ts) != 1 || ts[0].ID != c.Status.Master.TaskID {
				return fmt.Sprintf("%s: master %s is not running", name, c.Status.Master.TaskID)
			}
		}
		delete(byCluster, name)
	}
	for name := range byCluster {
		return fmt.Sprintf("tasks of unknown cluster %s run", name)
	}
	return ""
}

func isConflict(err error) bool { return store.IsConflict(err) }
