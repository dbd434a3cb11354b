package executor

import (
	"reflect"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
)

func portsTask(id string, ranges ...mesos.Value_Range) *mesos.TaskInfo {
	return &mesos.TaskInfo{
		TaskID: mesos.TaskID{Value: id},
		Resources: []mesos.Resource{
			{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1}},
			{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: ranges}},
		},
	}
}

func TestLookupAndSetEnv(t *testing.T) {
	env := []string{"A=1", "B=2", "A=3"}
	if v, ok := lookupEnv(env, "A"); !ok || v != "3" {
		t.Fatalf("lookupEnv A = %q %v, want last value 3", v, ok)
	}
	if _, ok := lookupEnv(env, "AB"); ok {
		t.Fatal("lookupEnv found AB")
	}
	if v, ok := lookupEnv([]string{"E="}, "E"); !ok || v != "" {
		t.Fatalf("empty value: %q %v", v, ok)
	}
	got := setEnv(env, "A", "9")
	if want := []string{"B=2", "A=9"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("setEnv = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(env, []string{"A=1", "B=2", "A=3"}) {
		t.Fatalf("setEnv modified its input: %v", env)
	}
}

func TestTaskEnvDerivesPortsAndIDs(t *testing.T) {
	base := []string{"CONVERGE_NAMESPACE=ns", "CONVERGE_CLUSTER=db", "CONVERGE_ORDINAL=2", "PATH=/bin"}
	task := portsTask("ns.db.2.abcd1234", mesos.Value_Range{Begin: 31000, End: 31001}, mesos.Value_Range{Begin: 31005, End: 31005})
	env := taskEnv(base, task, "/sandbox")
	want := map[string]string{
		"CONVERGE_NAMESPACE": "ns",
		"CONVERGE_CLUSTER":   "db",
		"CONVERGE_ORDINAL":   "2",
		"CONVERGE_TASK_ID":   "ns.db.2.abcd1234",
		"MESOS_TASK_ID":      "ns.db.2.abcd1234",
		"PORT0":              "31000",
		"PORT1":              "31001",
		"PORT2":              "31005",
		"PORTS":              "31000,31001,31005",
		"MESOS_SANDBOX":      "/sandbox",
		"PATH":               "/bin",
	}
	for k, v := range want {
		if got, ok := lookupEnv(env, k); !ok || got != v {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := lookupEnv(env, "PORT3"); ok {
		t.Error("PORT3 set")
	}
	if _, ok := lookupEnv(env, EnvEpoch); ok {
		t.Error("task env has CONVERGE_EPOCH")
	}
}

func TestTaskEnvKeepsControllerValues(t *testing.T) {
	// The controller's contract wins over derived values.
	base := []string{"PORT0=4000", "PORTS=4000", "CONVERGE_TASK_ID=given", "MESOS_SANDBOX=/real"}
	env := taskEnv(base, portsTask("other", mesos.Value_Range{Begin: 31000, End: 31002}), "/sandbox")
	for k, v := range map[string]string{"PORT0": "4000", "PORTS": "4000", "CONVERGE_TASK_ID": "given", "MESOS_SANDBOX": "/real", "MESOS_TASK_ID": "other"} {
		if got, _ := lookupEnv(env, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, ok := lookupEnv(env, "PORT1"); ok {
		t.Error("PORT1 derived although the controller set PORT0")
	}
}

func TestTaskEnvHonoursCommandEnvironment(t *testing.T) {
	v := "x"
	task := &mesos.TaskInfo{TaskID: mesos.TaskID{Value: "t"}, Command: &mesos.CommandInfo{
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "FOO", Value: &v}}},
	}}
	env := taskEnv([]string{"FOO=old"}, task, "")
	if got, _ := lookupEnv(env, "FOO"); got != "x" {
		t.Fatalf("FOO = %q", got)
	}
}

func TestHookEnvHasEpoch(t *testing.T) {
	env := hookEnv([]string{"CONVERGE_EPOCH=1"}, portsTask("t"), "/s", 42)
	if got, _ := lookupEnv(env, EnvEpoch); got != "42" {
		t.Fatalf("CONVERGE_EPOCH = %q", got)
	}
	n := 0
	for _, kv := range env {
		if len(kv) > len(EnvEpoch) && kv[:len(EnvEpoch)+1] == EnvEpoch+"=" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("CONVERGE_EPOCH appears %d times", n)
	}
}

func TestTaskCommand(t *testing.T) {
	f := false
	tests := []struct {
		name string
		base []string
		task *mesos.TaskInfo
		want []string
	}{
		{"contract", []string{"CONVERGE_TASK_COMMAND=sleep 1"}, &mesos.TaskInfo{Command: &mesos.CommandInfo{Value: strp("other")}}, []string{"sh", "-c", "sleep 1"}},
		{"task shell", nil, &mesos.TaskInfo{Command: &mesos.CommandInfo{Value: strp("echo hi")}}, []string{"sh", "-c", "echo hi"}},
		{"blank contract falls back", []string{"CONVERGE_TASK_COMMAND=  "}, &mesos.TaskInfo{Command: &mesos.CommandInfo{Value: strp("true")}}, []string{"sh", "-c", "true"}},
		{"task argv", nil, &mesos.TaskInfo{Command: &mesos.CommandInfo{Shell: &f, Value: strp("/bin/echo"), Arguments: []string{"echo", "a", "b"}}}, []string{"/bin/echo", "a", "b"}},
		{"none", nil, &mesos.TaskInfo{}, nil},
		{"empty shell", nil, &mesos.TaskInfo{Command: &mesos.CommandInfo{Value: strp(" ")}}, nil},
	}
	for _, tt := range tests {
		got, ok := taskCommand(tt.base, tt.task)
		if ok != (tt.want != nil) || !reflect.DeepEqual(got.argv, tt.want) {
			t.Errorf("%s: got %v %v, want %v", tt.name, got.argv, ok, tt.want)
		}
	}
}

func strp(s string) *string { return &s }

func TestGrace(t *testing.T) {
	dur := func(d time.Duration) *mesos.KillPolicy {
		return &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(d)}}
	}
	e := newExecutor(config.Config{ExecutorShutdownGracePeriod: 5 * time.Second}, Options{Environ: []string{}})
	cases := []struct {
		name       string
		kill, task *mesos.KillPolicy
		shutdown   bool
		want       time.Duration
	}{
		{"default from shutdown grace", nil, nil, false, 4 * time.Second},
		{"task policy", nil, dur(7 * time.Second), false, 7 * time.Second},
		{"kill policy wins", dur(2 * time.Second), dur(7 * time.Second), false, 2 * time.Second},
		{"shutdown caps", nil, dur(7 * time.Second), true, 4 * time.Second},
		{"zero", dur(0), nil, false, 0},
	}
	for _, c := range cases {
		if got := e.grace(c.kill, c.task, c.shutdown); got != c.want {
			t.Errorf("%s: grace = %v, want %v", c.name, got, c.want)
		}
	}
	short := newExecutor(config.Config{ExecutorShutdownGracePeriod: time.Second}, Options{Environ: []string{}})
	if got := short.shutdownGrace(); got != 500*time.Millisecond {
		t.Errorf("1s shutdown grace gives %v, want 500ms", got)
	}
	none := newExecutor(config.Config{}, Options{Environ: []string{}})
	if got := none.shutdownGrace(); got != 3*time.Second {
		t.Errorf("no shutdown grace gives %v, want 3s", got)
	}
}

func TestNewUUID(t *testing.T) {
	a, b := newUUID(), newUUID()
	if len(a) != 16 || string(a) == string(b) {
		t.Fatalf("uuids %x %x", a, b)
	}
	if a[6]>>4 != 4 || a[8]>>6 != 2 {
		t.Fatalf("not a v4 uuid: %x", a)
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("abc", 5); got != "abc" {
		t.Fatalf("%q", got)
	}
	if got := truncate("abcdef", 3); got != "abc..." {
		t.Fatalf("%q", got)
	}
	if got := truncate("aé", 2); got != "a..." {
		t.Fatalf("cut inside a rune: %q", got)
	}
}
