package localmesos

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// pool drives a framework without losing offers: the harness's wait drops
// the events it is not looking for, and a dropped offer stays outstanding,
// never offered again, so a later launch would wait for it forever. pool
// keeps every offer that arrives while it waits for updates.
type pool struct {
	s      *sched
	offers []mesos.Offer
}

// wait returns the next event f wants, keeping the offers that pass by.
func (p *pool) wait(d time.Duration, f func(*scheduler.Event) bool) *scheduler.Event {
	return p.s.wait(d, func(e *scheduler.Event) bool {
		if e.Type == scheduler.Event_OFFERS && e.Offers != nil {
			p.offers = append(p.offers, e.Offers.Offers...)
		}
		return f(e)
	})
}

// offer returns an offer received, or the next one.
func (p *pool) offer() mesos.Offer {
	p.s.t.Helper()
	if len(p.offers) == 0 && p.wait(5*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }) == nil {
		p.s.t.Fatal("no offer within 5s")
	}
	o := p.offers[0]
	p.offers = p.offers[1:]
	return o
}

// launch runs cmd as task id with uris and returns its offer.
func (p *pool) launch(id, cmd string, uris ...mesos.CommandInfo_URI) mesos.Offer {
	off := p.offer()
	ti := cmdTask(id, off, cmd)
	ti.Command.URIs = uris
	p.s.mustCall(launch(off, ti))
	return off
}

// reach acknowledges the updates of task id until it is in state, and
// fails the test if it ends otherwise.
func (p *pool) reach(id string, state mesos.TaskState) {
	p.s.t.Helper()
	for {
		e := p.wait(10*time.Second, func(e *scheduler.Event) bool {
			return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == id
		})
		if e == nil {
			p.s.t.Fatalf("task %s: no update within 10s", id)
		}
		st := &e.Update.Status
		p.s.ack(st)
		if st.GetState() == state {
			return
		}
		if isTerminal(st.GetState()) {
			p.s.t.Fatalf("task %s: %v", id, st)
		}
	}
}

// runToEnd launches a command task, acknowledges every update until it is
// FINISHED (so the agent forgets it and removes its executor) and returns
// its sandbox.
func runToEnd(t *testing.T, m *Mesos, p *pool, id, cmd string, uris ...mesos.CommandInfo_URI) string {
	t.Helper()
	off := p.launch(id, cmd, uris...)
	p.reach(id, mesos.TASK_FINISHED)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sandboxDir(m.agentsByID[off.AgentID.Value], p.s.fwID, id)
}

// TestFetcherCache: a URI with cache: true is downloaded once for all the
// tasks that fetch it and reaches each sandbox as the same file, as through
// the Mesos fetcher cache (apache/mesos docs/fetcher.md, "Fetching through
// the cache": "every URI is downloaded at most once (per user) as long as it
// is cached"; src/slave/containerizer/fetcher.cpp, FetcherProcess::fetch:
// "if (!uri.cache())" bypasses it, cacheKey(user, uri) keys it). Without
// cache: true every task downloads its own copy.
func TestFetcherCache(t *testing.T) {
	o := realOptions(t)
	m := startMesos(t, o)
	payload := bytes.Repeat([]byte("#!/bin/sh\n# converge executor stand-in\n"), 1<<14)
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		_, _ = w.Write(payload)
	}))
	defer srv.Close()
	yes, exe := true, true
	cached := mesos.CommandInfo_URI{Value: srv.URL + "/converge", Cache: &yes, Executable: &exe}
	p := &pool{s: subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))}

	var sandboxes []string
	for _, id := range []string{"c1", "c2", "c3"} {
		sandboxes = append(sandboxes, runToEnd(t, m, p, id, "test -x converge", cached))
	}
	if n := gets.Load(); n != 1 {
		t.Fatalf("a cached URI was downloaded %d times by 3 tasks, want 1", n)
	}
	first, err := os.Stat(filepath.Join(sandboxes[0], "converge"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range sandboxes[1:] {
		fi, err := os.Stat(filepath.Join(dir, "converge"))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(first, fi) {
			t.Fatalf("%s holds its own copy of a cached URI, not the cache's file", dir)
		}
	}
	cacheFiles, _ := filepath.Glob(filepath.Join(o.WorkDir, "fetch", "test", "c*-converge"))
	if len(cacheFiles) != 1 {
		t.Fatalf("cache files for user test: %v, want one", cacheFiles)
	}

	plain := cached
	no := false
	plain.Cache = &no
	d := runToEnd(t, m, p, "p1", "test -x converge", plain)
	if n := gets.Load(); n != 2 {
		t.Fatalf("an uncached URI was not downloaded again: %d downloads", n)
	}
	fi, err := os.Stat(filepath.Join(d, "converge"))
	if err != nil || os.SameFile(first, fi) {
		t.Fatalf("uncached fetch: %v, same file as the cache's: %v", err, err == nil && os.SameFile(first, fi))
	}
}

// TestFetcherCacheClearedAtStart: a new local Mesos on the same work dir
// starts with an empty cache, as the agent's Fetcher constructor removes
// --fetcher_cache_dir (fetcher.cpp, Fetcher::Fetcher): a rebuilt binary is
// fetched anew after a restart.
func TestFetcherCacheClearedAtStart(t *testing.T) {
	o := realOptions(t)
	stale := filepath.Join(o.WorkDir, "fetch", "test", "c1-converge")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("old"), 0o444); err != nil {
		t.Fatal(err)
	}
	startMesos(t, o)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale cache file after start: %v", err)
	}
}

// TestSandboxGC: the sandbox of a terminated executor is removed gc_delay
// after it terminated, and at once when the disk headroom says so, as the
// Mesos agent does: apache/mesos src/slave/slave.cpp, Slave::garbageCollect
// ("Duration delay = flags.gc_delay - (Clock::now() - time.get())"),
// Slave::age ("flags.gc_delay * std::max(0.0, (1.0 - flags.gc_disk_headroom
// - usage))") and Slave::_checkDiskUsage (prune every --disk_watch_interval);
// defaults in src/slave/constants.hpp (GC_DELAY = Weeks(1),
// DISK_WATCH_INTERVAL = Minutes(1), GC_DISK_HEADROOM = 0.1). A running task's
// sandbox stays.
func TestSandboxGC(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*Options)
	}{
		// Due by its delay; the disk check never comes.
		{"gc_delay", func(o *Options) { o.GCDelay = 300 * time.Millisecond; o.DiskWatchInterval = time.Hour }},
		// A week's delay, but headroom 1.0 leaves a max age of zero: the
		// next disk check removes it.
		{"disk headroom", func(o *Options) {
			o.GCDelay = 7 * 24 * time.Hour
			o.GCDiskHeadroom = 1
			o.DiskWatchInterval = 50 * time.Millisecond
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := realOptions(t)
			tc.opts(&o)
			m := startMesos(t, o)
			p := &pool{s: subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))}
			off := p.launch("runs", "exec sleep 1000")
			p.reach("runs", mesos.TASK_RUNNING)
			dead := runToEnd(t, m, p, "ends", "true")
			executorDir := filepath.Dir(filepath.Dir(dead)) // executors/ends
			waitFor(t, 10*time.Second, func() bool {
				_, err := os.Stat(executorDir)
				return os.IsNotExist(err)
			})
			m.mu.Lock()
			live := m.sandboxDir(m.agentsByID[off.AgentID.Value], p.s.fwID, "runs")
			m.mu.Unlock()
			if _, err := os.Stat(filepath.Join(live, "stdout")); err != nil {
				t.Fatalf("a running task's sandbox was collected: %v", err)
			}
		})
	}
}

// TestSandboxGCOldAgents: work dirs of the agents of an earlier run (a
// restarted local Mesos gets new agent ids) are collected, as Slave::recover
// does for agent ids it did not recover ("Garbage collecting old agent").
func TestSandboxGCOldAgents(t *testing.T) {
	o := realOptions(t)
	o.GCDelay = 100 * time.Millisecond
	old := filepath.Join(o.WorkDir, "agents", "0f0f0f0f-S0", "frameworks", "fw", "executors", "e", "runs", "latest")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	m := startMesos(t, o)
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	s.next(scheduler.Event_OFFERS, 5*time.Second)
	waitFor(t, 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(o.WorkDir, "agents", "0f0f0f0f-S0"))
		return os.IsNotExist(err)
	})
}
