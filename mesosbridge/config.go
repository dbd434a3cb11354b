package mesosbridge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// FrameworkStore persists the framework id. store.Store satisfies it (through an
// adapter if need be); tests may use a map.
type FrameworkStore interface {
	// LoadFrameworkID returns the stored framework id, "" if there is none.
	LoadFrameworkID(ctx context.Context) (string, error)
	// SaveFrameworkID makes id durable. The bridge calls it before it reports a new
	// framework id (EventSubscribed), so no task is ever launched under an id that a
	// restart would forget.
	SaveFrameworkID(ctx context.Context, id string) error
	// MarkFrameworkRemoved records that the master removed the framework.
	MarkFrameworkRemoved(ctx context.Context, msg string) error
}

// Config configures a Client. Only Masters, FrameworkName and State are required.
type Config struct {
	// Masters are the masters' base URLs (http(s)://host:port); several for HA.
	Masters []string
	// FrameworkName is FrameworkInfo.name.
	FrameworkName string
	// Role is the framework's role (default "*"), used when Roles is empty.
	Role string
	// Roles are the framework's roles: it subscribes with the MULTI_ROLE
	// capability and gets offers for each (resources reserved for a role are
	// offered to that role only). Default: [Role].
	Roles []string
	// Principal and Secret: HTTP basic authentication to the master when Secret is
	// set; Principal also goes into FrameworkInfo. The secret is never logged.
	Principal string
	Secret    string
	// User is FrameworkInfo.user (default: the current OS user, else "root").
	User string
	// Hostname is FrameworkInfo.hostname (default os.Hostname()).
	Hostname string
	// FailoverTimeout: how long the master keeps the framework's tasks after the
	// scheduler disconnects (default 7 days).
	FailoverTimeout time.Duration
	// Checkpoint asks agents to checkpoint the framework's tasks. Checkpointing is on
	// unless DisableCheckpoint is set (so the zero Config checkpoints).
	Checkpoint        bool
	DisableCheckpoint bool
	// CACertFile: PEM bundle to verify the masters' TLS certificates (https masters).
	CACertFile string
	// Codec: "protobuf" (default) or "json".
	Codec string
	// NewFramework ignores a stored framework id and subscribes as a new framework:
	// the operator's answer to a removed framework.
	NewFramework bool

	// ImplicitReconcileInterval: period of implicit reconciliation (default 15m).
	ImplicitReconcileInterval time.Duration
	// ReconcileBackoff and ReconcileMaxBackoff: first and longest wait between
	// explicit reconciliation retries (defaults 1s and 1m).
	ReconcileBackoff    time.Duration
	ReconcileMaxBackoff time.Duration
	// HeartbeatMisses: missed heartbeat intervals before the stream is dropped (default 3).
	HeartbeatMisses int
	// ReconnectBackoff and ReconnectMaxBackoff bound the jittered exponential backoff
	// between subscription attempts (defaults 100ms and 10s).
	ReconnectBackoff    time.Duration
	ReconnectMaxBackoff time.Duration
	// KillRetry and KillMaxRetry bound the backoff of re-issued KILLs (defaults 2s, 30s).
	KillRetry    time.Duration
	KillMaxRetry time.Duration
	// ReviveInterval: at most one REVIVE per interval; requests in between are
	// coalesced into one (default 1s).
	ReviveInterval time.Duration
	// CallTimeout bounds a single call's HTTP exchange and the wait for a new leader
	// before a redirected call is retried (default 10s).
	CallTimeout time.Duration
	// EventBuffer is the capacity of the Events channel (default 1024).
	EventBuffer int

	// State loads and saves the framework id. Required.
	State FrameworkStore
	// ReconcileTasks returns the ledger's non-terminal tasks; read at each (re)subscribe.
	ReconcileTasks func() []ReconcileTask
	// Log receives the bridge's logs (key/value pairs).
	Log logr.Logger
	// Registerer, when set, receives the bridge's Prometheus metrics.
	Registerer prometheus.Registerer
}

// String redacts the secret so a Config may be printed.
func (c Config) String() string {
	secret := ""
	if c.Secret != "" {
		secret = "<redacted>"
	}
	return fmt.Sprintf("{Masters:%v FrameworkName:%q Role:%q Roles:%q Principal:%q Secret:%s}",
		c.Masters, c.FrameworkName, c.Role, c.Roles, c.Principal, secret)
}

// MarshalLog keeps the secret out of logr output.
func (c Config) MarshalLog() any { return c.String() }

const (
	defaultFailoverTimeout   = 7 * 24 * time.Hour
	defaultImplicitReconcile = 15 * time.Minute
	defaultHeartbeatInterval = 15 * time.Second
)

// withDefaults validates cfg and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	if err := c.normalizeMasters(); err != nil {
		return c, err
	}
	if c.FrameworkName == "" {
		return c, errors.New("mesosbridge: FrameworkName is required")
	}
	if c.State == nil {
		return c, errors.New("mesosbridge: State (FrameworkStore) is required")
	}
	if c.Secret != "" && c.Principal == "" {
		return c, errors.New("mesosbridge: a secret needs a principal")
	}
	if err := c.defaultRoles(); err != nil {
		return c, err
	}
	c.defaultIdentity()
	if c.FailoverTimeout <= 0 {
		c.FailoverTimeout = defaultFailoverTimeout
	}
	switch c.Codec {
	case "":
		c.Codec = "protobuf"
	case "protobuf", "json":
	default:
		return c, fmt.Errorf("mesosbridge: unknown codec %q (want protobuf or json)", c.Codec)
	}
	c.defaultTimings()
	if c.EventBuffer <= 0 {
		c.EventBuffer = 1024
	}
	if c.ReconcileTasks == nil {
		c.ReconcileTasks = func() []ReconcileTask { return nil }
	}
	return c, nil
}

// normalizeMasters turns each master into its scheduler endpoint URL,
// dropping blank entries; at least one must remain.
func (c *Config) normalizeMasters() error {
	if len(c.Masters) == 0 {
		return errors.New("mesosbridge: no Mesos master given")
	}
	masters := make([]string, 0, len(c.Masters))
	for _, m := range c.Masters {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		u, err := normalizeMaster(m)
		if err != nil {
			return err
		}
		masters = append(masters, u)
	}
	if len(masters) == 0 {
		return errors.New("mesosbridge: no Mesos master given")
	}
	c.Masters = masters
	return nil
}

// defaultRoles fills Role and Roles from each other ("*" when neither is
// given) and refuses an empty or repeated role. Roles is copied: the
// caller's slice is never shared.
func (c *Config) defaultRoles() error {
	if c.Role == "" && len(c.Roles) > 0 {
		c.Role = c.Roles[0]
	}
	if c.Role == "" {
		c.Role = "*"
	}
	if len(c.Roles) == 0 {
		c.Roles = []string{c.Role}
	}
	seen := map[string]bool{}
	for _, r := range c.Roles {
		if r == "" || seen[r] {
			return fmt.Errorf("mesosbridge: roles %q: empty or repeated role", c.Roles)
		}
		seen[r] = true
	}
	c.Roles = append([]string(nil), c.Roles...)
	return nil
}

// defaultIdentity fills FrameworkInfo's user (the current OS user, else
// root) and hostname.
func (c *Config) defaultIdentity() {
	if c.User == "" {
		if u, err := user.Current(); err == nil && u.Username != "" {
			c.User = u.Username
		} else {
			c.User = "root"
		}
	}
	if c.Hostname == "" {
		if h, err := os.Hostname(); err == nil {
			c.Hostname = h
		}
	}
}

// defaultTimings fills the intervals, backoffs and timeouts left unset.
func (c *Config) defaultTimings() {
	if c.ImplicitReconcileInterval <= 0 {
		c.ImplicitReconcileInterval = defaultImplicitReconcile
	}
	defaultBackoff(&c.ReconcileBackoff, &c.ReconcileMaxBackoff, time.Second, time.Minute)
	if c.HeartbeatMisses <= 0 {
		c.HeartbeatMisses = 3
	}
	defaultBackoff(&c.ReconnectBackoff, &c.ReconnectMaxBackoff, 100*time.Millisecond, 10*time.Second)
	defaultBackoff(&c.KillRetry, &c.KillMaxRetry, 2*time.Second, 30*time.Second)
	if c.ReviveInterval <= 0 {
		c.ReviveInterval = time.Second
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
}

// defaultBackoff fills a backoff's first and longest waits left unset; the
// longest is never below the first.
func defaultBackoff(first, longest *time.Duration, defFirst, defLongest time.Duration) {
	if *first <= 0 {
		*first = defFirst
	}
	if *longest <= 0 {
		*longest = defLongest
	}
	if *longest < *first {
		*longest = *first
	}
}

// normalizeMaster turns "host:port", "http://host:port" or
// "http://host:port/api/v1/scheduler" into the scheduler endpoint URL.
func normalizeMaster(m string) (string, error) {
	if !strings.Contains(m, "://") {
		m = "http://" + m
	}
	u, err := url.Parse(m)
	if err != nil {
		// url.Error repeats the whole URL, credentials included: keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("mesosbridge: bad master URL %q: %w", redactUserinfo(m), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("mesosbridge: bad master URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return "", fmt.Errorf("mesosbridge: bad master URL %q: no host", u.Redacted())
	}
	if u.User != nil {
		return "", fmt.Errorf("mesosbridge: master URL %s must not carry credentials: use Principal and Secret", u.Redacted())
	}
	u.Path = schedulerPath
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

const schedulerPath = "/api/v1/scheduler"

// leaderFromLocation resolves a 307's Location ("//host:port/api/v1/scheduler" as
// Mesos sends it, or an absolute URL) against the endpoint that answered.
func leaderFromLocation(location, current string) (string, error) {
	if location == "" {
		return "", errors.New("redirect without Location")
	}
	cur, err := url.Parse(current)
	if err != nil {
		return "", fmt.Errorf("parse endpoint %q: %w", current, err)
	}
	loc, err := url.Parse(location)
	if (err != nil || loc.Host == "") && !strings.HasPrefix(location, "/") && !strings.Contains(location, "://") {
		// A bare "host:port" (not what Mesos sends, but seen in proxies): accept it too.
		loc, err = url.Parse("//" + location)
	}
	if err != nil {
		return "", fmt.Errorf("parse Location %q: %w", location, err)
	}
	if loc.Host == "" {
		return "", fmt.Errorf("location %q names no host", location)
	}
	out := url.URL{Scheme: cur.Scheme, Host: loc.Host, Path: schedulerPath}
	if loc.Scheme == "http" || loc.Scheme == "https" {
		out.Scheme = loc.Scheme
	}
	return out.String(), nil
}

// ReadSecretFile reads the HTTP authentication secret for Config.Secret from path
// (`--secret-file`): the file's content without surrounding whitespace. Errors
// name the file, never its content.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("secret file %s holds more than one line", path)
	}
	return s, nil
}

// redactUserinfo masks whatever stands between "scheme://" and the last "@" of a
// URL that did not parse, so an error never repeats a password.
func redactUserinfo(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	return raw[:start] + "xxxxx" + raw[at:]
}
