package store

import (
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// TaskRecord is one task in the controller's ledger: one etcd key per task
// (<prefix>/tasks/<namespace>/<cluster>/<taskID>), so a per-task change is a
// small write, never a rewrite of the Cluster object.
//
// A record is written (checkpointed) before the ACCEPT that launches the task,
// and every status update is written here before it is acknowledged.
type TaskRecord struct {
	// ID is the Mesos task id: <namespace>.<cluster>.<ordinal>.<suffix>, the
	// suffix 32 random bits (controller.NewTaskID), so one ordinal's ids differ
	// from launch to launch with high probability, not certainty.
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	Cluster   string `json:"cluster"`
	Ordinal   int32  `json:"ordinal"`
	// TemplateHash is the hash of the task template the task was launched from;
	// a member whose hash differs from the spec's is out of date (rolling update).
	TemplateHash string `json:"templateHash"`
	// Generation of the Cluster when the task was launched.
	Generation int64 `json:"generation,omitempty"`

	AgentID    string  `json:"agentId,omitempty"`
	Hostname   string  `json:"hostname,omitempty"`
	Ports      []int32 `json:"ports,omitempty"`
	ExecutorID string  `json:"executorId,omitempty"`

	// State is the last observed Mesos state (TASK_STAGING until the first update).
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// StatusUUID is the uuid of the last status update written (base64), so a
	// redelivered update is recognised as a duplicate.
	StatusUUID string `json:"statusUUID,omitempty"`
	// StatusTime is the Mesos timestamp of the last update written; older ones are
	// out of order and ignored.
	StatusTime float64 `json:"statusTime,omitempty"`

	// KillRequested: the controller decided to kill this task; kills are retried
	// until the task is terminal.
	KillRequested bool   `json:"killRequested,omitempty"`
	KillReason    string `json:"killReason,omitempty"`

	LaunchedAt    time.Time  `json:"launchedAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	UnreachableAt *time.Time `json:"unreachableAt,omitempty"`
	// RunningAt is when the task was first seen TASK_RUNNING: a member is
	// ready once it has run for minReadySeconds, and its run is stable (the
	// restart back-off starts over) once it has run for restart.resetAfter.
	RunningAt *time.Time `json:"runningAt,omitempty"`
	// Restarts counts the consecutive failures of this ordinal before this
	// task was launched (its restart back-off), so the back-off survives
	// controller restarts and the forgetting of old records.
	Restarts int32 `json:"restarts,omitempty"`

	// HealthChecked and ReadinessChecked: the task was launched with a
	// health check (TaskInfo.health_check) or a readiness check
	// (TaskInfo.check), so its readiness waits for their results.
	HealthChecked    bool `json:"healthChecked,omitempty"`
	ReadinessChecked bool `json:"readinessChecked,omitempty"`
	// Healthy is the last health check result its executor reported (nil:
	// none yet).
	Healthy *bool `json:"healthy,omitempty"`
	// CheckPassing is whether its readiness check passed at its last result
	// (nil: none yet); CheckPassingSince is when it last started passing.
	CheckPassing      *bool      `json:"checkPassing,omitempty"`
	CheckPassingSince *time.Time `json:"checkPassingSince,omitempty"`
	// Volume is the member's reservation and persistent volumes on AgentID
	// (task.volumes), written before the ACCEPT that makes them. The newest
	// record of an ordinal holds them: its next task is launched on them.
	Volume *VolumeRecord `json:"volume,omitempty"`
}

// VolumeRecord describes a member's dynamic reservation (for Role, labelled
// with ID) and its persistent volumes, so the controller can relaunch the
// member on them, or destroy and unreserve them, after any restart.
type VolumeRecord struct {
	// ID labels every reserved resource (label converge.io/reservation) and
	// prefixes each volume's persistence id (<ID>.<name>).
	ID   string `json:"id"`
	Role string `json:"role"`
	// The reserved resources besides the volumes (cores, MiB).
	CPUs   float64 `json:"cpus"`
	MemMB  float64 `json:"memMB"`
	DiskMB float64 `json:"diskMB,omitempty"`
	// Volumes as launched: name, container path, size in MiB.
	Volumes []VolumeSpec `json:"volumes"`
}

// VolumeSpec is one persistent volume of a VolumeRecord.
type VolumeSpec struct {
	Name          string  `json:"name"`
	ContainerPath string  `json:"containerPath"`
	SizeMB        float64 `json:"sizeMB"`
}

// ElectionRecord is a cluster's election state (<prefix>/elections/<ns>/<name>).
// The epoch is persisted before an election starts, and the result (master and
// epoch) before it is published.
type ElectionRecord struct {
	Epoch int64 `json:"epoch"`
	// Phase: "electing" (asking for positions), "elected" (master persisted, not yet
	// confirmed promoted), "promoted" (the winner's executor confirmed).
	Phase     string    `json:"phase"`
	StartedAt time.Time `json:"startedAt"`
	// Deadline of this round; no winner by then restarts it under epoch+1.
	Deadline      time.Time `json:"deadline"`
	MasterTaskID  string    `json:"masterTaskId,omitempty"`
	MasterOrdinal int32     `json:"masterOrdinal,omitempty"`
	// Positions answered in this epoch, by task id.
	Positions  map[string]string `json:"positions,omitempty"`
	ElectedAt  *time.Time        `json:"electedAt,omitempty"`
	PromotedAt *time.Time        `json:"promotedAt,omitempty"`
	// MasterPosition is the last position a master reported in its lease
	// requests, by the master of MasterPositionEpoch (this epoch or an
	// earlier one: a new election carries it over), recorded at
	// MasterPositionAt. Elections measure members' lag from it
	// (election.maximumLagOnFailover). It is persisted at most once per lease
	// duration; the controller also keeps the latest report in memory.
	MasterPosition      string     `json:"masterPosition,omitempty"`
	MasterPositionEpoch int64      `json:"masterPositionEpoch,omitempty"`
	MasterPositionAt    *time.Time `json:"masterPositionAt,omitempty"`
	// Handover: the master is handed over rather than lost. In phase
	// "demoting" the master of Epoch is told to stop taking writes; the
	// next epoch's election is among the other members. Cleared once a
	// master is promoted (or the handover fails).
	Handover *Handover `json:"handover,omitempty"`
	// Switchover is the latest switchover request acted on
	// (status.switchover shows it).
	Switchover *v1alpha1.SwitchoverStatus `json:"switchover,omitempty"`
}

// Handover is a master handed over: by a rolling update, a delete or a
// switchover request.
type Handover struct {
	// From is the old master (task id, ordinal); it is not a candidate.
	From        string `json:"from"`
	FromOrdinal int32  `json:"fromOrdinal"`
	// FromEpoch is its epoch: only members that followed it may win.
	FromEpoch int64 `json:"fromEpoch"`
	// To is the ordinal asked for, if any: it wins when no other member's
	// position is ahead of its own.
	To     *int32 `json:"to,omitempty"`
	Reason string `json:"reason"`
	// Since is when the handover began (phase demoting persisted).
	Since time.Time `json:"since"`
	// DemotedAt: the old master confirmed it stopped taking writes.
	DemotedAt *time.Time `json:"demotedAt,omitempty"`
}

// Election phases.
const (
	PhaseElecting = "electing"
	PhaseElected  = "elected"
	PhasePromoted = "promoted"
	// PhaseDemoting: the master of Epoch is being handed over (Handover):
	// not published, its lease not renewed, told to demote.
	PhaseDemoting = "demoting"
)

// Endpoints is the published service discovery record
// (<prefix>/endpoints/<ns>/<name>): Mysos's ServerSet, made etcd. Clients watch it.
type Endpoints struct {
	Namespace string     `json:"namespace"`
	Cluster   string     `json:"cluster"`
	Epoch     int64      `json:"epoch"`
	Master    *Endpoint  `json:"master,omitempty"`
	Members   []Endpoint `json:"members"`
}

// Endpoint is one member's address.
type Endpoint struct {
	TaskID   string `json:"taskId"`
	Ordinal  int32  `json:"ordinal"`
	Hostname string `json:"hostname"`
	Port     int32  `json:"port,omitempty"`
}

// FrameworkState is the controller's Mesos framework (<prefix>/framework).
// The framework id is persisted here before it is relied on.
type FrameworkState struct {
	FrameworkID string `json:"frameworkId"`
	Name        string `json:"name,omitempty"`
	Role        string `json:"role,omitempty"`
	// Removed is set when the master says the framework was removed: the operator
	// must act (`converge serve --new-framework`); tasks of that framework are gone.
	Removed        bool      `json:"removed,omitempty"`
	RemovedMessage string    `json:"removedMessage,omitempty"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// Event is one entry of a cluster's bounded event history
// (<prefix>/events/<ns>/<name>), shown by `describe`.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // Normal | Warning
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}
