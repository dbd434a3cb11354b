package localmesos

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Options configure a local Mesos cluster: masters, agents and how tasks run.
type Options struct {
	// Listen is the first master's address ("127.0.0.1:0" picks a free port). With
	// Masters > 1 every further master listens on its own free port of the same host.
	Listen string
	// Masters is the number of masters (default 1). Only one leads; the others answer
	// 307 with the leader's location, as real Mesos masters do.
	Masters int
	// Agents is the number of agents (default 3).
	Agents int
	// AgentResources is every agent's total, e.g.
	// "cpus:4;mem:8192;disk:65536;ports:[31000-31999]". Port ranges are shifted per
	// agent so that agents never overlap (see README).
	AgentResources string
	// AgentAttributes is an attribute template, e.g. "rack:r{i%3};zone:z1"; {i} is the
	// agent index, {i%N} the index modulo N.
	AgentAttributes string
	// WorkDir holds task sandboxes (default: a temporary directory removed by Close).
	WorkDir string
	// GCDelay: the sandbox of a terminated executor is removed this long after
	// it terminated, sooner when the disk fills (Mesos's --gc_delay; default
	// 15m here, a week in Mesos; negative: never).
	GCDelay time.Duration
	// GCDiskHeadroom (Mesos's --gc_disk_headroom, default 0.1; negative
	// means 0): every DiskWatchInterval, sandboxes older than GCDelay *
	// max(0, 1 - GCDiskHeadroom - disk usage) are removed at once.
	GCDiskHeadroom float64
	// DiskWatchInterval between disk usage checks (Mesos's
	// --disk_watch_interval, default 1m).
	DiskWatchInterval time.Duration
	// FetcherCacheSize bounds the fetcher cache for URIs with cache: true
	// (Mesos's --fetcher_cache_size, default 2 GiB; negative: no cache). The
	// cache lives in <WorkDir>/fetch and is emptied at Start, as in Mesos.
	FetcherCacheSize int64
	// FrameworksHome is prepended to relative local paths in URIs (Mesos's
	// --frameworks_home). Empty: a relative URI fails to fetch, as on an
	// agent without the flag.
	FrameworksHome string
	// Simulate runs no processes: tasks are state machines (see SimOptions).
	Simulate bool
	Sim      SimOptions
	// HeartbeatInterval between scheduler HEARTBEAT events (default 15s).
	HeartbeatInterval time.Duration
	// AllocationInterval between offer rounds (default 1s).
	AllocationInterval time.Duration
	// ResendInterval is the first resend delay of an unacknowledged status update
	// (default 10s; doubles up to 10 minutes).
	ResendInterval time.Duration
	// AgentUnreachableAfter: how long after /fault/agent/partition the master
	// marks the agent unreachable (default 5s). A real master does so when the
	// agent fails its health checks: --agent_ping_timeout (15s) times
	// --max_agent_ping_timeouts (5), 75s by default.
	AgentUnreachableAfter time.Duration
	// ExecutorHeartbeatInterval: when > 0, executor streams get HEARTBEAT events at
	// this interval. Off by default: mesos-go's example executor treats unknown events
	// as fatal.
	ExecutorHeartbeatInterval time.Duration
	// Principal and Secret: when set, every API call needs HTTP basic auth.
	Principal, Secret string
	// Hostname the masters advertise (default: the listen host).
	Hostname string
	Log      logr.Logger
}

// SimOptions shape simulated tasks.
type SimOptions struct {
	// LaunchDelay between TASK_STARTING and TASK_RUNNING (default 50ms).
	LaunchDelay time.Duration
	// FailureRate in [0,1]: the chance that a launch ends in TASK_FAILED instead of RUNNING.
	FailureRate float64
	// Position answers election position queries (default: a deterministic number
	// derived from the task id).
	Position func(taskID string) string
	// Seed for the random choices (default 1).
	Seed int64
}

const (
	defaultAgentResources = "cpus:4;mem:8192;disk:65536;ports:[31000-31999]"
	maxResendInterval     = 10 * time.Minute
	maxFrameBytes         = 4 << 20
	// defaultAgentUnreachableAfter is short so that a partition shows in
	// `converge dev` and tests within seconds (Mesos: 75s).
	defaultAgentUnreachableAfter = 5 * time.Second
	// defaultGCDelay keeps a dead task's sandbox (its stdout and stderr)
	// long enough to read, short enough that trying things for an
	// afternoon does not fill the disk.
	defaultGCDelay = 15 * time.Minute
)

func (o *Options) setDefaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Masters <= 0 {
		o.Masters = 1
	}
	if o.Agents <= 0 {
		o.Agents = 3
	}
	if o.AgentResources == "" {
		o.AgentResources = defaultAgentResources
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 15 * time.Second
	}
	if o.AllocationInterval <= 0 {
		o.AllocationInterval = time.Second
	}
	if o.ResendInterval <= 0 {
		o.ResendInterval = 10 * time.Second
	}
	if o.AgentUnreachableAfter <= 0 {
		o.AgentUnreachableAfter = defaultAgentUnreachableAfter
	}
	if o.GCDelay == 0 {
		o.GCDelay = defaultGCDelay
	}
	switch {
	case o.GCDiskHeadroom == 0:
		o.GCDiskHeadroom = 0.1
	case o.GCDiskHeadroom < 0:
		o.GCDiskHeadroom = 0
	}
	if o.DiskWatchInterval <= 0 {
		o.DiskWatchInterval = time.Minute
	}
	if o.FetcherCacheSize == 0 {
		o.FetcherCacheSize = 2 << 30
	}
	if o.Sim.LaunchDelay <= 0 {
		o.Sim.LaunchDelay = 50 * time.Millisecond
	}
	if o.Sim.Seed == 0 {
		o.Sim.Seed = 1
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
}

// AgentResources is a parsed agent resource spec.
type AgentResources struct {
	Scalars map[string]float64 // cpus, mem, disk, gpus...
	Ports   []mesos.Value_Range
}

// ParseAgentResources parses "cpus:4;mem:8192;disk:65536;ports:[31000-31999]"
// (Mesos's --resources syntax without roles). Missing cpus, mem, disk and ports take
// the defaults 4, 8192, 65536 and [31000-31999].
func ParseAgentResources(s string) (AgentResources, error) {
	out := AgentResources{Scalars: map[string]float64{}}
	have := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, ":")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok || name == "" || val == "" {
			return out, fmt.Errorf("resource %q: want name:value", part)
		}
		if have[name] {
			return out, fmt.Errorf("resource %q given twice", name)
		}
		have[name] = true
		if strings.HasPrefix(val, "[") {
			if !strings.HasSuffix(val, "]") {
				return out, fmt.Errorf("resource %q: ranges must look like [31000-31999,32000-32100]", name)
			}
			if name != "ports" {
				return out, fmt.Errorf("resource %q: only ports may be a range", name)
			}
			for _, r := range strings.Split(val[1:len(val)-1], ",") {
				lo, hi, ok := strings.Cut(strings.TrimSpace(r), "-")
				b, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
				e, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
				if !ok || err1 != nil || err2 != nil || e < b || b == 0 {
					return out, fmt.Errorf("resource ports: bad range %q", r)
				}
				out.Ports = append(out.Ports, mesos.Value_Range{Begin: b, End: e})
			}
			out.Ports = squash(out.Ports)
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || f < 0 {
			return out, fmt.Errorf("resource %q: bad scalar %q", name, val)
		}
		out.Scalars[name] = f
	}
	def := map[string]float64{"cpus": 4, "mem": 8192, "disk": 65536}
	for k, v := range def {
		if !have[k] {
			out.Scalars[k] = v
		}
	}
	if !have["ports"] {
		out.Ports = []mesos.Value_Range{{Begin: 31000, End: 31999}}
	}
	return out, nil
}

// agentPorts shifts the configured port ranges for agent i so that agents never
// overlap: agent i gets its own block of max(1000, span) ports. Blocks that would pass
// 65535 wrap around to the first block (only sensible with Simulate, where no
// process binds a port; agents still have distinct hostnames).
func agentPorts(base []mesos.Value_Range, i int) []mesos.Value_Range {
	if len(base) == 0 {
		return nil
	}
	lo, hi := base[0].Begin, base[len(base)-1].End
	span := hi - lo + 1
	if span < 1000 {
		span = 1000
	}
	blocks := (65535 - lo + 1) / span
	if blocks == 0 {
		blocks = 1
	}
	shift := uint64(i) % blocks * span
	out := make([]mesos.Value_Range, len(base))
	for k, r := range base {
		out[k] = mesos.Value_Range{Begin: r.Begin + shift, End: r.End + shift}
	}
	return out
}

// agentAttributes expands the attribute template for agent i: "rack:r{i%3};zone:z1".
// Values that parse as numbers become SCALAR attributes, others TEXT.
func agentAttributes(tmpl string, i int) ([]mesos.Attribute, error) {
	var out []mesos.Attribute
	for _, part := range strings.Split(tmpl, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("attribute %q: want name:value", part)
		}
		v, err := expandIndex(val, i)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out = append(out, mesos.Attribute{Name: name, Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: f}})
		} else {
			out = append(out, mesos.Attribute{Name: name, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}})
		}
	}
	return out, nil
}

func expandIndex(s string, i int) (string, error) {
	var b strings.Builder
	for {
		start := strings.Index(s, "{")
		if start < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		end := strings.Index(s[start:], "}")
		if end < 0 {
			return "", fmt.Errorf("unclosed { in %q", s)
		}
		b.WriteString(s[:start])
		expr := s[start+1 : start+end]
		switch {
		case expr == "i":
			b.WriteString(strconv.Itoa(i))
		case strings.HasPrefix(expr, "i%"):
			n, err := strconv.Atoi(expr[2:])
			if err != nil || n <= 0 {
				return "", fmt.Errorf("bad expression {%s}", expr)
			}
			b.WriteString(strconv.Itoa(i % n))
		default:
			return "", fmt.Errorf("bad expression {%s}: use {i} or {i%%N}", expr)
		}
		s = s[start+end+1:]
	}
}
