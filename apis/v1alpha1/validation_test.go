package v1alpha1

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func ptr[T any](v T) *T { return &v }

func qty(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

// valid returns a defaulted cluster that passes validation.
func valid() *Cluster {
	c := &Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-db", Labels: map[string]string{"team": "payments"}},
		Spec: ClusterSpec{
			Replicas: ptr(int32(3)),
			Task: TaskSpec{
				Command:   "exec mysqld --port=$PORT0",
				Env:       map[string]string{"MYSQL_DATABASE": "orders"},
				URIs:      []URI{{Value: "http://artifacts/mysql.tgz", Extract: true}},
				Resources: Resources{CPUs: qty("500m"), Mem: qty("512Mi"), Disk: qty("1Gi"), Ports: 1},
			},
			Placement: Placement{Spread: SpreadHostname, Constraints: []Constraint{{Attribute: "rack", Operator: OpGroupBy}}},
			Election:  Election{Strategy: ElectionPosition, PositionCommand: "cat pos", PromoteCommand: "promote"},
		},
	}
	SetDefaults(c)
	return c
}

func TestSetDefaults(t *testing.T) {
	c := &Cluster{}
	SetDefaults(c)
	if c.APIVersion != APIVersion || c.Kind != Kind {
		t.Errorf("type meta = %q %q", c.APIVersion, c.Kind)
	}
	if c.Namespace != "default" {
		t.Errorf("namespace = %q", c.Namespace)
	}
	if c.Spec.Replicas == nil || *c.Spec.Replicas != 1 {
		t.Errorf("replicas = %v", c.Spec.Replicas)
	}
	if c.Spec.Role != "*" {
		t.Errorf("role = %q", c.Spec.Role)
	}
	if c.Spec.Election.Strategy != ElectionNone {
		t.Errorf("strategy = %q", c.Spec.Election.Strategy)
	}
	if c.Spec.Election.Timeout == nil || c.Spec.Election.Timeout.Duration != 60*time.Second {
		t.Errorf("timeout = %v", c.Spec.Election.Timeout)
	}
	if c.Spec.Update.MaxUnavailable == nil || *c.Spec.Update.MaxUnavailable != 1 {
		t.Errorf("maxUnavailable = %v", c.Spec.Update.MaxUnavailable)
	}
	if u := c.Spec.Update; u.MinReadySeconds == nil || *u.MinReadySeconds != 10 || u.ProgressDeadline == nil || u.ProgressDeadline.Duration != 10*time.Minute {
		t.Errorf("minReadySeconds, progressDeadline = %v, %v", u.MinReadySeconds, u.ProgressDeadline)
	}
	if r := c.Spec.Restart; r.Backoff == nil || r.Backoff.Duration != time.Second || r.BackoffFactor == nil || *r.BackoffFactor != 2 ||
		r.MaxBackoff == nil || r.MaxBackoff.Duration != 5*time.Minute || r.ResetAfter == nil || r.ResetAfter.Duration != 10*time.Minute {
		t.Errorf("restart = %+v", r)
	}
	if c.Spec.Placement.Spread != SpreadNone {
		t.Errorf("spread = %q", c.Spec.Placement.Spread)
	}
	// Constraints and resources have no defaults.
	if len(c.Spec.Placement.Constraints) != 0 || c.Spec.Task.Resources.CPUs != nil || c.Spec.Task.Resources.Disk != nil {
		t.Errorf("unexpected defaults: %+v", c.Spec)
	}

	// Set values are kept, including explicit zeros, and defaulting is idempotent.
	set := &Cluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: "other/v1", Kind: "Other"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod"},
		Spec: ClusterSpec{
			Replicas: ptr(int32(0)), Role: "db",
			Election: Election{Strategy: ElectionOrdinal, Timeout: &metav1.Duration{Duration: 5 * time.Second}},
			Update:   Update{MaxUnavailable: ptr(int32(2))},
		},
	}
	SetDefaults(set)
	SetDefaults(set)
	if set.APIVersion != "other/v1" || set.Kind != "Other" || set.Namespace != "prod" || *set.Spec.Replicas != 0 ||
		set.Spec.Role != "db" || set.Spec.Election.Strategy != ElectionOrdinal ||
		set.Spec.Election.Timeout.Duration != 5*time.Second || *set.Spec.Update.MaxUnavailable != 2 {
		t.Errorf("SetDefaults overwrote set fields: %+v", set)
	}
	SetDefaults(nil) // must not panic
}

// TestSetCheckDefaults: Mesos's HealthCheck and CheckInfo defaults
// (include/mesos/v1/mesos.proto: delay 15, interval 10, timeout 20, grace
// 10, consecutive_failures 3; CheckInfo has no grace or failures), and the
// type taken from the one part that is set.
func TestSetCheckDefaults(t *testing.T) {
	c := valid()
	c.Spec.Task.HealthCheck = &Check{Command: "true"}
	c.Spec.Task.ReadinessCheck = &Check{HTTP: &HTTPCheck{}}
	SetDefaults(c)
	h, r := c.Spec.Task.HealthCheck, c.Spec.Task.ReadinessCheck
	if h.Type != CheckCommand || h.Delay.Duration != 15*time.Second || h.Interval.Duration != 10*time.Second ||
		h.Timeout.Duration != 20*time.Second || h.GracePeriod.Duration != 10*time.Second || *h.ConsecutiveFailures != 3 {
		t.Errorf("health check defaults: %+v", h)
	}
	if r.Type != CheckHTTP || r.Delay.Duration != 15*time.Second || r.Interval.Duration != 10*time.Second ||
		r.Timeout.Duration != 20*time.Second || r.GracePeriod != nil || r.ConsecutiveFailures != nil {
		t.Errorf("readiness check defaults: %+v", r)
	}
	// Two parts set: no type is guessed, validation says so.
	c.Spec.Task.HealthCheck = &Check{Command: "true", TCP: &TCPCheck{}}
	SetDefaults(c)
	if c.Spec.Task.HealthCheck.Type != "" {
		t.Errorf("type guessed from two parts: %q", c.Spec.Task.HealthCheck.Type)
	}
}

func TestValidateValid(t *testing.T) {
	if errs := Validate(valid()); len(errs) != 0 {
		t.Fatalf("valid cluster: %v", errs.ToAggregate())
	}
	// A bare minimum, defaulted.
	c := &Cluster{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: ClusterSpec{Task: TaskSpec{
		Command: "sleep 1", Resources: Resources{CPUs: qty("1m"), Mem: qty("1Mi")},
	}}}
	SetDefaults(c)
	if errs := Validate(c); len(errs) != 0 {
		t.Fatalf("minimal cluster: %v", errs.ToAggregate())
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 64)
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	tests := []struct {
		name   string
		mutate func(c *Cluster)
		// want[i] describes errs[i]: substrings separated by " && " that it
		// must all contain.
		want []string
	}{
		{"wrong apiVersion", func(c *Cluster) { c.APIVersion = "v1" }, []string{`apiVersion: Unsupported value: "v1": supported values: "converge.io/v1alpha1"`}},
		{"wrong kind", func(c *Cluster) { c.Kind = "Pod" }, []string{`kind: Unsupported value: "Pod"`}},
		{"no name", func(c *Cluster) { c.Name = "" }, []string{"metadata.name: Required value"}},
		{"bad name", func(c *Cluster) { c.Name = "Orders_DB" }, []string{`metadata.name: Invalid value: "Orders_DB": a lowercase RFC 1123 label`}},
		{"name with dot", func(c *Cluster) { c.Name = "a.b" }, []string{`metadata.name: Invalid value: "a.b": must not contain dots`}},
		{"name with slash", func(c *Cluster) { c.Name = "../x" }, []string{`metadata.name: Invalid value: "../x"`}},
		{"name too long", func(c *Cluster) { c.Name = long }, []string{"metadata.name: Invalid value && must be no more than 63 characters"}},
		{"name 63 ok", func(c *Cluster) { c.Name = long[:63] }, nil},
		{"bad namespace", func(c *Cluster) { c.Namespace = "Prod" }, []string{`metadata.namespace: Invalid value: "Prod"`}},
		{"empty namespace", func(c *Cluster) { c.Namespace = "" }, []string{"metadata.namespace: Required value"}},
		{"bad label key", func(c *Cluster) { c.Labels = map[string]string{"bad key": "x"} }, []string{`metadata.labels: Invalid value: "bad key"`}},
		{"bad label value", func(c *Cluster) { c.Labels = map[string]string{"k": "no spaces"} }, []string{`metadata.labels: Invalid value: "no spaces"`}},
		{"bad annotation", func(c *Cluster) { c.Annotations = map[string]string{"-x": ""} }, []string{"metadata.annotations: Invalid value"}},
		{"replicas -1", func(c *Cluster) { c.Spec.Replicas = ptr(int32(-1)) }, []string{"spec.replicas: Invalid value: -1: must be between 0 and 1000"}},
		{"replicas 1001", func(c *Cluster) { c.Spec.Replicas = ptr(int32(1001)) }, []string{"spec.replicas: Invalid value: 1001: must be between 0 and 1000"}},
		{"replicas 0 ok", func(c *Cluster) { c.Spec.Replicas = ptr(int32(0)) }, nil},
		{"replicas 1000 ok", func(c *Cluster) { c.Spec.Replicas = ptr(int32(1000)) }, nil},
		{"role hierarchical ok", func(c *Cluster) { c.Spec.Role = "eng/db" }, nil},
		{"role empty", func(c *Cluster) { c.Spec.Role = "" }, []string{"spec.role: Required value"}},
		{"role dotdot", func(c *Cluster) { c.Spec.Role = "a/.." }, []string{`spec.role: Invalid value: "a/..": must not have a component "." or ".."`}},
		{"role dash", func(c *Cluster) { c.Spec.Role = "-db" }, []string{"starting with '-'"}},
		{"role space", func(c *Cluster) { c.Spec.Role = "my db" }, []string{"must not contain whitespace"}},
		{"role trailing slash", func(c *Cluster) { c.Spec.Role = "db/" }, []string{"empty component"}},
		{"no command", func(c *Cluster) { c.Spec.Task.Command = "  " }, []string{"spec.task.command: Required value"}},
		{"bad env name", func(c *Cluster) { c.Spec.Task.Env = map[string]string{"1BAD": "x", "OK": "y"} }, []string{`spec.task.env[1BAD]: Invalid value: "1BAD"`}},
		{"env name with =", func(c *Cluster) { c.Spec.Task.Env = map[string]string{"A=B": "x"} }, []string{`spec.task.env[A=B]`}},
		{"reserved env", func(c *Cluster) { c.Spec.Task.Env = map[string]string{"CONVERGE_ORDINAL": "1"} }, []string{"spec.task.env[CONVERGE_ORDINAL] && reserved"}},
		{"empty uri", func(c *Cluster) { c.Spec.Task.URIs = []URI{{Value: "a"}, {Value: ""}} }, []string{"spec.task.uris[1].value: Required value"}},
		{"user ok", func(c *Cluster) { c.Spec.Task.User = "postgres" }, nil},
		{"user with dot and dash ok", func(c *Cluster) { c.Spec.Task.User = "svc.db-1_a" }, nil},
		{"user leading dash", func(c *Cluster) { c.Spec.Task.User = "-x" }, []string{`spec.task.user: Invalid value: "-x": must be a POSIX user name`}},
		{"user with colon", func(c *Cluster) { c.Spec.Task.User = "a:b" }, []string{`spec.task.user: Invalid value: "a:b"`}},
		{"user all digits", func(c *Cluster) { c.Spec.Task.User = "1000" }, []string{`spec.task.user: Invalid value: "1000" && not all digits`}},
		{"user too long", func(c *Cluster) { c.Spec.Task.User = strings.Repeat("u", 33) }, []string{"spec.task.user: Invalid value"}},
		{"user 32 ok", func(c *Cluster) { c.Spec.Task.User = strings.Repeat("u", 32) }, nil},
		{"kill grace negative", func(c *Cluster) { c.Spec.Task.KillGracePeriod = dur(-time.Second) }, []string{`spec.task.killGracePeriod: Invalid value: "-1s": must be between 0s and 1h0m0s`}},
		{"volumes ok", func(c *Cluster) {
			c.Spec.Role = "converge"
			c.Spec.Task.Volumes = []Volume{{Name: "data", ContainerPath: "data", Size: qty("1Gi")}, {Name: "wal", ContainerPath: "x/wal", Size: qty("64Mi")}}
		}, nil},
		{"volumes under role *", func(c *Cluster) {
			c.Spec.Task.Volumes = []Volume{{Name: "data", ContainerPath: "data", Size: qty("1Gi")}}
		}, []string{`spec.task.volumes: Invalid value: 1: persistent volumes live on resources reserved for the cluster's role, and Mesos cannot reserve for role "*": set spec.role`}},
		{"volume bad fields", func(c *Cluster) {
			c.Spec.Role = "converge"
			c.Spec.Task.Volumes = []Volume{{Name: "Data", ContainerPath: "/var/data", Size: qty("0")}, {Name: "b", ContainerPath: "../up"}, {Name: "b", ContainerPath: "up/.."}}
		}, []string{
			`spec.task.volumes[0].name: Invalid value: "Data"`,
			`spec.task.volumes[0].containerPath: Invalid value: "/var/data": must be a relative path inside the sandbox`,
			`spec.task.volumes[0].size: Invalid value: "0": must be greater than 0`,
			`spec.task.volumes[1].containerPath: Invalid value: "../up"`,
			`spec.task.volumes[1].size: Required value`,
			`spec.task.volumes[2].name: Duplicate value: "b"`,
			`spec.task.volumes[2].containerPath: Invalid value: "up/.."`,
			`spec.task.volumes[2].size: Required value`,
		}},
		{"replaceAfter negative", func(c *Cluster) { c.Spec.Placement.ReplaceAfter = dur(-time.Second) }, []string{`spec.placement.replaceAfter: Invalid value: "-1s": must be between 0s and 168h0m0s`}},
		{"kill grace too long", func(c *Cluster) { c.Spec.Task.KillGracePeriod = dur(2 * time.Hour) }, []string{`spec.task.killGracePeriod: Invalid value: "2h0m0s"`}},
		{"kill grace 0 ok", func(c *Cluster) { c.Spec.Task.KillGracePeriod = dur(0) }, nil},
		{"kill grace 1h ok", func(c *Cluster) { c.Spec.Task.KillGracePeriod = dur(time.Hour) }, nil},
		{"health check ok", func(c *Cluster) {
			c.Spec.Task.HealthCheck = &Check{Type: CheckHTTP, HTTP: &HTTPCheck{Path: "/health"}, Interval: dur(100 * time.Millisecond), Timeout: dur(0)}
			c.Spec.Task.ReadinessCheck = &Check{Type: CheckCommand, Command: "test -f ready"}
		}, nil},
		{"check without type", func(c *Cluster) { c.Spec.Task.HealthCheck = &Check{} },
			[]string{`spec.task.healthCheck.type: Required value: one of command, http or tcp`}},
		{"check bad type", func(c *Cluster) { c.Spec.Task.ReadinessCheck = &Check{Type: "exec", Command: "x"} },
			[]string{`spec.task.readinessCheck.type: Unsupported value: "exec": supported values: "command", "http", "tcp"`}},
		{"check type without its part", func(c *Cluster) { c.Spec.Task.HealthCheck = &Check{Type: CheckTCP, Command: "x"} },
			[]string{`spec.task.healthCheck.tcp: Required value: a tcp check needs tcp`, `spec.task.healthCheck.command: Forbidden: only used by type command (type is tcp)`}},
		{"check blank command", func(c *Cluster) { c.Spec.Task.HealthCheck = &Check{Type: CheckCommand, Command: "  "} },
			[]string{`spec.task.healthCheck.command: Required value`}},
		{"check http path, scheme and port", func(c *Cluster) {
			c.Spec.Task.HealthCheck = &Check{Type: CheckHTTP, HTTP: &HTTPCheck{PortIndex: 1, Path: "health", Scheme: "ftp"}}
		}, []string{`spec.task.healthCheck.http.portIndex: Invalid value: 1: must be the index of one of the member's 1 ports (resources.ports): 0 to 0`,
			`spec.task.healthCheck.http.path: Invalid value: "health": must start with '/'`,
			`spec.task.healthCheck.http.scheme: Unsupported value: "ftp"`}},
		{"check tcp without ports", func(c *Cluster) {
			c.Spec.Task.Resources.Ports = 0
			c.Spec.Task.ReadinessCheck = &Check{TCP: &TCPCheck{}, Type: CheckTCP}
		}, []string{`spec.task.readinessCheck.tcp.portIndex: Invalid value: 0: must be the index of one of the member's 0 ports`}},
		{"check times", func(c *Cluster) {
			c.Spec.Task.HealthCheck = &Check{Type: CheckCommand, Command: "x", Delay: dur(-time.Second), Interval: dur(time.Millisecond),
				Timeout: dur(2 * time.Hour), GracePeriod: dur(-1), ConsecutiveFailures: ptr(int32(0))}
		}, []string{`spec.task.healthCheck.delay: Invalid value: "-1s": must be between 0s and 1h0m0s`,
			`spec.task.healthCheck.interval: Invalid value: "1ms": must be between 100ms and 1h0m0s`,
			`spec.task.healthCheck.timeout: Invalid value: "2h0m0s"`,
			`spec.task.healthCheck.gracePeriod: Invalid value: "-1ns"`,
			`spec.task.healthCheck.consecutiveFailures: Invalid value: 0: must be between 1 and 1000`}},
		{"readiness check takes no grace or failures", func(c *Cluster) {
			c.Spec.Task.ReadinessCheck = &Check{Type: CheckCommand, Command: "x", GracePeriod: dur(time.Second), ConsecutiveFailures: ptr(int32(2))}
		}, []string{`spec.task.readinessCheck.gracePeriod: Forbidden: only health checks have one`,
			`spec.task.readinessCheck.consecutiveFailures: Forbidden: only health checks have one`}},
		{"cpus missing", func(c *Cluster) { c.Spec.Task.Resources.CPUs = nil }, []string{"spec.task.resources.cpus: Required value"}},
		{"cpus zero", func(c *Cluster) { c.Spec.Task.Resources.CPUs = qty("0") }, []string{`spec.task.resources.cpus: Invalid value: "0": must be greater than 0`}},
		{"cpus negative", func(c *Cluster) { c.Spec.Task.Resources.CPUs = qty("-1") }, []string{`spec.task.resources.cpus: Invalid value: "-1": must be greater than 0`}},
		{"cpus too fine", func(c *Cluster) { c.Spec.Task.Resources.CPUs = qty("100u") }, []string{"spec.task.resources.cpus && must be at least 1m cores"}},
		{"cpus too many", func(c *Cluster) { c.Spec.Task.Resources.CPUs = qty("1001") }, []string{`spec.task.resources.cpus: Invalid value: "1001": must be at most 1k cores`}},
		{"cpus 1000 ok", func(c *Cluster) { c.Spec.Task.Resources.CPUs = qty("1000") }, nil},
		{"mem missing", func(c *Cluster) { c.Spec.Task.Resources.Mem = nil }, []string{"spec.task.resources.mem: Required value"}},
		{"mem zero", func(c *Cluster) { c.Spec.Task.Resources.Mem = qty("0") }, []string{"spec.task.resources.mem && must be greater than 0"}},
		{"mem tiny", func(c *Cluster) { c.Spec.Task.Resources.Mem = qty("1Ki") }, []string{"spec.task.resources.mem && must be at least 1Mi"}},
		{"mem too much", func(c *Cluster) { c.Spec.Task.Resources.Mem = qty("17Ti") }, []string{"spec.task.resources.mem && must be at most 16Ti"}},
		{"mem 16Ti ok", func(c *Cluster) { c.Spec.Task.Resources.Mem = qty("16Ti") }, nil},
		{"disk missing ok", func(c *Cluster) { c.Spec.Task.Resources.Disk = nil }, nil},
		{"disk zero ok", func(c *Cluster) { c.Spec.Task.Resources.Disk = qty("0") }, nil},
		{"disk negative", func(c *Cluster) { c.Spec.Task.Resources.Disk = qty("-1Gi") }, []string{"spec.task.resources.disk && must not be negative"}},
		{"disk too much", func(c *Cluster) { c.Spec.Task.Resources.Disk = qty("2Pi") }, []string{"spec.task.resources.disk && must be at most 1Pi"}},
		{"ports negative", func(c *Cluster) { c.Spec.Task.Resources.Ports = -1 }, []string{"spec.task.resources.ports: Invalid value: -1: must be between 0 and 64"}},
		{"ports 65", func(c *Cluster) { c.Spec.Task.Resources.Ports = 65 }, []string{"spec.task.resources.ports: Invalid value: 65"}},
		{"ports 64 ok", func(c *Cluster) { c.Spec.Task.Resources.Ports = 64 }, nil},
		{"executor without command", func(c *Cluster) { c.Spec.Task.Executor = &ExecutorSpec{URIs: []URI{{}}} }, []string{"spec.task.executor.command: Required value", "spec.task.executor.uris[0].value: Required value"}},
		{"executor ok", func(c *Cluster) { c.Spec.Task.Executor = &ExecutorSpec{Command: "./converge executor"} }, nil},
		{"bad spread", func(c *Cluster) { c.Spec.Placement.Spread = "rack" }, []string{`spec.placement.spread: Unsupported value: "rack": supported values: "none", "hostname"`}},
		{"constraint no attribute", func(c *Cluster) { c.Spec.Placement.Constraints = []Constraint{{Operator: OpUnique}} }, []string{"spec.placement.constraints[0].attribute: Required value"}},
		{"constraint no operator", func(c *Cluster) { c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack"}} }, []string{"spec.placement.constraints[0].operator: Required value"}},
		{"constraint bad operator", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: "unique"}}
		}, []string{`spec.placement.constraints[0].operator: Unsupported value: "unique"`}},
		{"unique with value", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{{Attribute: "hostname", Operator: OpUnique, Value: "x"}}
		}, []string{"spec.placement.constraints[0].value: Forbidden"}},
		{"cluster without value", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpCluster}}
		}, []string{"spec.placement.constraints[0].value: Required value"}},
		{"like without value", func(c *Cluster) { c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpLike}} }, []string{"spec.placement.constraints[0].value: Required value"}},
		{"unlike bad regexp", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpUnlike, Value: "r[1-"}}
		}, []string{`spec.placement.constraints[0].value: Invalid value: "r[1-": must be a valid regular expression`}},
		{"max_per missing", func(c *Cluster) { c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpMaxPer}} }, []string{"constraints[0].value: Required value"}},
		{"max_per zero", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpMaxPer, Value: "0"}}
		}, []string{`constraints[0].value: Invalid value: "0": must be a positive integer`}},
		{"max_per text", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpMaxPer, Value: "two"}}
		}, []string{"must be a positive integer"}},
		{"group_by bad", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpGroupBy, Value: "-3"}}
		}, []string{"must be empty or a positive integer"}},
		{"constraints ok", func(c *Cluster) {
			c.Spec.Placement.Constraints = []Constraint{
				{Attribute: "hostname", Operator: OpUnique},
				{Attribute: "rack", Operator: OpCluster, Value: "r1"},
				{Attribute: "rack", Operator: OpGroupBy, Value: "3"},
				{Attribute: "zone", Operator: OpLike, Value: "us-.*"},
				{Attribute: "zone", Operator: OpUnlike, Value: "eu-.*"},
				{Attribute: "hostname", Operator: OpMaxPer, Value: "2"},
			}
		}, nil},
		{"bad strategy", func(c *Cluster) { c.Spec.Election.Strategy = "raft" }, []string{`spec.election.strategy: Unsupported value: "raft": supported values: "none", "ordinal", "position"`}},
		{"position without command", func(c *Cluster) { c.Spec.Election.PositionCommand = "" }, []string{"spec.election.positionCommand: Required value"}},
		{"positionCommand with ordinal", func(c *Cluster) { c.Spec.Election.Strategy = ElectionOrdinal }, []string{"spec.election.positionCommand: Forbidden"}},
		{"promoteCommand with none", func(c *Cluster) {
			c.Spec.Election = Election{Strategy: ElectionNone, PromoteCommand: "x", Timeout: c.Spec.Election.Timeout}
		}, []string{"spec.election.promoteCommand: Forbidden"}},
		{"ordinal with promote ok", func(c *Cluster) { c.Spec.Election.Strategy = ElectionOrdinal; c.Spec.Election.PositionCommand = "" }, nil},
		{"timeout short", func(c *Cluster) { c.Spec.Election.Timeout = &metav1.Duration{Duration: 500 * time.Millisecond} }, []string{`spec.election.timeout: Invalid value: "500ms": must be between 1s and 1h`}},
		{"timeout long", func(c *Cluster) { c.Spec.Election.Timeout = &metav1.Duration{Duration: 2 * time.Hour} }, []string{`spec.election.timeout: Invalid value: "2h0m0s"`}},
		{"timeout bounds ok", func(c *Cluster) { c.Spec.Election.Timeout = &metav1.Duration{Duration: time.Hour} }, nil},
		{"follow and demote hooks with position ok", func(c *Cluster) { c.Spec.Election.FollowCommand, c.Spec.Election.DemoteCommand = "f", "d" }, nil},
		{"follow and demote hooks need position", func(c *Cluster) {
			c.Spec.Election.Strategy, c.Spec.Election.PositionCommand = ElectionOrdinal, ""
			c.Spec.Election.FollowCommand, c.Spec.Election.DemoteCommand = "f", "d"
		}, []string{"spec.election.followCommand: Forbidden", "spec.election.demoteCommand: Forbidden"}},
		{"lease short", func(c *Cluster) { c.Spec.Election.LeaseDuration = &metav1.Duration{Duration: time.Second} }, []string{`spec.election.leaseDuration: Invalid value: "1s": must be between 3s and 5m`}},
		{"maximumLagOnFailover 0 ok", func(c *Cluster) { c.Spec.Election.MaximumLagOnFailover = ptr(int64(0)) }, nil},
		{"maximumLagOnFailover negative", func(c *Cluster) { c.Spec.Election.MaximumLagOnFailover = ptr(int64(-1)) }, []string{"spec.election.maximumLagOnFailover: Invalid value: -1: must be 0 or more"}},
		{"maximumLagOnFailover needs position", func(c *Cluster) {
			c.Spec.Election.Strategy, c.Spec.Election.PositionCommand = ElectionOrdinal, ""
			c.Spec.Election.MaximumLagOnFailover = ptr(int64(1 << 20))
		}, []string{"spec.election.maximumLagOnFailover: Forbidden: only used by strategy position"}},
		{"maxUnavailable 0", func(c *Cluster) { c.Spec.Update.MaxUnavailable = ptr(int32(0)) }, []string{"spec.update.maxUnavailable: Invalid value: 0: must be between 1 and 1000"}},
		{"minReadySeconds 0 ok", func(c *Cluster) { c.Spec.Update.MinReadySeconds = ptr(int32(0)) }, nil},
		{"minReadySeconds -1", func(c *Cluster) { c.Spec.Update.MinReadySeconds = ptr(int32(-1)) }, []string{"spec.update.minReadySeconds: Invalid value: -1: must be between 0 and 3600"}},
		{"progressDeadline not above minReadySeconds", func(c *Cluster) {
			c.Spec.Update.MinReadySeconds = ptr(int32(30))
			c.Spec.Update.ProgressDeadline = dur(30 * time.Second)
		}, []string{`spec.update.progressDeadline: Invalid value: "30s": must be longer than minReadySeconds (30s)`}},
		{"progressDeadline 1s ok with minReadySeconds 0", func(c *Cluster) {
			c.Spec.Update.MinReadySeconds = ptr(int32(0))
			c.Spec.Update.ProgressDeadline = dur(time.Second)
		}, nil},
		{"restart backoff 0s ok", func(c *Cluster) { c.Spec.Restart.Backoff = dur(0) }, nil},
		{"restart backoff negative", func(c *Cluster) { c.Spec.Restart.Backoff = dur(-time.Second) }, []string{`spec.restart.backoff: Invalid value: "-1s": must be between 0s and 1h0m0s`}},
		{"restart backoffFactor below 1", func(c *Cluster) { c.Spec.Restart.BackoffFactor = ptr(0.5) }, []string{"spec.restart.backoffFactor: Invalid value: 0.5: must be between 1 and 10"}},
		{"restart backoffFactor 1.15 ok", func(c *Cluster) { c.Spec.Restart.BackoffFactor = ptr(1.15) }, nil},
		{"restart maxBackoff below backoff", func(c *Cluster) {
			c.Spec.Restart.Backoff = dur(time.Minute)
			c.Spec.Restart.MaxBackoff = dur(time.Second)
		},
			[]string{`spec.restart.maxBackoff: Invalid value: "1s": must not be shorter than backoff (1m0s)`}},
		{"restart maxBackoff above 1h", func(c *Cluster) { c.Spec.Restart.MaxBackoff = dur(2 * time.Hour) }, []string{`spec.restart.maxBackoff: Invalid value: "2h0m0s": must be between 0s and 1h0m0s`}},
		{"restart resetAfter 0", func(c *Cluster) { c.Spec.Restart.ResetAfter = dur(0) }, []string{`spec.restart.resetAfter: Invalid value: "0s": must be between 1s and 24h0m0s`}},
		{"everything at once", func(c *Cluster) {
			c.Name = "Bad"
			c.Spec.Replicas = ptr(int32(-1))
			c.Spec.Task.Command = ""
			c.Spec.Task.Resources.Mem = nil
			c.Spec.Election.Strategy = "x"
		}, []string{"metadata.name", "spec.replicas", "spec.task.command", "spec.task.resources.mem", "spec.election.strategy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(c)
			errs := Validate(c)
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), joinErrs(errs))
			}
			for i, w := range tt.want {
				for _, part := range strings.Split(w, " && ") {
					if !strings.Contains(errs[i].Error(), part) {
						t.Errorf("error %d %q does not contain %q", i, errs[i].Error(), part)
					}
				}
			}
		})
	}
}

func joinErrs(errs field.ErrorList) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "orders-db", "0", "a-1", strings.Repeat("x", 63)} {
		if errs := ValidateName(ok); len(errs) != 0 {
			t.Errorf("ValidateName(%q) = %v", ok, errs)
		}
	}
	for _, bad := range []string{"", "A", "a_b", "a.b", "..", ".", "a/b", "/", "a\x00b", "-a", "a-", " a", strings.Repeat("x", 64)} {
		if errs := ValidateName(bad); len(errs) == 0 {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
}

func TestValidateNil(t *testing.T) {
	if errs := Validate(nil); len(errs) != 1 {
		t.Fatalf("Validate(nil) = %v", errs)
	}
}
