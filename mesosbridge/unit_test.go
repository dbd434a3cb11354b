package mesosbridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"
)

func TestBackoffDoublesCapsAndJitters(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second, 0.2)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		got := b.Next()
		lo, hi := time.Duration(float64(w)*0.8), time.Duration(float64(w)*1.2)
		if got < lo || got > hi {
			t.Fatalf("step %d: %v not within ±20%% of %v", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got > 120*time.Millisecond {
		t.Fatalf("after Reset: %v, want about 100ms", got)
	}
	// Jitter really varies.
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		seen[jittered(time.Second, 0.2)] = true
	}
	if len(seen) < 2 {
		t.Fatal("jitter produced one value 20 times")
	}
}

func TestNormalizeMaster(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5050":                        "http://127.0.0.1:5050/api/v1/scheduler",
		"http://m1:5050":                        "http://m1:5050/api/v1/scheduler",
		"https://m1:5050/":                      "https://m1:5050/api/v1/scheduler",
		"http://m1:5050/api/v1/scheduler":       "http://m1:5050/api/v1/scheduler",
		"http://m1:5050/api/v1/scheduler?x=1#y": "http://m1:5050/api/v1/scheduler",
	} {
		got, err := normalizeMaster(in)
		if err != nil || got != want {
			t.Errorf("normalizeMaster(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://m:1", "http://", "http://user:pw@m:1"} {
		if _, err := normalizeMaster(bad); err == nil {
			t.Errorf("normalizeMaster(%q): no error", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestLeaderFromLocation(t *testing.T) {
	cur := "https://10.0.0.1:5050/api/v1/scheduler"
	for loc, want := range map[string]string{
		"//10.0.0.2:5050/api/v1/scheduler":       "https://10.0.0.2:5050/api/v1/scheduler",
		"//m2:5051/master/api/v1/scheduler":      "https://m2:5051/api/v1/scheduler",
		"http://10.0.0.3:5050/api/v1/scheduler":  "http://10.0.0.3:5050/api/v1/scheduler",
		"10.0.0.4:5050":                          "https://10.0.0.4:5050/api/v1/scheduler",
		"https://10.0.0.5:5050/api/v1/scheduler": "https://10.0.0.5:5050/api/v1/scheduler",
	} {
		got, err := leaderFromLocation(loc, cur)
		if err != nil || got != want {
			t.Errorf("leaderFromLocation(%q) = %q, %v; want %q", loc, got, err, want)
		}
	}
	for _, bad := range []string{"", "/api/v1/scheduler"} {
		if got, err := leaderFromLocation(bad, cur); err == nil {
			t.Errorf("leaderFromLocation(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReconcileRound(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newReconcileRound(time.Second, 4*time.Second)
	if got := r.begin(t0, nil); got != nil || r.active {
		t.Fatalf("empty round: %v active=%v", got, r.active)
	}
	first := r.begin(t0, []ReconcileTask{{TaskID: "b", AgentID: "A"}, {TaskID: "a"}, {TaskID: "a", AgentID: "B"}, {TaskID: ""}})
	if fmt.Sprint(first) != "[{a B} {b A}]" {
		t.Fatalf("first ask: %v", first)
	}
	if r.due(t0.Add(999*time.Millisecond)) != nil {
		t.Fatal("retry before the backoff")
	}
	if got := r.due(t0.Add(time.Second)); len(got) != 2 {
		t.Fatalf("retry at 1s: %v", got)
	}
	if d, _ := r.until(t0.Add(time.Second)); d != 2*time.Second {
		t.Fatalf("next wait %v, want 2s (doubled)", d)
	}
	if r.observe("zzz") {
		t.Fatal("unknown task completed the round")
	}
	if r.observe("a") {
		t.Fatal("round complete with b outstanding")
	}
	if got := r.due(t0.Add(3 * time.Second)); fmt.Sprint(got) != "[{b A}]" {
		t.Fatalf("retry asks for %v, want only b", got)
	}
	if d, _ := r.until(t0.Add(3 * time.Second)); d != 4*time.Second {
		t.Fatalf("wait %v, want 4s", d)
	}
	r.due(t0.Add(7 * time.Second))
	if d, _ := r.until(t0.Add(7 * time.Second)); d != 4*time.Second {
		t.Fatalf("wait %v, want the 4s cap", d)
	}
	if !r.observe("b") {
		t.Fatal("round not complete after the last answer")
	}
	if _, ok := r.until(t0); ok || r.due(t0.Add(time.Hour)) != nil {
		t.Fatal("completed round still retries")
	}
}

func TestKillTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	k := newKillTracker(2*time.Second, 5*time.Second)
	k.add("t1", "a1", t0)
	k.add("t2", "", t0)
	k.add("t2", "a2", t0.Add(time.Second)) // learns the agent, keeps the schedule
	if k.due(t0.Add(time.Second)) != nil {
		t.Fatal("due before 2s")
	}
	got := k.due(t0.Add(2 * time.Second))
	if strings.Join([]string{got[0].TaskID, got[0].AgentID, got[1].TaskID, got[1].AgentID}, " ") != "t1 a1 t2 a2" {
		t.Fatalf("due at 2s: %+v", got)
	}
	if k.due(t0.Add(5*time.Second)) != nil {
		t.Fatal("second retry before 2+4s")
	}
	if len(k.due(t0.Add(6*time.Second))) != 2 {
		t.Fatal("second retry at 6s")
	}
	if len(k.due(t0.Add(10*time.Second))) != 0 || len(k.due(t0.Add(11*time.Second))) != 2 {
		t.Fatal("third retry not capped at 5s")
	}
	if !k.done("t1") || k.done("t1") || k.len() != 1 {
		t.Fatal("done")
	}
	if got := k.restart(t0.Add(20 * time.Second)); len(got) != 1 || got[0].TaskID != "t2" {
		t.Fatalf("restart: %+v", got)
	}
	if k.due(t0.Add(21*time.Second)) != nil || len(k.due(t0.Add(22*time.Second))) != 1 {
		t.Fatal("restart did not reset the backoff to 2s")
	}
}

func TestIsTerminal(t *testing.T) {
	terminal := map[mesos.TaskState]bool{
		mesos.TASK_FINISHED: true, mesos.TASK_FAILED: true, mesos.TASK_KILLED: true, mesos.TASK_ERROR: true,
		mesos.TASK_LOST: true, mesos.TASK_DROPPED: true, mesos.TASK_GONE: true, mesos.TASK_GONE_BY_OPERATOR: true,
	}
	for s := range mesos.TaskState_name {
		st := mesos.TaskState(s)
		if IsTerminal(st) != terminal[st] {
			t.Errorf("IsTerminal(%s) = %v", st, IsTerminal(st))
		}
	}
}

func TestIsFrameworkRemoved(t *testing.T) {
	for msg, want := range map[string]bool{
		"Framework has been removed":     true,
		"Framework was removed":          true,
		"framework has been torn down":   true,
		"Framework failed over":          false,
		"Role 'x' is not authorized":     false,
		"Framework removed: failed over": false,
	} {
		if got := isFrameworkRemoved(msg); got != want {
			t.Errorf("isFrameworkRemoved(%q) = %v", msg, got)
		}
	}
}

type nopStore struct{}

func (nopStore) LoadFrameworkID(context.Context) (string, error)    { return "", nil }
func (nopStore) SaveFrameworkID(context.Context, string) error      { return nil }
func (nopStore) MarkFrameworkRemoved(context.Context, string) error { return nil }

func TestConfigDefaultsAndValidation(t *testing.T) {
	c, err := Config{Masters: []string{" 127.0.0.1:5050 ", ""}, FrameworkName: "converge", State: nopStore{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != "*" || c.FailoverTimeout != 7*24*time.Hour || c.HeartbeatMisses != 3 || c.Codec != "protobuf" ||
		c.ImplicitReconcileInterval != 15*time.Minute || c.User == "" || len(c.Masters) != 1 || c.ReviveInterval != time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	for name, bad := range map[string]Config{
		"no master":       {FrameworkName: "x", State: nopStore{}},
		"no name":         {Masters: []string{"m:1"}, State: nopStore{}},
		"no store":        {Masters: []string{"m:1"}, FrameworkName: "x"},
		"secret alone":    {Masters: []string{"m:1"}, FrameworkName: "x", State: nopStore{}, Secret: "s"},
		"bad codec":       {Masters: []string{"m:1"}, FrameworkName: "x", State: nopStore{}, Codec: "xml"},
		"missing CA file": {Masters: []string{"m:1"}, FrameworkName: "x", State: nopStore{}, CACertFile: "/nonexistent/ca.pem"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("%s: New accepted %v", name, bad)
		}
	}
}

func TestConfigStringRedactsSecret(t *testing.T) {
	c := Config{Masters: []string{"m:1"}, Principal: "p", Secret: "hunter2-secret"}
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c.MarshalLog())} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("secret in %q", s)
		}
	}
}

func TestMetricsRegisterOncePerRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Masters: []string{"m:1"}, FrameworkName: "x", State: nopStore{}, Registerer: reg}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil {
		t.Fatal("second Client on the same registry: no error")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"converge_mesos_subscribed", "converge_mesos_offers_accepted_total",
		"converge_mesos_offers_declined_total", "converge_mesos_reconciliation_rounds_total",
		"converge_mesos_reconciliation_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered (have %v)", n, names)
		}
	}
}

func TestCallsWithoutSubscription(t *testing.T) {
	c, err := New(Config{Masters: []string{"m:1"}, FrameworkName: "x", State: nopStore{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Decline(ctx, []mesos.OfferID{{Value: "o"}}, 5); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Decline: %v", err)
	}
	if err := c.Acknowledge(ctx, mesos.TaskStatus{TaskID: mesos.TaskID{Value: "t"}}); err != nil {
		t.Fatalf("Acknowledge without uuid: %v, want a no-op", err)
	}
	if err := c.Kill(ctx, "t", "a"); err != nil {
		t.Fatalf("Kill while disconnected must queue: %v", err)
	}
	if c.kills.len() != 1 {
		t.Fatal("kill not tracked")
	}
	if c.Subscribed() || c.FrameworkID() != "" {
		t.Fatal("subscribed before Run")
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := ReadSecretFile(write("ok", "  top-secret\n")); err != nil || s != "top-secret" {
		t.Fatalf("got %q, %v", s, err)
	}
	for name, content := range map[string]string{"empty": " \n", "two": "a-secret\nb-secret\n"} {
		_, err := ReadSecretFile(write(name, content))
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if strings.Contains(err.Error(), "secret\n") || strings.Contains(err.Error(), "a-secret") {
			t.Fatalf("error shows the content: %v", err)
		}
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file: no error")
	}
}

// A master URL that is refused never has its password repeated in the error.
func TestBadMasterURLErrorsHideCredentials(t *testing.T) {
	for _, m := range []string{
		"ftp://user:pa55word@mesos:5050",      // wrong scheme
		"http://user:pa55word@mesos:5050/%zz", // does not parse
		"http://user:pa55word@:5050",          // no host
		"http://user:pa55word@mesos:5050",     // credentials in the URL
		"user:pa55word@mesos:5050/\x7f",       // control character
	} {
		_, err := normalizeMaster(m)
		if err == nil {
			t.Errorf("%q accepted", m)
			continue
		}
		if strings.Contains(err.Error(), "pa55word") {
			t.Errorf("%q: the error shows the password: %v", m, err)
		}
	}
}
