package v1alpha1

import (
	"regexp"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTemplateHash(t *testing.T) {
	base := valid().Spec
	h := TemplateHash(&base)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(h) {
		t.Fatalf("hash %q is not 16 hex characters", h)
	}
	// Pinned: the hash is stored with every task, so it must not drift
	// between versions; a change here rolls every cluster.
	if h != pinnedHash {
		t.Errorf("TemplateHash(valid spec) = %s, pinned %s", h, pinnedHash)
	}
	if again := TemplateHash(base.DeepCopy()); again != h {
		t.Errorf("hash not stable: %s vs %s", h, again)
	}

	same := map[string]func(s *ClusterSpec){
		"replicas":       func(s *ClusterSpec) { s.Replicas = ptr(int32(7)) },
		"role":           func(s *ClusterSpec) { s.Role = "other" },
		"placement":      func(s *ClusterSpec) { s.Placement = Placement{} },
		"update":         func(s *ClusterSpec) { s.Update.MaxUnavailable = ptr(int32(3)) },
		"timeout":        func(s *ClusterSpec) { s.Election.Timeout = &metav1.Duration{Duration: time.Minute * 5} },
		"cpus notation":  func(s *ClusterSpec) { s.Task.Resources.CPUs = qty("0.5") },
		"mem notation":   func(s *ClusterSpec) { s.Task.Resources.Mem = qty("536870912") },
		"empty env":      func(s *ClusterSpec) { s.Task.Env = map[string]string{"MYSQL_DATABASE": "orders"} },
		"empty uris nil": func(s *ClusterSpec) { s.Task.URIs = append([]URI{}, s.Task.URIs...) },
	}
	for name, mutate := range same {
		s := base.DeepCopy()
		mutate(s)
		if got := TemplateHash(s); got != h {
			t.Errorf("%s changed the hash", name)
		}
	}
	// nil and empty collections hash alike.
	a, b := base.DeepCopy(), base.DeepCopy()
	a.Task.Env, b.Task.Env = nil, map[string]string{}
	a.Task.URIs, b.Task.URIs = nil, []URI{}
	if TemplateHash(a) != TemplateHash(b) {
		t.Error("nil and empty env/uris hash differently")
	}

	differ := map[string]func(s *ClusterSpec){
		"command":          func(s *ClusterSpec) { s.Task.Command += " -v" },
		"env value":        func(s *ClusterSpec) { s.Task.Env["MYSQL_DATABASE"] = "x" },
		"env key":          func(s *ClusterSpec) { s.Task.Env["X"] = "orders" },
		"uri":              func(s *ClusterSpec) { s.Task.URIs[0].Cache = true },
		"cpus":             func(s *ClusterSpec) { s.Task.Resources.CPUs = qty("501m") },
		"mem":              func(s *ClusterSpec) { s.Task.Resources.Mem = qty("513Mi") },
		"disk":             func(s *ClusterSpec) { s.Task.Resources.Disk = nil },
		"ports":            func(s *ClusterSpec) { s.Task.Resources.Ports = 2 },
		"executor":         func(s *ClusterSpec) { s.Task.Executor = &ExecutorSpec{Command: "x"} },
		"positionCommand":  func(s *ClusterSpec) { s.Election.PositionCommand = "other" },
		"promoteCommand":   func(s *ClusterSpec) { s.Election.PromoteCommand = "" },
		"implied executor": func(s *ClusterSpec) { s.Election.Strategy = ElectionOrdinal },
		"healthCheck":      func(s *ClusterSpec) { s.Task.HealthCheck = &Check{Type: CheckCommand, Command: "true"} },
		"readinessCheck":   func(s *ClusterSpec) { s.Task.ReadinessCheck = &Check{Type: CheckTCP, TCP: &TCPCheck{}} },
	}
	for name, mutate := range differ {
		s := base.DeepCopy()
		mutate(s)
		if got := TemplateHash(s); got == h {
			t.Errorf("%s did not change the hash", name)
		}
	}
	if TemplateHash(nil) != TemplateHash(&ClusterSpec{}) {
		t.Error("nil spec")
	}
}

const pinnedHash = "92c0eb17fe27b60f"

func TestResourceScalars(t *testing.T) {
	cpus, mem, disk := ResourceScalars(Resources{CPUs: qty("250m"), Mem: qty("1Gi"), Disk: qty("512Mi")})
	if cpus != 0.25 || mem != 1024 || disk != 512 {
		t.Errorf("got %v %v %v", cpus, mem, disk)
	}
	if c, m, d := ResourceScalars(Resources{}); c != 0 || m != 0 || d != 0 {
		t.Errorf("unset: %v %v %v", c, m, d)
	}
}

func TestConditions(t *testing.T) {
	c := valid()
	c.Generation = 2
	if IsReady(c) || IsReady(nil) {
		t.Fatal("ready without a condition")
	}
	if FindCondition(c.Status.Conditions, ConditionReady) != nil {
		t.Fatal("found a condition in none")
	}
	if !SetCondition(&c.Status.Conditions, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Converged", ObservedGeneration: 1}) {
		t.Fatal("adding a condition reported no change")
	}
	if IsReady(c) {
		t.Error("ready for an older generation")
	}
	SetCondition(&c.Status.Conditions, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Converged", ObservedGeneration: 2})
	if !IsReady(c) {
		t.Error("not ready when Ready is True for the current generation")
	}
	first := FindCondition(c.Status.Conditions, ConditionReady).LastTransitionTime
	if first.IsZero() {
		t.Error("lastTransitionTime not set")
	}
	if SetCondition(&c.Status.Conditions, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Converged", ObservedGeneration: 2}) {
		t.Error("identical condition reported a change")
	}
	SetCondition(&c.Status.Conditions, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "MemberLost", ObservedGeneration: 2})
	if IsReady(c) {
		t.Error("ready when Ready is False")
	}
	SetCondition(&c.Status.Conditions, metav1.Condition{Type: ConditionStalled, Status: metav1.ConditionFalse, Reason: "OK"})
	if len(c.Status.Conditions) != 2 || FindCondition(c.Status.Conditions, ConditionStalled) == nil {
		t.Errorf("conditions = %+v", c.Status.Conditions)
	}
}
