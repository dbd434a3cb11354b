// Package mesosbridge is the one place that talks to a Mesos master, over the v1
// scheduler HTTP API through mesos-go's httpsched client. The controller sees only
// the Bridge interface: a stream of Events in, calls out.
package mesosbridge

import (
	"context"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// EventType says what an Event carries.
type EventType int

const (
	// EventSubscribed: (re)subscribed; FrameworkID is set. Explicit reconciliation
	// of the tasks returned by Config.ReconcileTasks starts now.
	EventSubscribed EventType = iota + 1
	// EventDisconnected: the stream broke; offers are void. The bridge reconnects.
	EventDisconnected
	// EventReconciled: the explicit reconciliation after the last (re)subscribe has
	// finished (every listed non-terminal task has answered). Until this arrives the
	// controller's view is stale and it must not launch replacements.
	EventReconciled
	// EventOffers: Offers is set.
	EventOffers
	// EventRescind: OfferID is set.
	EventRescind
	// EventUpdate: Status is set. Acknowledge it (Bridge.Acknowledge) only after it is
	// durable; updates without a uuid need no acknowledgement (Acknowledge ignores them).
	EventUpdate
	// EventMessage: Message is set (from an executor).
	EventMessage
	// EventFailure: AgentID and optionally ExecutorID / ExitStatus.
	EventFailure
	// EventFrameworkRemoved: the master removed the framework (failover timeout
	// passed or torn down). The bridge stops; an operator must start a new framework.
	EventFrameworkRemoved
	// EventError: an ERROR event from the master; Error holds the message.
	EventError
)

// Event is one thing that happened on Mesos.
type Event struct {
	Type        EventType
	FrameworkID string
	Offers      []mesos.Offer
	OfferID     mesos.OfferID
	Status      *mesos.TaskStatus
	Message     *Message
	AgentID     string
	ExecutorID  string
	ExitStatus  *int32
	Error       string
}

// Message is a framework message from or to an executor.
type Message struct {
	AgentID    string
	ExecutorID string
	Data       []byte
}

// ReconcileTask names a task for explicit reconciliation.
type ReconcileTask struct {
	TaskID  string
	AgentID string // may be empty
}

// Bridge is what the controller uses to drive Mesos.
type Bridge interface {
	// Events delivers everything the master says, in order.
	Events() <-chan Event
	// FrameworkID is the current framework id ("" before the first SUBSCRIBED).
	FrameworkID() string
	// Subscribed reports whether a stream is up.
	Subscribed() bool

	// Launch accepts offers (all on one agent) with LAUNCH operations for tasks;
	// unused resources are declined with refuseSeconds.
	Launch(ctx context.Context, offerIDs []mesos.OfferID, tasks []mesos.TaskInfo, refuseSeconds float64) error
	// Accept accepts offers (all on one agent) with operations applied in
	// order (RESERVE, CREATE, LAUNCH, DESTROY, UNRESERVE...: Mesos pipelines
	// them within one ACCEPT); unused resources are declined with
	// refuseSeconds.
	Accept(ctx context.Context, offerIDs []mesos.OfferID, ops []mesos.Offer_Operation, refuseSeconds float64) error
	// Decline declines offers with refuseSeconds.
	Decline(ctx context.Context, offerIDs []mesos.OfferID, refuseSeconds float64) error
	// Kill kills a task and keeps re-issuing KILL (with backoff) until an update
	// with a terminal state for it, or TASK_UNKNOWN, passes through Events.
	Kill(ctx context.Context, taskID, agentID string) error
	// Acknowledge acknowledges an update; a no-op for updates without a uuid.
	Acknowledge(ctx context.Context, status mesos.TaskStatus) error
	// Reconcile asks for the state of the tasks (empty: implicit reconciliation).
	Reconcile(ctx context.Context, tasks []ReconcileTask) error
	// SendMessage sends a framework message to an executor (best effort).
	SendMessage(ctx context.Context, agentID, executorID string, data []byte) error
	// Suppress stops offers for the framework's role; Revive asks for them again
	// (rate-limited).
	Suppress(ctx context.Context) error
	Revive(ctx context.Context) error
}
