package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Default values SetDefaults fills in.
const (
	DefaultReplicas        int32 = 1
	DefaultRole                  = "*"
	DefaultElectionTimeout       = 60 * time.Second
	DefaultLeaseDuration         = 10 * time.Second
	DefaultMaxUnavailable  int32 = 1
	// DefaultMinReadySeconds is longer than a process that fails on start-up
	// (bad flags, a port in use, a missing file) takes to die, so such a
	// member is never counted ready; short enough not to slow a rollout much.
	DefaultMinReadySeconds  int32 = 10
	DefaultProgressDeadline       = 10 * time.Minute
	// Restart back-off: Marathon's first delay (1s), Kubernetes' doubling and
	// cap (5m) and its reset after 10 minutes of stable running.
	DefaultRestartBackoff    = time.Second
	DefaultRestartFactor     = 2.0
	DefaultRestartMaxBackoff = 5 * time.Minute
	DefaultRestartResetAfter = 10 * time.Minute
	// Check timing: Mesos's HealthCheck and CheckInfo defaults
	// (include/mesos/v1/mesos.proto).
	DefaultCheckDelay                = 15 * time.Second
	DefaultCheckInterval             = 10 * time.Second
	DefaultCheckTimeout              = 20 * time.Second
	DefaultHealthGracePeriod         = 10 * time.Second
	DefaultConsecutiveFailures int32 = 3
	// DefaultReplaceAfter is how long a member with volumes waits for its
	// agent before it is re-created elsewhere: the DC/OS SDK's permanent
	// replacement delay.
	DefaultReplaceAfter = 20 * time.Minute
)

// SetDefaults fills every field the user may leave out: apiVersion and kind,
// metadata.namespace "default", spec.replicas 1, spec.role "*",
// spec.election.strategy "none", spec.election.timeout 60s,
// spec.placement.spread "none",
// spec.update.maxUnavailable 1, minReadySeconds 10 and progressDeadline 10m,
// spec.restart backoff 1s, backoffFactor 2, maxBackoff 5m and resetAfter
// 10m, and in task.healthCheck and task.readinessCheck Mesos's defaults (see
// setCheckDefaults). Fields already set are left alone, so it is
// idempotent. A nil cluster is ignored.
func SetDefaults(c *Cluster) {
	if c == nil {
		return
	}
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	s := &c.Spec
	if s.Replicas == nil {
		r := DefaultReplicas
		s.Replicas = &r
	}
	if s.Role == "" {
		s.Role = DefaultRole
	}
	if s.Election.Strategy == "" {
		s.Election.Strategy = ElectionNone
	}
	if s.Placement.Spread == "" {
		s.Placement.Spread = SpreadNone
	}
	if s.Election.Timeout == nil {
		s.Election.Timeout = &metav1.Duration{Duration: DefaultElectionTimeout}
	}
	if s.Election.LeaseDuration == nil && s.Election.Strategy == ElectionPosition {
		s.Election.LeaseDuration = &metav1.Duration{Duration: DefaultLeaseDuration}
	}
	if s.Update.MaxUnavailable == nil {
		m := DefaultMaxUnavailable
		s.Update.MaxUnavailable = &m
	}
	if s.Update.MinReadySeconds == nil {
		m := DefaultMinReadySeconds
		s.Update.MinReadySeconds = &m
	}
	defaultDuration(&s.Update.ProgressDeadline, DefaultProgressDeadline)
	setRestartDefaults(&s.Restart)
	setCheckDefaults(s.Task.HealthCheck, true)
	setCheckDefaults(s.Task.ReadinessCheck, false)
}

// setCheckDefaults: the type is the one of command, http and tcp that is
// set (if only one is); delay 15s, interval 10s, timeout 20s and, for a
// health check, gracePeriod 10s and consecutiveFailures 3, as Mesos.
func setCheckDefaults(c *Check, health bool) {
	if c == nil {
		return
	}
	if c.Type == "" {
		var set []string
		if c.Command != "" {
			set = append(set, CheckCommand)
		}
		if c.HTTP != nil {
			set = append(set, CheckHTTP)
		}
		if c.TCP != nil {
			set = append(set, CheckTCP)
		}
		if len(set) == 1 {
			c.Type = set[0]
		}
	}
	defaultDuration(&c.Delay, DefaultCheckDelay)
	defaultDuration(&c.Interval, DefaultCheckInterval)
	defaultDuration(&c.Timeout, DefaultCheckTimeout)
	if !health {
		return
	}
	defaultDuration(&c.GracePeriod, DefaultHealthGracePeriod)
	if c.ConsecutiveFailures == nil {
		n := DefaultConsecutiveFailures
		c.ConsecutiveFailures = &n
	}
}

func setRestartDefaults(r *Restart) {
	defaultDuration(&r.Backoff, DefaultRestartBackoff)
	if r.BackoffFactor == nil {
		f := DefaultRestartFactor
		r.BackoffFactor = &f
	}
	defaultDuration(&r.MaxBackoff, DefaultRestartMaxBackoff)
	defaultDuration(&r.ResetAfter, DefaultRestartResetAfter)
}

func defaultDuration(d **metav1.Duration, v time.Duration) {
	if *d == nil {
		*d = &metav1.Duration{Duration: v}
	}
}
