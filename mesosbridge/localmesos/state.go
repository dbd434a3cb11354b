package localmesos

import (
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// State is a snapshot in the shape of Mesos's GET /master/state.
type State struct {
	Version             string           `json:"version"`
	ID                  string           `json:"id"`
	PID                 string           `json:"pid"`
	Hostname            string           `json:"hostname"`
	Leader              string           `json:"leader"`
	LeaderInfo          *LeaderInfo      `json:"leader_info,omitempty"`
	ActivatedSlaves     int              `json:"activated_slaves"`
	DeactivatedSlaves   int              `json:"deactivated_slaves"`
	UnreachableSlaves   int              `json:"unreachable_slaves"`
	Frameworks          []FrameworkState `json:"frameworks"`
	CompletedFrameworks []FrameworkState `json:"completed_frameworks"`
	Slaves              []AgentState     `json:"slaves"`
}

// LeaderInfo names the leading master.
type LeaderInfo struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	Port     int    `json:"port"`
	PID      string `json:"pid"`
}

// FrameworkState is one framework of State.
type FrameworkState struct {
	ID               string       `json:"id"`
	Name             string       `json:"name"`
	User             string       `json:"user"`
	Role             string       `json:"role,omitempty"`
	Roles            []string     `json:"roles,omitempty"` // MULTI_ROLE frameworks only, as Mesos
	Principal        string       `json:"principal,omitempty"`
	Active           bool         `json:"active"`
	Connected        bool         `json:"connected"`
	Recovered        bool         `json:"recovered"`
	FailoverTimeout  float64      `json:"failover_timeout"`
	Checkpoint       bool         `json:"checkpoint"`
	Capabilities     []string     `json:"capabilities"`
	RegisteredTime   float64      `json:"registered_time"`
	UnregisteredTime float64      `json:"unregistered_time"`
	Tasks            []TaskState  `json:"tasks"`
	UnreachableTasks []TaskState  `json:"unreachable_tasks"`
	CompletedTasks   []TaskState  `json:"completed_tasks"`
	Offers           []OfferState `json:"offers"`
	UsedResources    Resources    `json:"used_resources"`
	OfferedResources Resources    `json:"offered_resources"`
}

// TaskState is one task of State.
type TaskState struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	FrameworkID string        `json:"framework_id"`
	ExecutorID  string        `json:"executor_id"`
	SlaveID     string        `json:"slave_id"`
	State       string        `json:"state"`
	Resources   Resources     `json:"resources"`
	Statuses    []StatusState `json:"statuses"`
}

// StatusState is one status of a task's history, with the fields Mesos's
// endpoints render (common/http.cpp json(TaskStatus)).
type StatusState struct {
	State           string          `json:"state"`
	Timestamp       float64         `json:"timestamp"`
	Labels          []mesos.Label   `json:"labels,omitempty"`
	ContainerStatus json.RawMessage `json:"container_status,omitempty"`
	Healthy         *bool           `json:"healthy,omitempty"`
}

// OfferState is an outstanding offer.
type OfferState struct {
	ID          string    `json:"id"`
	FrameworkID string    `json:"framework_id"`
	SlaveID     string    `json:"slave_id"`
	Resources   Resources `json:"resources"`
}

// AgentState is one agent of State.
type AgentState struct {
	ID                  string    `json:"id"`
	PID                 string    `json:"pid"`
	Hostname            string    `json:"hostname"`
	Port                int       `json:"port"`
	Resources           Resources `json:"resources"`
	UsedResources       Resources `json:"used_resources"`
	OfferedResources    Resources `json:"offered_resources"`
	UnreservedResources Resources `json:"unreserved_resources"`
	// ReservedResources: per role, the summary of what is reserved for it;
	// the _full fields list every resource as Mesos's protobuf JSON in the
	// endpoint format (role, reservation and reservations; disk with its
	// persistence and volume), as SlavesWriter::writeSlave renders them.
	ReservedResources       map[string]Resources         `json:"reserved_resources"`
	ReservedResourcesFull   map[string][]json.RawMessage `json:"reserved_resources_full"`
	UnreservedResourcesFull []json.RawMessage            `json:"unreserved_resources_full"`
	UsedResourcesFull       []json.RawMessage            `json:"used_resources_full"`
	OfferedResourcesFull    []json.RawMessage            `json:"offered_resources_full"`
	Attributes              map[string]any               `json:"attributes"`
	Active                  bool                         `json:"active"`
	Version                 string                       `json:"version"`
}

// Resources as Mesos's endpoints render them: scalars and "[a-b, c-d]" port ranges.
type Resources struct {
	CPUs  float64            `json:"cpus"`
	Mem   float64            `json:"mem"`
	Disk  float64            `json:"disk"`
	GPUs  float64            `json:"gpus"`
	Ports string             `json:"ports,omitempty"`
	Other map[string]float64 `json:"-"`
}

func resJSON(r res) Resources {
	r = r.flat()
	out := Resources{CPUs: r.cpus, Mem: r.mem, Disk: r.disk, GPUs: r.other["gpus"]}
	if len(r.ports) > 0 {
		var ps []string
		for _, p := range r.ports {
			ps = append(ps, strconv.FormatUint(p.Begin, 10)+"-"+strconv.FormatUint(p.End, 10))
		}
		out.Ports = "[" + strings.Join(ps, ", ") + "]"
	}
	return out
}

// State returns a snapshot of the cluster as GET /master/state shows it.
func (m *Mesos) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateLocked(nil)
}

func (m *Mesos) stateLocked(self *master) State {
	leader := m.masters[m.leader]
	if self == nil {
		self = leader
	}
	st := State{
		Version:  "1.11.0",
		ID:       self.id,
		PID:      "master@" + self.hostport(),
		Hostname: self.hostname,
		Leader:   "master@" + leader.hostport(),
		LeaderInfo: &LeaderInfo{
			ID: leader.id, Hostname: leader.hostname, Port: leader.port, PID: "master@" + leader.hostport(),
		},
		Frameworks:          []FrameworkState{},
		CompletedFrameworks: []FrameworkState{},
		Slaves:              []AgentState{},
	}
	for _, fw := range m.fwOrder {
		st.Frameworks = append(st.Frameworks, m.frameworkState(fw))
	}
	for _, fw := range m.completedFws {
		st.CompletedFrameworks = append(st.CompletedFrameworks, m.frameworkState(fw))
	}
	for _, a := range m.agents {
		// Registered agents are listed, active or not (a partitioned one
		// the master has not yet marked is deactivated); an unreachable one
		// is no longer registered: only counted (readonly_handler.cpp).
		switch {
		case a.gone:
			continue // removed: not registered, not unreachable
		case a.reachable:
			st.ActivatedSlaves++
		case a.markedUnreachable():
			st.UnreachableSlaves++
			continue
		default:
			st.DeactivatedSlaves++
		}
		attrs := map[string]any{}
		for _, at := range a.attrs {
			switch {
			case at.Text != nil:
				attrs[at.Name] = at.Text.Value
			case at.Scalar != nil:
				attrs[at.Name] = at.Scalar.Value
			}
		}
		st.Slaves = append(st.Slaves, AgentState{
			ID:                  a.id,
			PID:                 "slave(1)@" + net.JoinHostPort(a.hostname, strconv.Itoa(a.port())),
			Hostname:            a.hostname,
			Port:                a.port(),
			Resources:           resJSON(a.total),
			UsedResources:       resJSON(a.used),
			OfferedResources:    resJSON(a.offered),
			UnreservedResources: resJSON(a.total.unreserved()),
			Attributes:          attrs,
			Active:              a.reachable,
			Version:             "1.11.0",
		})
		fullResources(&st.Slaves[len(st.Slaves)-1], a)
	}
	return st
}

func (m *Mesos) frameworkState(fw *framework) FrameworkState {
	fs := FrameworkState{
		ID:               fw.id,
		Name:             fw.info.Name,
		User:             fw.info.User,
		Principal:        fw.info.GetPrincipal(),
		Active:           fw.connected,
		Connected:        fw.connected,
		FailoverTimeout:  fw.info.GetFailoverTimeout(),
		Checkpoint:       fw.info.GetCheckpoint(),
		Capabilities:     []string{},
		RegisteredTime:   float64(fw.registeredAt.UnixNano()) / 1e9,
		UnregisteredTime: unixSecs(fw.unregisteredAt),
		Tasks:            []TaskState{},
		UnreachableTasks: []TaskState{},
		CompletedTasks:   []TaskState{},
		Offers:           []OfferState{},
	}
	if fw.multiRole {
		fs.Roles = append([]string{}, fw.roles...)
	} else if len(fw.roles) == 1 {
		fs.Role = fw.roles[0]
	}
	for _, c := range fw.info.Capabilities {
		fs.Capabilities = append(fs.Capabilities, c.Type.String())
	}
	ids := make([]string, 0, len(fw.tasks))
	for id := range fw.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var used, offered res
	for _, id := range ids {
		t := fw.tasks[id]
		ts := taskState(t)
		if t.state == mesos.TASK_UNREACHABLE {
			fs.UnreachableTasks = append(fs.UnreachableTasks, ts)
			continue
		}
		fs.Tasks = append(fs.Tasks, ts)
		if !t.freed {
			used.add(t.res)
		}
	}
	for _, t := range fw.completed {
		fs.CompletedTasks = append(fs.CompletedTasks, taskState(t))
	}
	oids := make([]string, 0, len(fw.offers))
	for id := range fw.offers {
		oids = append(oids, id)
	}
	sort.Strings(oids)
	for _, id := range oids {
		o := fw.offers[id]
		offered.add(o.res)
		fs.Offers = append(fs.Offers, OfferState{ID: o.id, FrameworkID: fw.id, SlaveID: o.agent.id, Resources: resJSON(o.res)})
	}
	fs.UsedResources = resJSON(used)
	fs.OfferedResources = resJSON(offered)
	return fs
}

func unixSecs(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func taskState(t *task) TaskState {
	ts := TaskState{
		ID:          t.id,
		Name:        t.info.Name,
		FrameworkID: t.fw.id,
		State:       t.state.String(),
		Resources:   resJSON(t.res),
		Statuses:    []StatusState{},
	}
	if t.agent != nil {
		ts.SlaveID = t.agent.id
	} else {
		ts.SlaveID = t.info.AgentID.Value
	}
	if t.exec != nil && t.exec.hasExecutorID() {
		ts.ExecutorID = t.exec.id
	}
	for _, st := range t.statuses {
		ss := StatusState{State: st.GetState().String(), Timestamp: st.GetTimestamp(), Healthy: st.Healthy}
		if st.Labels != nil {
			ss.Labels = st.Labels.Labels
		}
		if st.ContainerStatus != nil {
			ss.ContainerStatus, _ = st.ContainerStatus.MarshalJSON()
		}
		ts.Statuses = append(ts.Statuses, ss)
	}
	return ts
}

func (m *Mesos) serveState(ms *master, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "Expecting a 'GET' request", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	leader := m.masters[m.leader]
	if ms != nil && ms != leader {
		// A non-leading master redirects to the leader, as Mesos's endpoints do.
		m.mu.Unlock()
		w.Header().Set("Location", "//"+leader.hostport()+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	st := m.stateLocked(ms)
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// serveRedirect is GET /master/redirect: 307 to the leading master ("//host:port/master").
func (m *Mesos) serveRedirect(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	leader := m.masters[m.leader].hostport()
	m.mu.Unlock()
	w.Header().Set("Location", "//"+leader+strings.TrimSuffix(r.URL.Path, "/redirect"))
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// fullResources fills an agent's reserved_resources and _full fields.
func fullResources(as *AgentState, a *agent) {
	as.ReservedResources = map[string]Resources{}
	as.ReservedResourcesFull = map[string][]json.RawMessage{}
	for role, r := range a.total.byRole() {
		as.ReservedResources[role] = resJSON(r)
		as.ReservedResourcesFull[role] = fullJSON(r)
	}
	as.UnreservedResourcesFull = fullJSON(a.total.unreserved())
	as.UsedResourcesFull = fullJSON(a.used)
	as.OfferedResourcesFull = fullJSON(a.offered)
}

// fullJSON renders resources as Mesos's JSON::Protobuf of each Resource.
func fullJSON(r res) []json.RawMessage {
	out := []json.RawMessage{}
	for _, x := range r.protoIn("", endpointFormat) {
		b, err := json.Marshal(&x)
		if err == nil {
			out = append(out, b)
		}
	}
	return out
}
