// Package election holds what the controller and member executors say to each
// other in an election (framework messages, JSON) and how replication positions
// compare. Pure: no I/O.
package election

import "encoding/json"

// Message types.
const (
	// TypePositionQuery: controller -> executor, "what is your position in Epoch?"
	TypePositionQuery = "position-query"
	// TypePosition: executor -> controller, the answer.
	TypePosition = "position"
	// TypePromote: controller -> executor of the winner of Epoch.
	TypePromote = "promote"
	// TypePromoted: executor -> controller, promoteCommand ran (Error set if it failed).
	TypePromoted = "promoted"
	// TypeLeaseRequest: the executor of the master of Epoch -> controller,
	// "renew my lease" (Seq numbers the requests of one executor). Position,
	// when set, is the master's latest replication position (positionCommand,
	// run beside the renewals): elections measure lag from it
	// (election.maximumLagOnFailover).
	TypeLeaseRequest = "lease-request"
	// TypeLeaseGrant: controller -> that executor: the request Seq is granted
	// for LeaseMillis, counted by the member from when it sent the request.
	TypeLeaseGrant = "lease-grant"
	// TypeFollow: controller -> executor of every other member: the master of
	// Epoch is MasterHost:MasterPort; run followCommand.
	TypeFollow = "follow"
	// TypeFollowed: executor -> controller, followCommand ran (Error set if it failed).
	TypeFollowed = "followed"
	// TypeDemote: controller -> executor of the master of Epoch, handed over
	// (a switchover): stop renewing the lease, run demoteCommand (with
	// CONVERGE_DEMOTE_REASON=switchover), or, failing that, end the task.
	TypeDemote = "demote"
	// TypeDemoted: executor -> controller: the member no longer takes
	// writes (Error set: demoteCommand failed and the task is being killed,
	// or the member cannot tell).
	TypeDemoted = "demoted"
)

// Message is the body of every election framework message.
type Message struct {
	Type     string `json:"type"`
	Epoch    int64  `json:"epoch"`
	TaskID   string `json:"taskId"`
	Position string `json:"position,omitempty"`
	Error    string `json:"error,omitempty"`

	Seq         int64  `json:"seq,omitempty"`
	LeaseMillis int64  `json:"leaseMillis,omitempty"`
	MasterHost  string `json:"masterHost,omitempty"`
	MasterPort  int32  `json:"masterPort,omitempty"`
}

// Encode returns the message as JSON.
func (m Message) Encode() []byte {
	b, _ := json.Marshal(m) // a struct of strings and ints always marshals
	return b
}

// Decode parses a message.
func Decode(data []byte) (Message, error) {
	var m Message
	err := json.Unmarshal(data, &m)
	return m, err
}
