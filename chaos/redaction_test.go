package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/controller"
	"github.com/converge-io/converge/mesosbridge"
	"github.com/converge-io/converge/mesosbridge/localmesos"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

// lockedBuffer collects log lines from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.b.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 10})
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsNeverLeak runs the controller against an authenticating local
// Mesos (its secret read from a file, as `converge serve --secret-file`
// does) with a cluster whose task env holds a password and a token, logging
// at the highest verbosity, through launches, a task failure and an
// election. Neither the env values nor the Mesos secret appear in any log
// line, the stored status, events, ledger, election record, endpoints,
// framework record, or the output of `converge describe`.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		dbPassword  = "s3cr3t-value"
		apiToken    = "tok-9f8e7d6c5b4a-secret"
		mesosSecret = "m3sos-fr4mework-s3cret"
	)
	secrets := []string{dbPassword, apiToken, mesosSecret}

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "mesos-secret")
	if err := os.WriteFile(secretFile, []byte(mesosSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(raw))

	var logs lockedBuffer
	log := logs.logger()
	srv := etcdtest.Start(t)
	st := store.NewFromClient(srv.Client(), "/converge")

	m, err := localmesos.New(localmesos.Options{
		Simulate: true, Agents: 3, Principal: "converge", Secret: secret,
		HeartbeatInterval: 500 * time.Millisecond, AllocationInterval: 50 * time.Millisecond,
		ResendInterval: 300 * time.Millisecond, Sim: localmesos.SimOptions{LaunchDelay: 20 * time.Millisecond},
		Log: log.WithName("localmesos"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controller.Run(ctx, controller.Config{
			Store: st, ResyncInterval: 300 * time.Millisecond, StallAfter: time.Second,
			Log: log.WithName("controller"),
		}, mesosbridge.Config{
			Masters: m.URLs(), FrameworkName: "converge", Principal: "converge", Secret: secret,
			Hostname: "localhost", FailoverTimeout: time.Hour, Log: log.WithName("mesos"),
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("controller: %v", err)
		}
	}()

	r := int32(3)
	c := &v1alpha1.Cluster{}
	c.Name = "vault"
	c.Spec.Replicas = &r
	c.Spec.Task.Command = "exec mysqld --password=$DB_PASSWORD"
	c.Spec.Task.Env = map[string]string{"DB_PASSWORD": dbPassword, "API_TOKEN": apiToken}
	cpu, mem := resource.MustParse("100m"), resource.MustParse("32Mi")
	c.Spec.Task.Resources = v1alpha1.Resources{CPUs: &cpu, Mem: &mem, Ports: 1}
	c.Spec.Election.Strategy = v1alpha1.ElectionOrdinal
	c.Spec.Election.Timeout = &metav1.Duration{Duration: 3 * time.Second}
	v1alpha1.SetDefaults(c)
	if _, err := st.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	ready := func() *v1alpha1.Cluster {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			got, err := st.Get(context.Background(), "default", "vault")
			if err == nil && v1alpha1.IsReady(got) && got.Status.Master != nil {
				return got
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("cluster not Ready; logs:\n%s", tail(logs.String(), 4000))
		return nil
	}
	got := ready()
	// A failure of the master: TaskFailed event, a replacement, a new election.
	if err := m.FailTask(got.Status.Master.TaskID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, err := st.Get(context.Background(), "default", "vault")
		if err == nil && v1alpha1.IsReady(now) && now.Status.Master != nil && now.Status.Master.TaskID != got.Status.Master.TaskID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no re-election after the master failed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// What converge wrote besides the spec the user gave it.
	written := map[string]string{"logs": logs.String()}
	final, err := st.Get(context.Background(), "default", "vault")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(final.Status)
	written["status"] = string(status)
	kvs, err := srv.Client().Get(context.Background(), "/converge/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs.Kvs {
		k := string(kv.Key)
		if strings.HasPrefix(k, "/converge/clusters/") {
			continue // the user's own spec: it holds the env, as written
		}
		written[k] = string(kv.Value)
	}
	evs, err := st.ListEvents(context.Background(), "default", "vault")
	if err != nil || len(evs) == 0 {
		t.Fatalf("events: %d, %v", len(evs), err)
	}

	// `converge describe`, the real binary.
	bin := converge(t)
	for _, args := range [][]string{
		{"describe", "cluster", "vault"},
		{"get", "clusters", "-o", "wide"},
		{"endpoints", "vault"},
	} {
		cmd := exec.Command(bin, append([]string{"--etcd-endpoints", srv.Endpoints()[0]}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("converge %v: %v\n%s", args, err, out)
		}
		written["converge "+strings.Join(args, " ")] = string(out)
	}
	if d := written["converge describe cluster vault"]; !strings.Contains(d, "DB_PASSWORD") || !strings.Contains(d, "TaskFailed") {
		t.Errorf("describe does not show the env names and events:\n%s", d)
	}
	if !strings.Contains(written["logs"], "launch") {
		t.Errorf("the logs captured nothing useful:\n%s", tail(written["logs"], 2000))
	}

	for where, text := range written {
		for _, s := range secrets {
			if i := strings.Index(text, s); i >= 0 {
				lo, hi := max(0, i-200), min(len(text), i+len(s)+100)
				t.Errorf("secret %q appears in %s: ...%s...", s, where, text[lo:hi])
			}
		}
	}
	t.Logf("checked %d places, %d bytes of logs", len(written), len(written["logs"]))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
