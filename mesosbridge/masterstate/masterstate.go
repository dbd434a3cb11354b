// Package masterstate reads the part of a Mesos master's GET /master/state
// that converge's tools need: frameworks with their tasks, and agents. Both
// `converge logs` (to find a member's sandbox) and the chaos suite (to check
// its invariants against what Mesos runs) read it through here, so the JSON
// field names and the HTTP handling live in one place.
package masterstate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// State is the part of GET /master/state converge reads. Field names are
// Mesos's own (src/master/readonly_handler.cpp writes frameworks and
// slaves, src/common/http.cpp a task's framework_id, executor_id and
// slave_id).
type State struct {
	Frameworks []Framework `json:"frameworks"`
	Slaves     []Agent     `json:"slaves"`
}

// Framework is one entry of State.Frameworks.
type Framework struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Active           bool   `json:"active"`
	Connected        bool   `json:"connected"`
	Tasks            []Task `json:"tasks"`
	UnreachableTasks []Task `json:"unreachable_tasks"`
	CompletedTasks   []Task `json:"completed_tasks"`
}

// Task is one task of a Framework.
type Task struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	FrameworkID string `json:"framework_id"`
	ExecutorID  string `json:"executor_id"`
	SlaveID     string `json:"slave_id"`
}

// Agent is one entry of State.Slaves.
type Agent struct {
	ID       string `json:"id"`
	PID      string `json:"pid"`
	Hostname string `json:"hostname"`
	Active   bool   `json:"active"`
}

// maxBytes bounds what Get reads: a master with many completed tasks
// answers with tens of MiB, a misdirected URL could stream forever.
const maxBytes = 256 << 20

// Get reads GET master+"/master/state" (master is http(s)://host:port). A
// non-leading Mesos master answers 307 to the leader: client follows it
// unless its CheckRedirect says otherwise, and then it is an error like any
// status other than 200, quoting the start of the body.
func Get(ctx context.Context, client *http.Client, master string) (*State, error) {
	url := strings.TrimSuffix(master, "/") + "/master/state"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err // *url.Error already names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var st State
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBytes)).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return &st, nil
}

// Framework returns the first framework registered under name.
func (s *State) Framework(name string) (*Framework, bool) {
	for i := range s.Frameworks {
		if s.Frameworks[i].Name == name {
			return &s.Frameworks[i], true
		}
	}
	return nil, false
}

// Task returns the task with id from any framework's active, unreachable
// or completed tasks (the last listed, should Mesos list it twice).
func (s *State) Task(id string) (*Task, bool) {
	var found *Task
	for _, f := range s.Frameworks {
		for _, list := range [][]Task{f.Tasks, f.UnreachableTasks, f.CompletedTasks} {
			for i := range list {
				if list[i].ID == id {
					found = &list[i]
				}
			}
		}
	}
	return found, found != nil
}

// Agent returns the agent with id.
func (s *State) Agent(id string) (*Agent, bool) {
	for i := range s.Slaves {
		if s.Slaves[i].ID == id {
			return &s.Slaves[i], true
		}
	}
	return nil, false
}
