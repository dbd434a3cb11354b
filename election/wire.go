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
)

// Message is the body of every election framework message.
type Message struct {
	Type     string `json:"type"`
	Epoch    int64  `json:"epoch"`
	TaskID   string `json:"taskId"`
	Position string `json:"position,omitempty"`
	Error    string `json:"error,omitempty"`
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
