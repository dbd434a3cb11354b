package v1alpha1

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Limits enforced by Validate.
const (
	MaxReplicas         = 1000
	MaxPorts            = 64
	MinElectionTimeout  = time.Second
	MaxElectionTimeout  = time.Hour
	MinLeaseDuration    = 3 * time.Second
	MaxLeaseDuration    = 5 * time.Minute
	MaxMaxUnavailable   = MaxReplicas
	MaxMinReadySeconds  = 3600
	MaxProgressDeadline = 7 * 24 * time.Hour
	MaxRestartBackoff   = time.Hour
	MaxBackoffFactor    = 10
	MaxResetAfter       = 24 * time.Hour
	MaxKillGracePeriod  = time.Hour
	// Checks: at most an hour for any of their times; an interval of at
	// least 100ms, so a check never spins.
	MaxCheckTime           = time.Hour
	MinCheckInterval       = 100 * time.Millisecond
	MaxConsecutiveFailures = 1000
	MaxVolumes             = 16
	MaxReplaceAfter        = 7 * 24 * time.Hour
	// ReservedEnvPrefix is the prefix of the variables converge itself sets
	// (CONVERGE_NAMESPACE, CONVERGE_CLUSTER, CONVERGE_ORDINAL, CONVERGE_EPOCH).
	ReservedEnvPrefix = "CONVERGE_"
)

// Resource ceilings and floors. Mesos accounts scalars with three decimal
// places, cpus in cores and mem/disk in MiB, so anything finer rounds to zero.
var (
	MinCPUs = resource.MustParse("1m")
	MaxCPUs = resource.MustParse("1000")
	MinMem  = resource.MustParse("1Mi")
	MaxMem  = resource.MustParse("16Ti")
	MaxDisk = resource.MustParse("1Pi")
)

// Strategies, spreads and operators accepted by Validate.
var (
	ElectionStrategies  = []string{ElectionNone, ElectionOrdinal, ElectionPosition}
	SpreadValues        = []string{SpreadNone, SpreadHostname}
	ConstraintOperators = []string{OpUnique, OpCluster, OpGroupBy, OpLike, OpUnlike, OpMaxPer}
	CheckTypes          = []string{CheckCommand, CheckHTTP, CheckTCP}
	HTTPSchemes         = []string{"http", "https"}
)

// ValidateName reports why name cannot be a cluster or namespace name: it must
// be a DNS-1123 label (lowercase alphanumerics and '-', at most 63 characters),
// which also keeps it from escaping a store key (no '/', '..' or NUL). An empty
// result means the name is valid.
func ValidateName(name string) []string {
	if name == "" {
		return []string{"must not be empty"}
	}
	return validation.IsDNS1123Label(name)
}

// Validate checks a defaulted Cluster (see SetDefaults) and returns every
// problem at once, each with its field path (spec.task.resources.mem, ...).
// Status is not validated: it is written by the controller only.
func Validate(c *Cluster) field.ErrorList {
	if c == nil {
		return field.ErrorList{field.Required(field.NewPath(""), "cluster is nil")}
	}
	var errs field.ErrorList
	if c.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{APIVersion}))
	}
	if c.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{Kind}))
	}
	errs = append(errs, apivalidation.ValidateObjectMetaAccessor(&c.ObjectMeta, true, validateNameFunc, field.NewPath("metadata"))...)
	errs = append(errs, validateSpec(&c.Spec, field.NewPath("spec"))...)
	return errs
}

// validateNameFunc adapts ValidateName to apimachinery's ObjectMeta validation.
func validateNameFunc(name string, prefix bool) []string {
	if prefix {
		// generateName: a prefix leaves room for the generated suffix.
		return validation.IsDNS1123Label(name + "x")
	}
	return ValidateName(name)
}

func validateSpec(s *ClusterSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Replicas != nil && (*s.Replicas < 0 || *s.Replicas > MaxReplicas) {
		errs = append(errs, field.Invalid(p.Child("replicas"), *s.Replicas, fmt.Sprintf("must be between 0 and %d", MaxReplicas)))
	}
	errs = append(errs, validateRole(s.Role, p.Child("role"))...)
	errs = append(errs, validateTask(&s.Task, p.Child("task"))...)
	errs = append(errs, validateVolumes(s, p.Child("task", "volumes"))...)
	errs = append(errs, validatePlacement(&s.Placement, p.Child("placement"))...)
	errs = append(errs, validateElection(&s.Election, p.Child("election"))...)
	errs = append(errs, validateUpdate(&s.Update, p.Child("update"))...)
	errs = append(errs, validateRestart(&s.Restart, p.Child("restart"))...)
	return errs
}

func validateUpdate(u *Update, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m := u.MaxUnavailable; m != nil && (*m < 1 || *m > MaxMaxUnavailable) {
		errs = append(errs, field.Invalid(p.Child("maxUnavailable"), *m, fmt.Sprintf("must be between 1 and %d", MaxMaxUnavailable)))
	}
	minReady := time.Duration(0)
	if m := u.MinReadySeconds; m != nil {
		minReady = time.Duration(*m) * time.Second
		if *m < 0 || *m > MaxMinReadySeconds {
			errs = append(errs, field.Invalid(p.Child("minReadySeconds"), *m, fmt.Sprintf("must be between 0 and %d", MaxMinReadySeconds)))
		}
	}
	if d := u.ProgressDeadline; d != nil {
		// As a Deployment's: a member must be able to become ready in time.
		if d.Duration <= minReady || d.Duration > MaxProgressDeadline {
			errs = append(errs, field.Invalid(p.Child("progressDeadline"), d.Duration.String(),
				fmt.Sprintf("must be longer than minReadySeconds (%s) and at most %s", minReady, MaxProgressDeadline)))
		}
	}
	return errs
}

func validateRestart(r *Restart, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d := r.Backoff; d != nil && (d.Duration < 0 || d.Duration > MaxRestartBackoff) {
		errs = append(errs, field.Invalid(p.Child("backoff"), d.Duration.String(), fmt.Sprintf("must be between 0s and %s", MaxRestartBackoff)))
	}
	if f := r.BackoffFactor; f != nil && !(*f >= 1 && *f <= MaxBackoffFactor) /* NaN too */ {
		errs = append(errs, field.Invalid(p.Child("backoffFactor"), *f, fmt.Sprintf("must be between 1 and %d", MaxBackoffFactor)))
	}
	if d := r.MaxBackoff; d != nil {
		if d.Duration < 0 || d.Duration > MaxRestartBackoff {
			errs = append(errs, field.Invalid(p.Child("maxBackoff"), d.Duration.String(), fmt.Sprintf("must be between 0s and %s", MaxRestartBackoff)))
		} else if b := r.Backoff; b != nil && d.Duration < b.Duration {
			errs = append(errs, field.Invalid(p.Child("maxBackoff"), d.Duration.String(), "must not be shorter than backoff ("+b.Duration.String()+")"))
		}
	}
	if d := r.ResetAfter; d != nil && (d.Duration < time.Second || d.Duration > MaxResetAfter) {
		errs = append(errs, field.Invalid(p.Child("resetAfter"), d.Duration.String(), fmt.Sprintf("must be between 1s and %s", MaxResetAfter)))
	}
	return errs
}

// validateRole applies Mesos's role name rules: "*", or one or more
// '/'-separated components, none of them empty, ".", "..", starting with '-',
// or holding whitespace, control characters or '*'.
func validateRole(role string, p *field.Path) field.ErrorList {
	if role == "*" {
		return nil
	}
	if role == "" {
		return field.ErrorList{field.Required(p, `a Mesos role, "*" for the default role`)}
	}
	for _, part := range strings.Split(role, "/") {
		var why string
		switch {
		case part == "":
			why = "must not have an empty component (leading, trailing or double '/')"
		case part == "." || part == "..":
			why = `must not have a component "." or ".."`
		case strings.HasPrefix(part, "-"):
			why = "must not have a component starting with '-'"
		case strings.ContainsFunc(part, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' }):
			why = "must not contain whitespace, control characters or '*'"
		default:
			continue
		}
		return field.ErrorList{field.Invalid(p, role, why)}
	}
	return nil
}

func validateTask(t *TaskSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(t.Command) == "" {
		errs = append(errs, field.Required(p.Child("command"), "the command each member runs with sh -c"))
	}
	for _, k := range sortedKeys(t.Env) {
		kp := p.Child("env").Key(k)
		for _, msg := range validation.IsEnvVarName(k) {
			errs = append(errs, field.Invalid(kp, k, msg))
		}
		if strings.HasPrefix(k, ReservedEnvPrefix) {
			errs = append(errs, field.Invalid(kp, k, "the "+ReservedEnvPrefix+" prefix is reserved for variables converge sets"))
		}
	}
	errs = append(errs, validateURIs(t.URIs, p.Child("uris"))...)
	errs = append(errs, validateResources(&t.Resources, p.Child("resources"))...)
	if t.User != "" && !validUserName(t.User) {
		errs = append(errs, field.Invalid(p.Child("user"), t.User,
			"must be a POSIX user name: at most 32 of A-Z a-z 0-9 . _ -, not starting with - and not all digits"))
	}
	if g := t.KillGracePeriod; g != nil && (g.Duration < 0 || g.Duration > MaxKillGracePeriod) {
		errs = append(errs, field.Invalid(p.Child("killGracePeriod"), g.Duration.String(), fmt.Sprintf("must be between 0s and %s", MaxKillGracePeriod)))
	}
	errs = append(errs, validateCheck(t.HealthCheck, true, t.Resources.Ports, p.Child("healthCheck"))...)
	errs = append(errs, validateCheck(t.ReadinessCheck, false, t.Resources.Ports, p.Child("readinessCheck"))...)
	if e := t.Executor; e != nil {
		ep := p.Child("executor")
		if strings.TrimSpace(e.Command) == "" {
			errs = append(errs, field.Required(ep.Child("command"), "the command that starts the executor"))
		}
		errs = append(errs, validateURIs(e.URIs, ep.Child("uris"))...)
	}
	return errs
}

// validateCheck applies Mesos's validateHealthCheck / validateCheckInfo
// (src/common/validation.cpp) to a check, with converge's bounds: the type
// and only its part set, an http path starting with '/', a scheme of http or
// https, a port index within resources.ports, sane times.
func validateCheck(c *Check, health bool, ports int32, p *field.Path) field.ErrorList {
	if c == nil {
		return nil
	}
	var errs field.ErrorList
	set := map[string]bool{CheckCommand: c.Command != "", CheckHTTP: c.HTTP != nil, CheckTCP: c.TCP != nil}
	switch {
	case c.Type == "":
		errs = append(errs, field.Required(p.Child("type"), "one of command, http or tcp (or set exactly one of them)"))
	case !slices.Contains(CheckTypes, c.Type):
		errs = append(errs, field.NotSupported(p.Child("type"), c.Type, CheckTypes))
	case !set[c.Type]:
		errs = append(errs, field.Required(p.Child(c.Type), "a "+c.Type+" check needs "+c.Type))
	}
	for _, k := range CheckTypes {
		if set[k] && k != c.Type && slices.Contains(CheckTypes, c.Type) {
			errs = append(errs, field.Forbidden(p.Child(k), "only used by type "+k+" (type is "+c.Type+")"))
		}
	}
	if c.Type == CheckCommand && set[CheckCommand] && strings.TrimSpace(c.Command) == "" {
		errs = append(errs, field.Required(p.Child("command"), "the command run with sh -c"))
	}
	portIndex := func(i int32, fp *field.Path) {
		if i < 0 || i >= ports {
			errs = append(errs, field.Invalid(fp, i, fmt.Sprintf("must be the index of one of the member's %d ports (resources.ports): 0 to %d", ports, ports-1)))
		}
	}
	if h := c.HTTP; h != nil {
		hp := p.Child("http")
		portIndex(h.PortIndex, hp.Child("portIndex"))
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			errs = append(errs, field.Invalid(hp.Child("path"), h.Path, "must start with '/'"))
		}
		if h.Scheme != "" && !slices.Contains(HTTPSchemes, h.Scheme) {
			errs = append(errs, field.NotSupported(hp.Child("scheme"), h.Scheme, HTTPSchemes))
		}
	}
	if t := c.TCP; t != nil {
		portIndex(t.PortIndex, p.Child("tcp", "portIndex"))
	}
	errs = append(errs, checkTimes(c, p)...)
	if !health {
		if c.GracePeriod != nil {
			errs = append(errs, field.Forbidden(p.Child("gracePeriod"), "only health checks have one (Mesos CheckInfo has no grace period)"))
		}
		if c.ConsecutiveFailures != nil {
			errs = append(errs, field.Forbidden(p.Child("consecutiveFailures"), "only health checks have one: a failing readiness check kills nothing"))
		}
	} else if n := c.ConsecutiveFailures; n != nil && (*n < 1 || *n > MaxConsecutiveFailures) {
		errs = append(errs, field.Invalid(p.Child("consecutiveFailures"), *n, fmt.Sprintf("must be between 1 and %d", MaxConsecutiveFailures)))
	}
	return errs
}

func checkTimes(c *Check, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	times := []struct {
		name     string
		d        *metav1.Duration
		min      time.Duration
		minWords string
	}{
		{"delay", c.Delay, 0, "0s"},
		{"interval", c.Interval, MinCheckInterval, MinCheckInterval.String()},
		{"timeout", c.Timeout, 0, "0s (no timeout)"},
		{"gracePeriod", c.GracePeriod, 0, "0s"},
	}
	for _, t := range times {
		if t.d != nil && (t.d.Duration < t.min || t.d.Duration > MaxCheckTime) {
			errs = append(errs, field.Invalid(p.Child(t.name), t.d.Duration.String(), fmt.Sprintf("must be between %s and %s", t.minWords, MaxCheckTime)))
		}
	}
	return errs
}

// userNameRE is the POSIX portable user name (XBD 3.437: the portable
// filename characters, no leading hyphen), at most 32 as useradd allows.
var userNameRE = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$`)

// validUserName: an all-digit name would be read as a uid by chown and su.
func validUserName(s string) bool {
	return userNameRE.MatchString(s) && strings.Trim(s, "0123456789") != ""
}

func validateURIs(uris []URI, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, u := range uris {
		if strings.TrimSpace(u.Value) == "" {
			errs = append(errs, field.Required(p.Index(i).Child("value"), "a URL or local path to fetch"))
		}
	}
	return errs
}

func validateResources(r *Resources, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateQuantity(r.CPUs, p.Child("cpus"), true, &MinCPUs, &MaxCPUs, "cores")...)
	errs = append(errs, validateQuantity(r.Mem, p.Child("mem"), true, &MinMem, &MaxMem, "")...)
	errs = append(errs, validateQuantity(r.Disk, p.Child("disk"), false, nil, &MaxDisk, "")...)
	if r.Ports < 0 || r.Ports > MaxPorts {
		errs = append(errs, field.Invalid(p.Child("ports"), r.Ports, fmt.Sprintf("must be between 0 and %d", MaxPorts)))
	}
	return errs
}

// validateQuantity checks q against [minimum, maximum]. A required quantity
// must be greater than zero; an optional one must not be negative.
func validateQuantity(q *resource.Quantity, p *field.Path, required bool, minimum, maximum *resource.Quantity, unit string) field.ErrorList {
	if q == nil {
		if required {
			return field.ErrorList{field.Required(p, "")}
		}
		return nil
	}
	sign := q.Sign()
	switch {
	case required && sign <= 0:
		return field.ErrorList{field.Invalid(p, q.String(), "must be greater than 0")}
	case sign < 0:
		return field.ErrorList{field.Invalid(p, q.String(), "must not be negative")}
	case minimum != nil && q.Cmp(*minimum) < 0:
		return field.ErrorList{field.Invalid(p, q.String(), "must be at least "+withUnit(minimum, unit))}
	case maximum != nil && q.Cmp(*maximum) > 0:
		return field.ErrorList{field.Invalid(p, q.String(), "must be at most "+withUnit(maximum, unit))}
	}
	return nil
}

func withUnit(q *resource.Quantity, unit string) string {
	if unit == "" {
		return q.String()
	}
	return q.String() + " " + unit
}

// validateVolumes: Mesos reserves resources (and so creates persistent
// volumes) only for a role other than "*" (validation.cpp: 'role "*" cannot
// be reserved').
func validateVolumes(s *ClusterSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Task.Volumes) == 0 {
		return nil
	}
	if s.Role == "*" || s.Role == "" {
		errs = append(errs, field.Invalid(p, len(s.Task.Volumes),
			`persistent volumes live on resources reserved for the cluster's role, and Mesos cannot reserve for role "*": set spec.role (e.g. "converge")`))
	}
	if len(s.Task.Volumes) > MaxVolumes {
		errs = append(errs, field.TooMany(p, len(s.Task.Volumes), MaxVolumes))
	}
	names, paths := map[string]bool{}, map[string]bool{}
	for i, v := range s.Task.Volumes {
		vp := p.Index(i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if names[v.Name] {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		names[v.Name] = true
		clean := path.Clean(v.ContainerPath)
		switch {
		case strings.TrimSpace(v.ContainerPath) == "":
			errs = append(errs, field.Required(vp.Child("containerPath"), "a path relative to the sandbox, e.g. data"))
		case path.IsAbs(v.ContainerPath) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsAny(v.ContainerPath, "\x00"):
			errs = append(errs, field.Invalid(vp.Child("containerPath"), v.ContainerPath, "must be a relative path inside the sandbox"))
		case paths[clean]:
			errs = append(errs, field.Duplicate(vp.Child("containerPath"), v.ContainerPath))
		}
		paths[clean] = true
		errs = append(errs, validateQuantity(v.Size, vp.Child("size"), true, &MinMem, &MaxDisk, "")...)
	}
	return errs
}

func validatePlacement(pl *Placement, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r := pl.ReplaceAfter; r != nil && (r.Duration < 0 || r.Duration > MaxReplaceAfter) {
		errs = append(errs, field.Invalid(p.Child("replaceAfter"), r.Duration.String(), fmt.Sprintf("must be between 0s and %s", MaxReplaceAfter)))
	}
	// Empty is "none" not yet defaulted (objects stored before the default).
	if pl.Spread != "" && !slices.Contains(SpreadValues, pl.Spread) {
		errs = append(errs, field.NotSupported(p.Child("spread"), pl.Spread, SpreadValues))
	}
	for i, c := range pl.Constraints {
		errs = append(errs, validateConstraint(c, p.Child("constraints").Index(i))...)
	}
	return errs
}

func validateConstraint(c Constraint, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(c.Attribute) == "" {
		errs = append(errs, field.Required(p.Child("attribute"), `an agent attribute, or "hostname"`))
	}
	vp := p.Child("value")
	switch c.Operator {
	case OpUnique:
		if c.Value != "" {
			errs = append(errs, field.Forbidden(vp, "UNIQUE takes no value"))
		}
	case OpCluster:
		if c.Value == "" {
			errs = append(errs, field.Required(vp, "CLUSTER needs the attribute value every member must run on"))
		}
	case OpLike, OpUnlike:
		if c.Value == "" {
			errs = append(errs, field.Required(vp, c.Operator+" needs a regular expression"))
		} else if _, err := regexp.Compile(c.Value); err != nil {
			errs = append(errs, field.Invalid(vp, c.Value, "must be a valid regular expression: "+err.Error()))
		}
	case OpMaxPer:
		if c.Value == "" {
			errs = append(errs, field.Required(vp, "MAX_PER needs the maximum number of members per attribute value"))
		} else if !isPositiveInt(c.Value) {
			errs = append(errs, field.Invalid(vp, c.Value, "must be a positive integer"))
		}
	case OpGroupBy:
		if c.Value != "" && !isPositiveInt(c.Value) {
			errs = append(errs, field.Invalid(vp, c.Value, "must be empty or a positive integer (the number of groups)"))
		}
	default:
		if c.Operator == "" {
			errs = append(errs, field.Required(p.Child("operator"), "one of "+strings.Join(ConstraintOperators, ", ")))
		} else {
			errs = append(errs, field.NotSupported(p.Child("operator"), c.Operator, ConstraintOperators))
		}
	}
	return errs
}

func isPositiveInt(s string) bool {
	n, err := strconv.ParseInt(s, 10, 32)
	return err == nil && n > 0
}

func validateElection(e *Election, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	strategy := e.Strategy
	if strategy == "" {
		strategy = ElectionNone
	}
	if !slices.Contains(ElectionStrategies, strategy) {
		errs = append(errs, field.NotSupported(p.Child("strategy"), e.Strategy, ElectionStrategies))
	}
	switch strategy {
	case ElectionPosition:
		if strings.TrimSpace(e.PositionCommand) == "" {
			errs = append(errs, field.Required(p.Child("positionCommand"), "strategy position needs the command that prints a member's replication position"))
		}
	case ElectionNone, ElectionOrdinal:
		if e.PositionCommand != "" {
			errs = append(errs, field.Forbidden(p.Child("positionCommand"), "only used by strategy position"))
		}
	}
	if strategy != ElectionPosition {
		// Hooks run in `converge executor`, which only position elections use.
		hooks := []struct{ name, value string }{
			{"promoteCommand", e.PromoteCommand}, {"followCommand", e.FollowCommand}, {"demoteCommand", e.DemoteCommand}}
		for _, h := range hooks {
			if h.value != "" && (strategy == ElectionNone || h.name != "promoteCommand") {
				errs = append(errs, field.Forbidden(p.Child(h.name), "only used by strategy position"))
			}
		}
	}
	if l := e.MaximumLagOnFailover; l != nil {
		switch {
		case strategy != ElectionPosition:
			errs = append(errs, field.Forbidden(p.Child("maximumLagOnFailover"), "only used by strategy position"))
		case *l < 0:
			errs = append(errs, field.Invalid(p.Child("maximumLagOnFailover"), *l, "must be 0 or more (bytes of WAL for PostgreSQL LSNs, transactions for GTIDs)"))
		}
	}
	if d := e.LeaseDuration; d != nil && (d.Duration < MinLeaseDuration || d.Duration > MaxLeaseDuration) {
		errs = append(errs, field.Invalid(p.Child("leaseDuration"), d.Duration.String(), "must be between 3s and 5m"))
	}
	if t := e.Timeout; t != nil && (t.Duration < MinElectionTimeout || t.Duration > MaxElectionTimeout) {
		errs = append(errs, field.Invalid(p.Child("timeout"), t.Duration.String(),
			"must be between 1s and 1h"))
	}
	return errs
}

// ValidateVolumesUpdate refuses an update that changes a cluster's
// task.volumes (names, paths, sizes; adding or removing them), or its role
// while it has volumes. Mesos cannot resize or move a persistent volume in
// place (GROW_VOLUME/SHRINK_VOLUME are experimental and optional), and
// giving members new volumes would start them empty, so volumes are fixed
// when the cluster is created, as the DC/OS SDK's TaskVolumesCannotChange
// and Marathon's resident apps have them. Volumes are not in the template
// hash for the same reason: no rolling update could apply a change.
func ValidateVolumesUpdate(c, old *Cluster) field.ErrorList {
	var errs field.ErrorList
	if !sameVolumes(c.Spec.Task.Volumes, old.Spec.Task.Volumes) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "task", "volumes"),
			"volumes cannot change once the cluster exists: Mesos cannot resize or move a persistent volume, and new volumes would start empty; create a new cluster with the volumes wanted (or delete this one, losing its data, and create it again)"))
	}
	if len(old.Spec.Task.Volumes) > 0 && c.Spec.Role != old.Spec.Role {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "role"),
			fmt.Sprintf("the role cannot change while the cluster has volumes: they live on resources reserved for role %q", old.Spec.Role)))
	}
	return errs
}

func sameVolumes(a, b []Volume) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Name != y.Name || x.ContainerPath != y.ContainerPath || (x.Size == nil) != (y.Size == nil) ||
			(x.Size != nil && x.Size.Cmp(*y.Size) != 0) {
			return false
		}
	}
	return true
}
