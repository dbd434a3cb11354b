package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// Group is the API group of every converge object.
	Group = "converge.io"
	// Version is this package's API version.
	Version = "v1alpha1"
	// APIVersion is the apiVersion users write.
	APIVersion = Group + "/" + Version
	// Kind is the kind of the one object converge manages.
	Kind = "Cluster"
	// ListKind is the kind of a list of clusters.
	ListKind = "ClusterList"

	// DefaultNamespace is used when metadata.namespace is empty.
	DefaultNamespace = "default"
	// Finalizer holds a Cluster until every task it owns is terminal.
	Finalizer = "converge.io/tasks"
)

// Switchover request annotations (`converge switchover` writes them; anyone
// may, as with kubectl's rollout restart annotation). A request is acted on
// once: the controller records the request time it handled in
// status.switchover.
const (
	// AnnotationSwitchoverAt is the request's time (RFC 3339, UTC), its identity.
	AnnotationSwitchoverAt = "converge.io/switchover-requested-at"
	// AnnotationSwitchoverFrom is the master's task id when the request was
	// made: a master elected since is not switched over (Patroni's leader).
	AnnotationSwitchoverFrom = "converge.io/switchover-from"
	// AnnotationSwitchoverTo is the ordinal to hand over to ("" or absent:
	// the member with the highest position).
	AnnotationSwitchoverTo = "converge.io/switchover-to"
)

// Switchover phases (status.switchover.phase).
const (
	SwitchoverDemoting  = "Demoting"
	SwitchoverElecting  = "Electing"
	SwitchoverSucceeded = "Succeeded"
	SwitchoverFailed    = "Failed"
)

// Election strategies.
const (
	ElectionNone     = "none"
	ElectionOrdinal  = "ordinal"
	ElectionPosition = "position"
)

// Condition types (kstatus conventions).
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Cluster is N replicas of a task on Mesos, with placement and an election strategy.
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSpec   `json:"spec"`
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterList is what `get clusters -o json|yaml` prints.
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}

// ClusterSpec is the desired state.
type ClusterSpec struct {
	// Replicas is the number of members, 0..1000.
	Replicas *int32 `json:"replicas,omitempty"`
	// Role is the Mesos role whose resources the tasks use. Default "*".
	Role      string    `json:"role,omitempty"`
	Task      TaskSpec  `json:"task"`
	Placement Placement `json:"placement,omitempty"`
	Election  Election  `json:"election,omitempty"`
	Update    Update    `json:"update,omitempty"`
	Restart   Restart   `json:"restart,omitempty"`
}

// TaskSpec is the template every member is launched from.
type TaskSpec struct {
	// Command is run with sh -c by the command executor (or by the custom executor).
	Command string            `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
	// +listType=atomic
	URIs      []URI         `json:"uris,omitempty"`
	Resources Resources     `json:"resources"`
	Executor  *ExecutorSpec `json:"executor,omitempty"`
	// User the task (and its executor and hooks) runs as on the agent: Mesos
	// CommandInfo.user. Empty: the framework's user (the agent's, under
	// localmesos). It must exist on the agents, as for Mesos.
	User string `json:"user,omitempty"`
	// KillGracePeriod between the SIGTERM and the SIGKILL that stop a member
	// (Mesos KillPolicy.grace_period). Unset: the executor's default (3s for
	// Mesos's command executor and converge executor).
	KillGracePeriod *metav1.Duration `json:"killGracePeriod,omitempty"`
	// HealthCheck (Mesos TaskInfo.health_check), run by the member's
	// executor: a member that fails it consecutiveFailures times in a row
	// (after its gracePeriod) is killed by its executor and replaced. While
	// a member has one, it counts as ready only once it reported healthy.
	HealthCheck *Check `json:"healthCheck,omitempty"`
	// ReadinessCheck (Mesos TaskInfo.check): a member counts as ready only
	// while it passes (and minReadySeconds after it started passing). It
	// takes no gracePeriod or consecutiveFailures: a failing one kills
	// nothing.
	ReadinessCheck *Check `json:"readinessCheck,omitempty"`
	// Volumes are Mesos persistent volumes: directories on the agent that
	// outlive the member's tasks, at ContainerPath in its sandbox. A member
	// with volumes reserves its resources for spec.role (which must not be
	// "*") and is relaunched on the agent that holds them.
	// +listType=atomic
	Volumes []Volume `json:"volumes,omitempty"`
}

// Volume is one persistent volume of every member.
type Volume struct {
	// Name identifies the volume among the task's (a DNS-1123 label).
	Name string `json:"name"`
	// ContainerPath is where the volume appears, relative to the sandbox.
	ContainerPath string `json:"containerPath"`
	// Size is the disk the volume takes (a Kubernetes quantity, e.g. 1Gi).
	Size *resource.Quantity `json:"size"`
}

// Check is a Mesos health check (HealthCheck) or check (CheckInfo): one of
// command, http or tcp, and its timing. Defaults are Mesos's.
type Check struct {
	// Type: command | http | tcp. Default: the one of the three that is set.
	Type string `json:"type,omitempty"`
	// Command is run with sh -c in the member's sandbox, with its
	// environment and user; exit status 0 passes.
	Command string     `json:"command,omitempty"`
	HTTP    *HTTPCheck `json:"http,omitempty"`
	TCP     *TCPCheck  `json:"tcp,omitempty"`
	// Delay before the first check, counted from when the member runs
	// (delay_seconds). Default 15s.
	Delay *metav1.Duration `json:"delay,omitempty"`
	// Interval from the end of one check to the start of the next
	// (interval_seconds). Default 10s.
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one check, which then counts as failed; 0s: none
	// (timeout_seconds). Default 20s.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// GracePeriod (health checks only): failures within it of the member's
	// start are ignored until a check first passes (grace_period_seconds).
	// Default 10s.
	GracePeriod *metav1.Duration `json:"gracePeriod,omitempty"`
	// ConsecutiveFailures (health checks only) after which the executor
	// kills the member. Default 3.
	ConsecutiveFailures *int32 `json:"consecutiveFailures,omitempty"`
}

// HTTPCheck is a GET of scheme://HOST:PORT<portIndex><path>; a status in
// 200..399 passes. HOST is 127.0.0.1 on Mesos (the agent's loopback address
// under localmesos). Redirects are followed; TLS certificates not verified.
type HTTPCheck struct {
	// PortIndex is which of the member's ports (PORT0, PORT1, ...), as
	// Marathon's portIndex. Default 0.
	PortIndex int32 `json:"portIndex,omitempty"`
	// Path, starting with '/'. Default "/".
	Path string `json:"path,omitempty"`
	// Scheme: http (default) or https.
	Scheme string `json:"scheme,omitempty"`
}

// TCPCheck passes when a TCP connection to the member's port opens.
type TCPCheck struct {
	// PortIndex is which of the member's ports (PORT0, PORT1, ...). Default 0.
	PortIndex int32 `json:"portIndex,omitempty"`
}

// Check types.
const (
	CheckCommand = "command"
	CheckHTTP    = "http"
	CheckTCP     = "tcp"
)

// URI is a file the agent fetches into the sandbox before the task starts.
type URI struct {
	Value      string `json:"value"`
	Executable bool   `json:"executable,omitempty"`
	Extract    bool   `json:"extract,omitempty"`
	Cache      bool   `json:"cache,omitempty"`
}

// Resources a member needs. cpus, mem and disk are Kubernetes quantities
// (500m, 0.5, 512Mi); ports is how many ports from the offer's ranges.
type Resources struct {
	CPUs  *resource.Quantity `json:"cpus,omitempty"`
	Mem   *resource.Quantity `json:"mem,omitempty"`
	Disk  *resource.Quantity `json:"disk,omitempty"`
	Ports int32              `json:"ports,omitempty"`
}

// ExecutorSpec names a custom executor, e.g. `converge executor`.
type ExecutorSpec struct {
	Command string `json:"command"`
	// +listType=atomic
	URIs []URI `json:"uris,omitempty"`
}

// Placement constrains which agents members land on.
type Placement struct {
	// Spread "hostname": at most one member per agent hostname; "none"
	// (the default; empty means the same): members go wherever they fit.
	Spread string `json:"spread,omitempty"`
	// +listType=atomic
	Constraints []Constraint `json:"constraints,omitempty"`
	// ReplaceAfter: how long a member with volumes waits for the agent that
	// holds them to come back before it is re-created elsewhere with new,
	// empty volumes. Unset: DefaultReplaceAfter (the DC/OS SDK's 20 minutes).
	ReplaceAfter *metav1.Duration `json:"replaceAfter,omitempty"`
}

// Constraint is a Marathon-style placement constraint on an agent attribute
// ("hostname" means the agent's hostname).
type Constraint struct {
	Attribute string `json:"attribute"`
	// Operator is one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER.
	Operator string `json:"operator"`
	// Value: the value for CLUSTER, the regexp for LIKE/UNLIKE, the number for
	// MAX_PER and, optionally, the number of groups for GROUP_BY.
	Value string `json:"value,omitempty"`
}

// Constraint operators.
const (
	OpUnique  = "UNIQUE"
	OpCluster = "CLUSTER"
	OpGroupBy = "GROUP_BY"
	OpLike    = "LIKE"
	OpUnlike  = "UNLIKE"
	OpMaxPer  = "MAX_PER"
)

// Spread values: none (the default) or hostname.
const (
	SpreadNone     = "none"
	SpreadHostname = "hostname"
)

// Election says how the master member is chosen.
type Election struct {
	// Strategy: none | ordinal | position. Default none.
	Strategy string `json:"strategy,omitempty"`
	// Timeout of one election round. Default 60s.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// PositionCommand prints the member's replication position (position strategy).
	PositionCommand string `json:"positionCommand,omitempty"`
	// PromoteCommand is run on the winner when it is promoted, once it holds
	// the master lease.
	PromoteCommand string `json:"promoteCommand,omitempty"`
	// FollowCommand is run on every other member at each new master, with
	// CONVERGE_MASTER_HOST, CONVERGE_MASTER_PORT and CONVERGE_EPOCH set; re-run
	// until it succeeds, once per epoch (Mysos's reparent: CHANGE MASTER TO).
	FollowCommand string `json:"followCommand,omitempty"`
	// DemoteCommand is run on a master that cannot renew its lease, before the
	// lease expires; without one (or if it fails) the master's task is killed.
	// Either way a master that lost the controller stops taking writes before
	// another is promoted.
	DemoteCommand string `json:"demoteCommand,omitempty"`
	// LeaseDuration of the master lease (position strategy): a master renews
	// it every fifth of it, and one that has not been heard from for this long
	// (plus a second for clock drift) is replaced. Default 10s.
	LeaseDuration *metav1.Duration `json:"leaseDuration,omitempty"`
	// MaximumLagOnFailover (position strategy; Patroni's
	// maximum_lag_on_failover): an election excludes members whose position
	// is behind the master's last reported position by more than this, in
	// the positions' unit (bytes of WAL for PostgreSQL LSNs, transactions for
	// MariaDB GTID lists and MySQL GTID sets, the integers' own unit; see
	// election.Lag). With none within it, no master is elected: the election
	// waits, and retries each timeout. Unset: no limit.
	MaximumLagOnFailover *int64 `json:"maximumLagOnFailover,omitempty"`
}

// Update is the rolling update strategy and what counts as progress.
type Update struct {
	// MaxUnavailable members while rolling. Default 1.
	MaxUnavailable *int32 `json:"maxUnavailable,omitempty"`
	// MinReadySeconds: a member counts as ready once it has been running this
	// long (a Deployment's minReadySeconds, Aurora's watch_secs). Default 10, so
	// a member that dies on start-up is never counted ready.
	MinReadySeconds *int32 `json:"minReadySeconds,omitempty"`
	// ProgressDeadline: with no progress for this long (no member became
	// ready, the spec did not change), the cluster is Stalled with reason
	// ProgressDeadlineExceeded (a Deployment's progressDeadlineSeconds).
	// Default 10m.
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`
}

// Restart is the back-off between relaunches of a member that keeps failing
// (Kubernetes' CrashLoopBackOff, Marathon's backoffSeconds, backoffFactor and
// maxLaunchDelaySeconds), counted per member (ordinal).
type Restart struct {
	// Backoff before relaunching a member after its first failure. Default 1s;
	// 0s relaunches at once, always.
	Backoff *metav1.Duration `json:"backoff,omitempty"`
	// BackoffFactor multiplies the delay at each further consecutive failure.
	// Default 2.
	BackoffFactor *float64 `json:"backoffFactor,omitempty"`
	// MaxBackoff caps the delay. Default 5m.
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
	// ResetAfter: a member that ran this long before it failed is relaunched
	// after Backoff again, as after a first failure. Default 10m.
	ResetAfter *metav1.Duration `json:"resetAfter,omitempty"`
}

// ClusterStatus is written by the controller only.
type ClusterStatus struct {
	// ObservedGeneration is the generation the controller last acted on,
	// 0 until it has seen the cluster; always present, so that kstatus
	// (Flux's health checks) reads a cluster not yet observed as InProgress.
	ObservedGeneration int64         `json:"observedGeneration"`
	Replicas           int32         `json:"replicas"`
	ReadyReplicas      int32         `json:"readyReplicas"`
	UpdatedReplicas    int32         `json:"updatedReplicas"`
	Master             *MasterStatus `json:"master,omitempty"`
	// +listType=atomic
	Tasks []TaskStatus `json:"tasks,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastProgressTime is when the cluster last made progress (a member became
	// ready, the spec changed, a surplus member stopped); spec.update.
	// progressDeadline counts from it, or from when Ready turned False if later.
	LastProgressTime *metav1.Time `json:"lastProgressTime,omitempty"`
	// Switchover is the latest switchover request acted on and how it went.
	Switchover *SwitchoverStatus `json:"switchover,omitempty"`
}

// SwitchoverStatus reports a switchover request (the annotations
// AnnotationSwitchover*).
type SwitchoverStatus struct {
	// RequestedAt is the request's AnnotationSwitchoverAt.
	RequestedAt string `json:"requestedAt"`
	// Phase: Demoting, Electing, Succeeded or Failed.
	Phase string `json:"phase"`
	// From and To are the old and the new master's ordinals (To: once elected,
	// or the one asked for).
	From *int32 `json:"from,omitempty"`
	To   *int32 `json:"to,omitempty"`
	// Epoch is the election epoch of the new master.
	Epoch   int64  `json:"epoch,omitempty"`
	Message string `json:"message,omitempty"`
}

// MasterStatus is the elected member.
type MasterStatus struct {
	TaskID   string `json:"taskId"`
	Ordinal  int32  `json:"ordinal"`
	Hostname string `json:"hostname,omitempty"`
	Port     int32  `json:"port,omitempty"`
	Epoch    int64  `json:"epoch"`
}

// TaskStatus is one member as last observed.
type TaskStatus struct {
	ID       string `json:"id"`
	Ordinal  int32  `json:"ordinal"`
	State    string `json:"state"`
	AgentID  string `json:"agentId,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// +listType=atomic
	Ports   []int32 `json:"ports,omitempty"`
	Message string  `json:"message,omitempty"`
	// Healthy is the member's last health check result (unset: it has no
	// health check, or none has counted yet).
	Healthy *bool `json:"healthy,omitempty"`
	// Ready: the member counts toward readyReplicas.
	Ready bool `json:"ready,omitempty"`
}
