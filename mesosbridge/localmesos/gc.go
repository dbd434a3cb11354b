package localmesos

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// sandboxGC removes the sandboxes of terminated executors as the Mesos
// agent's garbage collector does (apache/mesos src/slave/slave.cpp,
// src/slave/gc.cpp): a directory is scheduled for removal gc_delay after its
// modification time (Slave::garbageCollect), and every disk_watch_interval
// the agent measures the disk usage of its work dir and removes at once every
// scheduled directory older than gc_delay * max(0, 1 - gc_disk_headroom -
// usage) (Slave::age, Slave::_checkDiskUsage): the fuller the disk, the
// sooner sandboxes go.
type sandboxGC struct {
	workDir  string
	delay    time.Duration
	headroom float64
	interval time.Duration
	log      logr.Logger

	mu  sync.Mutex
	due map[string]time.Time // path -> when it is removed
	// wake tells the loop that an earlier removal was scheduled.
	wake chan struct{}
}

func newSandboxGC(o Options, workDir string) *sandboxGC {
	return &sandboxGC{
		workDir: workDir, delay: o.GCDelay, headroom: o.GCDiskHeadroom, interval: o.DiskWatchInterval,
		log: o.Log, due: map[string]time.Time{}, wake: make(chan struct{}, 1),
	}
}

// schedule removes path gc_delay after now: the agent touches a sandbox
// when its executor terminates (os::utime in Slave::removeExecutor) and
// schedules it by that modification time.
func (g *sandboxGC) schedule(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
	g.mu.Lock()
	g.due[path] = now.Add(g.delay)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *sandboxGC) unschedule(path string) {
	g.mu.Lock()
	delete(g.due, path)
	g.mu.Unlock()
}

// run removes due directories and checks the disk until stop closes.
func (g *sandboxGC) run(stop <-chan struct{}) {
	disk := time.NewTicker(g.interval)
	defer disk.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		g.prune(0)
		if next, ok := g.next(); ok {
			timer.Reset(max(time.Until(next), 0))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-stop:
			return
		case <-g.wake:
		case <-timer.C:
		case <-disk.C:
			g.checkDisk()
		}
	}
}

// checkDisk is Slave::_checkDiskUsage: prune what is older than the age
// the disk usage allows.
func (g *sandboxGC) checkDisk() {
	usage, err := diskUsage(g.workDir)
	if err != nil {
		g.log.Error(err, "disk usage of the work dir", "dir", g.workDir)
		return
	}
	maxAge := time.Duration(float64(g.delay) * max(0, 1-g.headroom-usage))
	g.log.V(1).Info("disk usage", "usage", usage, "maxAllowedAge", maxAge)
	// Everything is scheduled gc_delay after its time: what is due within
	// gc_delay - maxAge is at least maxAge old.
	g.prune(g.delay - maxAge)
}

// prune removes every directory due within d from now.
func (g *sandboxGC) prune(d time.Duration) {
	limit := time.Now().Add(d)
	var paths []string
	g.mu.Lock()
	for p, t := range g.due {
		if !t.After(limit) {
			paths = append(paths, p)
			delete(g.due, p)
		}
	}
	g.mu.Unlock()
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			g.log.Error(err, "remove sandbox", "dir", p)
			continue
		}
		g.log.V(1).Info("sandbox garbage-collected", "dir", p)
	}
}

func (g *sandboxGC) next() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var first time.Time
	for _, t := range g.due {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first, !first.IsZero()
}

// scheduleOldAgents schedules the work dirs of agents of an earlier run
// (another master id: a restarted local Mesos), as Slave::recover does for
// the directories of agent ids it did not recover ("Garbage collecting old
// agent").
func (g *sandboxGC) scheduleOldAgents(current map[string]*agent) {
	dir := filepath.Join(g.workDir, "agents")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // none yet
	}
	for _, e := range entries {
		if e.IsDir() && current[e.Name()] == nil {
			g.schedule(filepath.Join(dir, e.Name()))
		}
	}
}

// diskUsage is stout's fs::usage: the used fraction of the file system
// holding path.
func diskUsage(path string) (float64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	if st.Blocks == 0 {
		return 0, nil
	}
	return float64(st.Blocks-st.Bfree) / float64(st.Blocks), nil
}

// startSandboxes empties the fetcher cache and starts the garbage collector
// of sandboxes, scheduling the work dirs that earlier runs left behind.
func (m *Mesos) startSandboxes() error {
	f, err := newFetcher(filepath.Join(m.workDir, "fetch"), m.opts.FetcherCacheSize, m.log.WithName("fetcher"))
	if err != nil {
		return err
	}
	f.home = m.opts.FrameworksHome
	m.fetcher = f
	if m.opts.GCDelay < 0 {
		return nil
	}
	m.gc = newSandboxGC(m.opts, m.workDir)
	m.gc.scheduleOldAgents(m.agentsByID)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.gc.run(m.stop)
	}()
	return nil
}

// collectSandbox schedules the sandbox of a removed executor for garbage
// collection once its processes have exited (Slave::removeExecutor
// schedules the executor's directories when it is terminated). Called with
// m.mu held.
func (m *Mesos) collectSandbox(e *executor) {
	if m.gc == nil || e.dir == "" || e.gcScheduled {
		return
	}
	e.gcScheduled = true
	// runs/latest -> executors/<id>: the executor's directory, runs and all.
	path := filepath.Dir(filepath.Dir(e.dir))
	procs := append([]*process(nil), e.taskProcs...)
	if e.proc != nil {
		procs = append(procs, e.proc)
	}
	key := e.fw.id + "/" + e.id
	go func() {
		for _, p := range procs {
			<-p.done
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		// A new executor with the same id reuses the directory (its runs
		// share runs/latest here; Mesos gives each run its own).
		if cur := e.agent.executors[key]; cur != nil && cur != e {
			return
		}
		m.gc.schedule(path)
	}()
}

// reuseSandbox takes the sandbox of a new executor off the schedule, as
// Slave::_run unschedules the directories of a relaunched executor. Called
// with m.mu held.
func (m *Mesos) reuseSandbox(runDir string) {
	if m.gc != nil {
		m.gc.unschedule(filepath.Dir(filepath.Dir(runDir)))
	}
}
