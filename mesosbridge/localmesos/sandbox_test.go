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

// runToEnd launches a command task with uris on one offer, acknowledges
// every update until it is FINISHED (so the agent forgets it and removes its
// executor) and returns its sandbox.
func runToEnd(t *testing.T, m *Mesos, s *sched, id, cmd string, uris ...mesos.CommandInfo_URI) string {
	t.Helper()
	off := s.offers(1, 5*time.Second)[0]
	ti := cmdTask(id, off, cmd)
	ti.Command.URIs = uris
	s.mustCall(launch(off, ti))
	for {
		st := s.update(id, 10*time.Second)
		s.ack(st)
		if st.GetState() == mesos.TASK_FINISHED {
			break
		}
		if isTerminal(st.GetState()) {
			t.Fatalf("task %s: %v", id, st)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sandboxDir(m.agentsByID[off.AgentID.Value], s.fwID, id)
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
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))

	var sandboxes []string
	for _, id := range []string{"c1", "c2", "c3"} {
		sandboxes = append(sandboxes, runToEnd(t, m, s, id, "test -x converge", cached))
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
	d := runToEnd(t, m, s, "p1", "test -x converge", plain)
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
			s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
			off := s.offers(1, 5*time.Second)[0]
			s.mustCall(launch(off, cmdTask("runs", off, "exec sleep 1000")))
			s.ack(s.reach("runs", 10*time.Second, mesos.TASK_RUNNING))
			dead := runToEnd(t, m, s, "ends", "true")
			executorDir := filepath.Dir(filepath.Dir(dead)) // executors/ends
			waitFor(t, 10*time.Second, func() bool {
				_, err := os.Stat(executorDir)
				return os.IsNotExist(err)
			})
			m.mu.Lock()
			live := m.sandboxDir(m.agentsByID[off.AgentID.Value], s.fwID, "runs")
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
