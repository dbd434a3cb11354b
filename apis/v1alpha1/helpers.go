package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// templateForHash is what TemplateHash hashes: everything a running member
// was launched with, so that a change to any of it needs a relaunch.
// Quantities are normalised to integers so that 0.5 and 500m, or 64Mi and
// 67108864, hash alike. Add fields only with care: a new field changes every
// hash, which rolls every cluster.
// +k8s:openapi-gen=false
type templateForHash struct {
	Command         string            `json:"command"`
	Env             map[string]string `json:"env,omitempty"`
	URIs            []URI             `json:"uris,omitempty"`
	MilliCPUs       int64             `json:"milliCPUs"`
	MemBytes        int64             `json:"memBytes"`
	DiskBytes       int64             `json:"diskBytes"`
	Ports           int32             `json:"ports"`
	Executor        *ExecutorSpec     `json:"executor,omitempty"`
	PositionCommand string            `json:"positionCommand,omitempty"`
	PromoteCommand  string            `json:"promoteCommand,omitempty"`
	FollowCommand   string            `json:"followCommand,omitempty"`
	DemoteCommand   string            `json:"demoteCommand,omitempty"`
	// ConvergeExecutor: strategy position with no executor named, so the
	// controller launches members under `converge executor` (docs/design.md section 4);
	// switching into or out of it changes how members run.
	ConvergeExecutor bool `json:"convergeExecutor,omitempty"`
	// User and KillGracePeriod are in the TaskInfo (CommandInfo.user,
	// kill_policy): omitted when unset so that older hashes stay.
	User            string `json:"user,omitempty"`
	KillGracePeriod string `json:"killGracePeriod,omitempty"`
	// The checks are in the TaskInfo too (health_check, check).
	HealthCheck    *Check `json:"healthCheck,omitempty"`
	ReadinessCheck *Check `json:"readinessCheck,omitempty"`
}

// TemplateHash is a stable hash (sha256 of canonical JSON, first 16 hex
// characters) of what members are launched from: spec.task, the election
// hook commands and whether the implied `converge executor` is used. A rolling
// update relaunches the members whose hash differs. Replicas, role,
// placement, update and election.timeout are not part of it.
func TemplateHash(spec *ClusterSpec) string {
	if spec == nil {
		spec = &ClusterSpec{}
	}
	t := spec.Task
	h := templateForHash{
		Command:          t.Command,
		URIs:             t.URIs,
		MilliCPUs:        milli(t.Resources.CPUs),
		MemBytes:         bytesOf(t.Resources.Mem),
		DiskBytes:        bytesOf(t.Resources.Disk),
		Ports:            t.Resources.Ports,
		Executor:         t.Executor,
		PositionCommand:  spec.Election.PositionCommand,
		PromoteCommand:   spec.Election.PromoteCommand,
		FollowCommand:    spec.Election.FollowCommand,
		DemoteCommand:    spec.Election.DemoteCommand,
		ConvergeExecutor: spec.Election.Strategy == ElectionPosition && t.Executor == nil,
		User:             t.User,
		HealthCheck:      t.HealthCheck,
		ReadinessCheck:   t.ReadinessCheck,
	}
	if g := t.KillGracePeriod; g != nil {
		h.KillGracePeriod = g.Duration.String()
	}
	if len(t.Env) > 0 {
		h.Env = t.Env
	}
	if len(h.URIs) == 0 {
		h.URIs = nil
	}
	if h.Executor != nil && len(h.Executor.URIs) == 0 {
		h.Executor = &ExecutorSpec{Command: h.Executor.Command}
	}
	// json.Marshal sorts map keys and cannot fail on these plain types.
	b, err := json.Marshal(h)
	if err != nil {
		panic("v1alpha1: marshal template: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

func milli(q *resource.Quantity) int64 {
	if q == nil {
		return 0
	}
	return q.MilliValue()
}

func bytesOf(q *resource.Quantity) int64 {
	if q == nil {
		return 0
	}
	return q.Value()
}

// ResourceScalars converts r to the units Mesos accounts in: cpus in cores,
// mem and disk in MiB (what Mesos calls MB). Unset quantities are 0.
func ResourceScalars(r Resources) (cpus, memMB, diskMB float64) {
	return float64(milli(r.CPUs)) / 1000, float64(bytesOf(r.Mem)) / (1 << 20), float64(bytesOf(r.Disk)) / (1 << 20)
}

// FindCondition returns the condition of the given type, or nil.
func FindCondition(conditions []metav1.Condition, conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(conditions, conditionType)
}

// SetCondition adds or updates the condition of cond.Type, keeping
// lastTransitionTime unless the status changes (meta.SetStatusCondition).
// It reports whether anything changed.
func SetCondition(conditions *[]metav1.Condition, cond metav1.Condition) bool {
	return meta.SetStatusCondition(conditions, cond)
}

// IsReady reports whether c's Ready condition is True for its current
// generation: a Ready condition observed for an older spec does not count.
func IsReady(c *Cluster) bool {
	if c == nil {
		return false
	}
	r := FindCondition(c.Status.Conditions, ConditionReady)
	return r != nil && r.Status == metav1.ConditionTrue && r.ObservedGeneration == c.Generation
}

// Key is "namespace/name", the form store.ListElections and work queues use.
func (c *Cluster) Key() string {
	return c.Namespace + "/" + c.Name
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ReplaceAfterDuration is how long a member with volumes waits for the agent
// holding them before it is re-created elsewhere (DefaultReplaceAfter unless
// spec.placement.replaceAfter says otherwise).
func (s *ClusterSpec) ReplaceAfterDuration() time.Duration {
	if s.Placement.ReplaceAfter != nil {
		return s.Placement.ReplaceAfter.Duration
	}
	return DefaultReplaceAfter
}
