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
	DefaultMaxUnavailable  int32 = 1
)

// SetDefaults fills every field the user may leave out: apiVersion and kind,
// metadata.namespace "default", spec.replicas 1, spec.role "*",
// spec.election.strategy "none", spec.election.timeout 60s and
// spec.update.maxUnavailable 1. Fields already set are left alone, so it is
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
	if s.Election.Timeout == nil {
		s.Election.Timeout = &metav1.Duration{Duration: DefaultElectionTimeout}
	}
	if s.Update.MaxUnavailable == nil {
		m := DefaultMaxUnavailable
		s.Update.MaxUnavailable = &m
	}
}
