package controller

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/election"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// sandboxFile returns the content and modification time of the file name in
// the sandbox of task id under work; ok is false while it does not exist.
func sandboxFile(work, id, name string) (content string, mtime time.Time, ok bool) {
	var walk func(root string, mine bool)
	walk = func(root string, mine bool) {
		_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			in := mine || strings.Contains(p, id)
			if info.Mode()&os.ModeSymlink != 0 && in {
				// a persistent volume, linked into the sandbox
				if dir, err := filepath.EvalSymlinks(p); err == nil {
					if st, err := os.Stat(dir); err == nil && st.IsDir() {
						walk(dir, true)
					}
				}
				return nil
			}
			if info.Name() == name && in {
				if b, rerr := os.ReadFile(p); rerr == nil {
					content, mtime, ok = strings.TrimSpace(string(b)), info.ModTime(), true
				}
			}
			return nil
		})
	}
	walk(work, false)
	return content, mtime, ok
}

// waitFile waits for the file to exist, and, unless want is "*", to hold want.
func waitFile(t *testing.T, work, id, name, want string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, mtime, ok := sandboxFile(work, id, name)
		if ok && (want == "*" || got == want) {
			return mtime
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %s = %q (exists %t) after %s, want %q", name, id, got, ok, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMasterLeaseFencesPartitionedMaster: real executors, a real partition
// (the master's agent cut off while its processes run on, Mesos not yet
// calling it unreachable, as for the first 75 s on a real master). The
// partitioned master demotes itself before its lease ends; the controller
// elects another only after that, without waiting for Mesos; the others
// follow each master; the old master is killed when its agent comes back,
// and its replacement starts knowing the new master.
func TestMasterLeaseFencesPartitionedMaster(t *testing.T) {
	e, work := newExecutorEnv(t, localmesos.Options{Agents: 3, AgentUnreachableAfter: 75 * time.Second})
	// No periodic resync: only the lease's own timer may notice it lapse.
	e.cfg.ResyncInterval = time.Hour
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) {
		c.Spec.Task.Command = `echo "$CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT" > master-at-launch; exec sleep 1000`
		c.Spec.Placement.Spread = v1alpha1.SpreadHostname
		c.Spec.Election.Strategy = v1alpha1.ElectionPosition
		c.Spec.Election.LeaseDuration = &metav1.Duration{Duration: 3 * time.Second}
		c.Spec.Election.PositionCommand = `echo $((CONVERGE_ORDINAL * 10 + 5))`
		c.Spec.Election.PromoteCommand = `touch "promoted-$CONVERGE_EPOCH"`
		c.Spec.Election.FollowCommand = `echo "$CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT $CONVERGE_EPOCH" > following`
		c.Spec.Election.DemoteCommand = `touch "demoted-$CONVERGE_EPOCH"`
	}))
	c := e.waitFor("db", 60*time.Second, "Ready", clusterReady)
	old := c.Status.Master
	if old == nil || old.Ordinal != 2 {
		t.Fatalf("master = %+v, want ordinal 2 (position 25)", old)
	}
	follow := func(m *v1alpha1.MasterStatus) string {
		return m.Hostname + ":" + itoa(int(m.Port)) + " " + itoa(int(m.Epoch))
	}
	for _, ts := range c.Status.Tasks {
		if ts.ID != old.TaskID {
			waitFile(t, work, ts.ID, "following", follow(old), 20*time.Second)
		}
	}

	if err := e.mesos.PartitionAgent(old.Hostname); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("db", 30*time.Second, "a new master", func(c *v1alpha1.Cluster) bool {
		return c.Status.Master != nil && c.Status.Master.TaskID != old.TaskID
	})
	nm := c.Status.Master
	if nm.Epoch <= old.Epoch {
		t.Fatalf("new master %+v, old %+v", nm, old)
	}
	// Never two masters: the old one demoted itself (its process runs on,
	// cut off) before the new one was promoted.
	demotedAt := waitFile(t, work, old.TaskID, "demoted-"+itoa(int(old.Epoch)), "*", 10*time.Second)
	promotedAt := waitFile(t, work, nm.TaskID, "promoted-"+itoa(int(nm.Epoch)), "*", 10*time.Second)
	if !demotedAt.Before(promotedAt) {
		t.Fatalf("old master demoted at %s, new master promoted at %s", demotedAt, promotedAt)
	}
	for _, ts := range c.Status.Tasks {
		if ts.ID != old.TaskID && ts.ID != nm.TaskID {
			waitFile(t, work, ts.ID, "following", follow(nm), 20*time.Second)
		}
	}

	// The agent comes back: the old master is killed, a new member takes its
	// ordinal and starts with the current master in its environment.
	if err := e.mesos.RestoreAgent(old.Hostname); err != nil {
		t.Fatal(err)
	}
	c = e.waitFor("db", 60*time.Second, "the old master replaced", func(c *v1alpha1.Cluster) bool {
		if !clusterReady(c) || c.Status.Master.TaskID != nm.TaskID {
			return false
		}
		for _, ts := range c.Status.Tasks {
			if ts.ID == old.TaskID {
				return false
			}
		}
		return len(c.Status.Tasks) == 3
	})
	for _, ts := range c.Status.Tasks {
		if ts.Ordinal == old.Ordinal {
			waitFile(t, work, ts.ID, "master-at-launch", nm.Hostname+":"+itoa(int(nm.Port)), 10*time.Second)
		}
	}
	e.checkConverged("db", 3)
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestMasterLeaseRenewed: a healthy master keeps its lease (simulated
// converge executors renew it as the real one does): after many renewals
// it is still master of the first epoch, and never replaced.
func TestMasterLeaseRenewed(t *testing.T) {
	e := newEnv(t, localmesos.Options{Simulate: true})
	e.start()
	e.create(newCluster("db", 3, func(c *v1alpha1.Cluster) {
		c.Spec.Election.Strategy = v1alpha1.ElectionPosition
		c.Spec.Election.PositionCommand = "unused: simulated"
		c.Spec.Election.LeaseDuration = &metav1.Duration{Duration: 3 * time.Second}
	}))
	c := e.waitReady("db")
	m := c.Status.Master
	// Renewals every 600ms: wait for 8 grants, more than a lease's worth.
	e.eventually(30*time.Second, "8 lease grants", func() bool {
		return len(e.calls(electionMessages(election.TypeLeaseGrant))) >= 8
	})
	c = e.get("db")
	if c.Status.Master == nil || c.Status.Master.TaskID != m.TaskID || c.Status.Master.Epoch != m.Epoch {
		t.Fatalf("master changed from %+v to %+v while renewing", m, c.Status.Master)
	}
	if hasEventReason(e.events("db"), "MasterLeaseExpired") {
		t.Fatalf("a renewing master's lease expired")
	}
	// Each other member confirmed following once: follow is not re-sent.
	if n := len(e.calls(electionMessages(election.TypeFollow))); n != 2 {
		t.Fatalf("%d follow messages for 2 members that answered at once", n)
	}
}
