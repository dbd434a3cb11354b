package controller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
)

// realElectionCluster runs members under real `converge executor`
// processes. Each ordinal's first task is at position ordinal*10+5 and a
// replacement at 1 (a member that starts afresh), read from a file in its
// sandbox; positionCommand fails, as when the database cannot be reached,
// until dir/ready exists.
func realElectionCluster(name, dir string, mods ...func(*v1alpha1.Cluster)) *v1alpha1.Cluster {
	return newCluster(name, 3, append([]func(*v1alpha1.Cluster){func(c *v1alpha1.Cluster) {
		c.Spec.Task.Env["DIR"] = dir
		c.Spec.Task.Command = `if [ -e "$DIR/first-$CONVERGE_ORDINAL" ]; then echo 1 > position; else echo $((CONVERGE_ORDINAL * 10 + 5)) > position; fi
touch "$DIR/first-$CONVERGE_ORDINAL"; exec sleep 1000`
		c.Spec.Election.Strategy = v1alpha1.ElectionPosition
		c.Spec.Election.PositionCommand = `[ -e "$DIR/ready" ] || { echo "could not connect to the server" >&2; exit 3; }; cat position`
		c.Spec.Election.PromoteCommand = `touch "promoted-$CONVERGE_EPOCH"`
	}}, mods...)...)
}

// masterSeen records every master a cluster's endpoints ever published.
type masterSeen struct {
	mu      sync.Mutex
	masters []store.Endpoint
}

func watchPublished(t *testing.T, e *env, name string) *masterSeen {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &masterSeen{}
	ch := e.st.WatchEndpoints(ctx, "default", name)
	go func() {
		for ep := range ch {
			if ep != nil && ep.Master != nil {
				s.mu.Lock()
				s.masters = append(s.masters, *ep.Master)
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *masterSeen) published() []store.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Endpoint(nil), s.masters...)
}

// Issue 12: an election never crowns a member whose position could not be
// read, and never publishes a master before its promotion is confirmed. Real
// executors run the hooks: every positionCommand fails (nobody is elected,
// the conditions say why, the election retries); then the best member's
// promoteCommand fails (retried PromoteAttempts times, then that member is
// fenced and the next best is elected and promoted; only it is published).
func TestElectionSafetyRealExecutors(t *testing.T) {
	dir := t.TempDir()
	e, _ := newExecutorEnv(t, localmesos.Options{Agents: 3})
	e.start()
	seen := watchPublished(t, e, "db")
	e.create(realElectionCluster("db", dir, func(c *v1alpha1.Cluster) {
		c.Spec.Election.PromoteCommand = `if [ "$CONVERGE_ORDINAL" = 2 ]; then echo "$CONVERGE_EPOCH" >> "$DIR/promote-attempts"; echo "pg_ctl: server did not promote in time" >&2; exit 4; fi
touch "promoted-$CONVERGE_EPOCH"`
	}))

	// Every positionCommand fails: nobody is crowned; the conditions name the failure.
	noMaster := func(c *v1alpha1.Cluster) {
		if c != nil && c.Status.Master != nil {
			t.Fatalf("master %+v published while no position could be read", c.Status.Master)
		}
	}
	e.waitFor("db", 30*time.Second, "an election with every position failing", func(c *v1alpha1.Cluster) bool {
		noMaster(c)
		r := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Reason == ReasonElecting && strings.Contains(r.Message, "0 of 3 members answered (3 failed;") &&
			strings.Contains(r.Message, "could not connect to the server")
	})
	e.waitFor("db", 30*time.Second, "a new epoch after the timeout", func(c *v1alpha1.Cluster) bool {
		noMaster(c)
		el, err := e.st.GetElection(context.Background(), "default", "db")
		return err == nil && el != nil && el.Epoch >= 2 && hasEventReason(e.events("db"), "ElectionTimeout")
	})
	if got := seen.published(); len(got) != 0 {
		t.Fatalf("masters published while every position failed: %+v", got)
	}

	// Positions readable: ordinal 2 (25) wins, but its promotion fails.
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := e.waitFor("db", 40*time.Second, "the next best member promoted", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil
	})
	m := c.Status.Master
	if m.Ordinal != 1 {
		t.Fatalf("master = %+v, want ordinal 1 (position 15, next best after ordinal 2 failed to promote)", m)
	}
	if !hasEventReason(e.events("db"), ReasonPromoteFailed) {
		t.Errorf("no %s event", ReasonPromoteFailed)
	}
	// The failed promotion was retried: PromoteAttempts runs in its epoch.
	b, err := os.ReadFile(filepath.Join(dir, "promote-attempts"))
	if err != nil {
		t.Fatal(err)
	}
	epochs := strings.Fields(string(b))
	if len(epochs) < 3 || epochs[0] != epochs[1] || epochs[1] != epochs[2] || (len(epochs) > 3 && epochs[3] == epochs[0]) {
		t.Fatalf("promote attempts of ordinal 2 by epoch: %v, want 3 in its epoch", epochs)
	}
	// Only the confirmed master was ever published.
	for _, p := range seen.published() {
		if p.TaskID != m.TaskID {
			t.Fatalf("published master %+v, never confirmed promoted (the master is %s)", p, m.TaskID)
		}
	}
	if ep, _ := e.st.GetEndpoints(context.Background(), "default", "db"); ep == nil || ep.Master == nil || ep.Master.TaskID != m.TaskID || ep.Epoch != m.Epoch {
		t.Fatalf("endpoints = %+v", ep)
	}
	e.checkConverged("db", 3)
}

// election.maximumLagOnFailover with real executors: the master reports its
// position in its lease renewals, the controller records it, and after the
// master dies no member lagging it by more than the limit is elected; raising
// the limit lets the best of them win.
func TestMaximumLagOnFailoverRealExecutors(t *testing.T) {
	e, _ := newExecutorEnv(t, localmesos.Options{Agents: 3})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.start()
	lag := int64(5)
	e.create(realElectionCluster("db", dir, func(c *v1alpha1.Cluster) { c.Spec.Election.MaximumLagOnFailover = &lag }))
	c := e.waitFor("db", 30*time.Second, "Ready", clusterReady)
	old := c.Status.Master
	if old == nil || old.Ordinal != 2 {
		t.Fatalf("master = %+v, want ordinal 2 (position 25)", old)
	}
	// The master's renewals carry its position; the controller records it.
	var el *store.ElectionRecord
	e.waitFor("db", 20*time.Second, "the master's position recorded", func(*v1alpha1.Cluster) bool {
		el, _ = e.st.GetElection(context.Background(), "default", "db")
		return el != nil && el.MasterPosition == "25" && el.MasterPositionEpoch == old.Epoch
	})

	// The master dies: ordinals 0 (5) and 1 (15) lag 25 by more than 5, and
	// its replacement starts afresh (1): nobody is elected, and Ready says why.
	if err := e.mesos.FailTask(old.TaskID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("db", 30*time.Second, "an election refused for lag", func(c *v1alpha1.Cluster) bool {
		if c.Status.Master != nil && c.Status.Master.TaskID != old.TaskID {
			t.Fatalf("master %+v elected although every member lags by more than %d", c.Status.Master, lag)
		}
		r := v1alpha1.FindCondition(c.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Reason == ReasonMembersLagging && strings.Contains(r.Message, `"15" lags by 10`) &&
			strings.Contains(r.Message, `"25"`)
	})

	// The limit raised to 10: ordinal 1 is within it and wins.
	e.update("db", func(c *v1alpha1.Cluster) { ten := int64(10); c.Spec.Election.MaximumLagOnFailover = &ten })
	c = e.waitFor("db", 30*time.Second, "a master within the raised limit", func(c *v1alpha1.Cluster) bool {
		return clusterReady(c) && c.Status.Master != nil && c.Status.Master.TaskID != old.TaskID
	})
	if c.Status.Master.Ordinal != 1 {
		t.Fatalf("master = %+v, want ordinal 1 (lag 10)", c.Status.Master)
	}
}
