// Package checks runs a task's Mesos health check (TaskInfo.health_check) and
// check (TaskInfo.check) as a Mesos executor's checker library does
// (apache/mesos src/checks/health_checker.cpp, checker.cpp and
// checker_process.cpp). Both of converge's executors use it: localmesos's
// command and default executors, and `converge executor`.
//
//   - The first check runs delay_seconds after the checker starts (when the
//     task is RUNNING); the next one interval_seconds after the previous one
//     finished or timed out. A check that takes longer than timeout_seconds
//     (0: no timeout) is aborted (a command's whole process group killed)
//     and counts as failed.
//   - command: `sh -c` (or the exec form) in the task's sandbox, with its
//     environment and user; exit status 0 passes. http: GET
//     scheme://host:port/path, following redirects and not verifying TLS
//     certificates (Mesos runs `curl -s -S -L -k`); 200..399 passes. tcp: a
//     TCP connection to host:port.
//   - Health (HealthChecker): failures during grace_period_seconds after
//     the start are ignored until a check first passes. Each counted failure
//     is reported (healthy false, with the count of failures in a row and
//     KillTask once that count reaches consecutive_failures); a pass is
//     reported the first time and after failures.
//   - Check (Checker): the CheckStatusInfo is reported whenever it differs
//     from the previous one; a check that could not be performed (timed
//     out, could not connect for http) reports a CheckStatusInfo with only
//     its type set.
//
// Mesos sends HTTP and TCP checks to 127.0.0.1; Host says where (localmesos's
// agents are loopback addresses of their own, and their tasks listen there).
package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Target is what a check runs against: the task's sandbox, environment and
// user for command checks, the address HTTP and TCP checks connect to.
type Target struct {
	Dir  string
	Env  []string
	Cred *syscall.Credential // nil: the caller's user
	// Host for HTTP and TCP checks; empty means 127.0.0.1, as Mesos.
	Host string
	// Output receives a command check's stdout and stderr (Mesos: the
	// executor's stderr); nil discards them.
	Output io.Writer
}

// Host is where an executor on an agent whose address is agentIP sends HTTP
// and TCP checks: 127.0.0.1 as Mesos, unless the agent is itself another
// loopback address (localmesos's 127.0.0.2, ...), where its tasks listen.
func Host(agentIP string) string {
	if ip := net.ParseIP(agentIP); ip != nil && ip.IsLoopback() {
		return agentIP
	}
	return "127.0.0.1"
}

// HealthStatus is what a health checker tells its executor (Mesos's
// TaskHealthStatus).
type HealthStatus struct {
	Healthy             bool
	ConsecutiveFailures int
	// KillTask: the failures in a row reached consecutive_failures; the
	// executor kills the task.
	KillTask bool
	// Why the last check failed ("" when healthy), for logs.
	Why string
}

// probe is one check of either kind, in CheckInfo's terms.
type probe struct {
	kind     mesos.CheckInfo_Type
	command  *mesos.CommandInfo
	scheme   string
	port     uint32
	path     string
	delay    time.Duration
	interval time.Duration
	timeout  time.Duration
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func healthProbe(hc *mesos.HealthCheck) probe {
	p := probe{delay: seconds(hc.GetDelaySeconds()), interval: seconds(hc.GetIntervalSeconds()), timeout: seconds(hc.GetTimeoutSeconds())}
	switch hc.GetType() {
	case mesos.HealthCheck_COMMAND:
		p.kind, p.command = mesos.CheckInfo_COMMAND, hc.Command
	case mesos.HealthCheck_HTTP:
		p.kind, p.scheme, p.port, p.path = mesos.CheckInfo_HTTP, hc.HTTP.GetScheme(), hc.HTTP.GetPort(), hc.HTTP.GetPath()
	case mesos.HealthCheck_TCP:
		p.kind, p.port = mesos.CheckInfo_TCP, hc.TCP.GetPort()
	}
	return p
}

func checkProbe(ci *mesos.CheckInfo) probe {
	p := probe{kind: ci.GetType(), delay: seconds(ci.GetDelaySeconds()), interval: seconds(ci.GetIntervalSeconds()), timeout: seconds(ci.GetTimeoutSeconds())}
	switch ci.GetType() {
	case mesos.CheckInfo_COMMAND:
		if ci.Command != nil {
			p.command = &ci.Command.Command
		}
	case mesos.CheckInfo_HTTP:
		p.port, p.path = ci.HTTP.GetPort(), ci.HTTP.GetPath()
	case mesos.CheckInfo_TCP:
		p.port = ci.TCP.GetPort()
	}
	return p
}

// Validate says why a health check cannot run (Mesos's validateHealthCheck:
// a type, the part the type names, non-negative times); nil if it can.
func Validate(hc *mesos.HealthCheck) error {
	switch {
	case hc.GetType() == mesos.HealthCheck_COMMAND && hc.Command.GetValue() == "":
		return errors.New("command health check must contain a command")
	case hc.GetType() == mesos.HealthCheck_HTTP && hc.HTTP == nil:
		return errors.New("expecting 'http' to be set for HTTP health check")
	case hc.GetType() == mesos.HealthCheck_TCP && hc.TCP == nil:
		return errors.New("expecting 'tcp' to be set for TCP health check")
	case hc.GetType() == mesos.HealthCheck_UNKNOWN:
		return errors.New("health check must specify 'type'")
	case hc.GetDelaySeconds() < 0 || hc.GetIntervalSeconds() < 0 || hc.GetTimeoutSeconds() < 0 || hc.GetGracePeriodSeconds() < 0:
		return errors.New("health check times must be non-negative")
	}
	return nil
}

// ValidateCheck is Validate for a CheckInfo (Mesos's validateCheckInfo).
func ValidateCheck(ci *mesos.CheckInfo) error {
	switch {
	case ci.GetType() == mesos.CheckInfo_COMMAND && (ci.Command == nil || ci.Command.Command.GetValue() == ""):
		return errors.New("command check must contain a command")
	case ci.GetType() == mesos.CheckInfo_HTTP && ci.HTTP == nil:
		return errors.New("expecting 'http' to be set for HTTP check")
	case ci.GetType() == mesos.CheckInfo_TCP && ci.TCP == nil:
		return errors.New("expecting 'tcp' to be set for TCP check")
	case ci.GetType() == mesos.CheckInfo_UNKNOWN:
		return errors.New("check must specify 'type'")
	case ci.GetDelaySeconds() < 0 || ci.GetIntervalSeconds() < 0 || ci.GetTimeoutSeconds() < 0:
		return errors.New("check times must be non-negative")
	}
	return nil
}

// loop runs p after its delay and then every interval until ctx ends,
// handing each result (a status, or an error when the check could not be
// performed) to f.
func (p probe) loop(ctx context.Context, tgt Target, f func(mesos.CheckStatusInfo, error)) {
	wait := p.delay
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		st, err := p.perform(ctx, tgt)
		if ctx.Err() != nil {
			return // stopped meanwhile: as a paused checker, drop the result
		}
		f(st, err)
		wait = p.interval
	}
}

// RunHealth runs a health check until ctx ends, calling report as Mesos's
// HealthChecker calls its executor back. It returns at once if hc is invalid.
func RunHealth(ctx context.Context, hc *mesos.HealthCheck, tgt Target, report func(HealthStatus)) error {
	if err := Validate(hc); err != nil {
		return err
	}
	start := time.Now()
	grace := seconds(hc.GetGracePeriodSeconds())
	limit := int(hc.GetConsecutiveFailures())
	initializing, failures := true, 0
	go healthProbe(hc).loop(ctx, tgt, func(st mesos.CheckStatusInfo, err error) {
		if err == nil {
			err = interpret(st)
		}
		if err != nil {
			if initializing && grace > 0 && time.Since(start) <= grace {
				return // still in the grace period
			}
			failures++
			report(HealthStatus{ConsecutiveFailures: failures, KillTask: failures >= limit, Why: err.Error()})
			return
		}
		if initializing || failures > 0 {
			report(HealthStatus{Healthy: true})
			initializing = false
		}
		failures = 0
	})
	return nil
}

// RunCheck runs a check until ctx ends, calling report with each
// CheckStatusInfo that differs from the previous one, as Mesos's Checker.
func RunCheck(ctx context.Context, ci *mesos.CheckInfo, tgt Target, report func(mesos.CheckStatusInfo)) error {
	if err := ValidateCheck(ci); err != nil {
		return err
	}
	var prev *mesos.CheckStatusInfo
	go checkProbe(ci).loop(ctx, tgt, func(st mesos.CheckStatusInfo, err error) {
		if err != nil {
			st = emptyStatus(ci.GetType())
		}
		if prev != nil && prev.Equal(&st) {
			return
		}
		prev = &st
		report(st)
	})
	return nil
}

// Passed reports whether a check status is a pass: exit status 0, an HTTP
// status in 200..399, a TCP connection made.
func Passed(st *mesos.CheckStatusInfo) bool {
	return st != nil && interpret(*st) == nil
}

// interpret is Mesos's interpretCheckStatusInfo (health_checker.cpp).
func interpret(st mesos.CheckStatusInfo) error {
	switch st.GetType() {
	case mesos.CheckInfo_COMMAND:
		if st.Command == nil || st.Command.ExitCode == nil {
			return errors.New("command did not complete")
		}
		if c := st.Command.GetExitCode(); c != 0 {
			return fmt.Errorf("command exited with status %d", c)
		}
	case mesos.CheckInfo_HTTP:
		if st.HTTP == nil || st.HTTP.StatusCode == nil {
			return errors.New("no HTTP response")
		}
		if c := st.HTTP.GetStatusCode(); c < 200 || c >= 400 {
			return fmt.Errorf("unexpected HTTP response code: %d", c)
		}
	case mesos.CheckInfo_TCP:
		if !st.TCP.GetSucceeded() {
			return errors.New("TCP connection failed")
		}
	default:
		return errors.New("unknown check type")
	}
	return nil
}

// emptyStatus is Mesos's createEmptyCheckStatusInfo: the type and an empty
// result, for a check that could not be performed.
func emptyStatus(kind mesos.CheckInfo_Type) mesos.CheckStatusInfo {
	st := mesos.CheckStatusInfo{Type: kind.Enum()}
	switch kind {
	case mesos.CheckInfo_COMMAND:
		st.Command = &mesos.CheckStatusInfo_Command{}
	case mesos.CheckInfo_HTTP:
		st.HTTP = &mesos.CheckStatusInfo_Http{}
	case mesos.CheckInfo_TCP:
		st.TCP = &mesos.CheckStatusInfo_Tcp{}
	}
	return st
}

// perform runs the check once.
func (p probe) perform(ctx context.Context, tgt Target) (mesos.CheckStatusInfo, error) {
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	st := mesos.CheckStatusInfo{Type: p.kind.Enum()}
	switch p.kind {
	case mesos.CheckInfo_COMMAND:
		code, err := runCommand(ctx, p.command, tgt)
		if err != nil {
			return st, err
		}
		st.Command = &mesos.CheckStatusInfo_Command{ExitCode: &code}
	case mesos.CheckInfo_HTTP:
		code, err := getHTTP(ctx, p, tgt)
		if err != nil {
			return st, err
		}
		st.HTTP = &mesos.CheckStatusInfo_Http{StatusCode: &code}
	case mesos.CheckInfo_TCP:
		ok := dialTCP(ctx, hostPort(tgt, p.port))
		st.TCP = &mesos.CheckStatusInfo_Tcp{Succeeded: &ok}
	}
	return st, nil
}

func hostPort(tgt Target, port uint32) string {
	host := tgt.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// runCommand runs a command check in its own process group, killed whole
// when the timeout passes (Mesos: os::killtree(pid, SIGKILL)).
func runCommand(ctx context.Context, c *mesos.CommandInfo, tgt Target) (int32, error) {
	argv := []string{"/bin/sh", "-c", c.GetValue()}
	if c.Shell != nil && !*c.Shell {
		argv = append([]string{c.GetValue()}, c.Arguments[min(1, len(c.Arguments)):]...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = tgt.Dir
	cmd.Env = append([]string(nil), tgt.Env...)
	if c.Environment != nil {
		for _, v := range c.Environment.Variables {
			cmd.Env = append(cmd.Env, v.Name+"="+v.GetValue())
		}
	}
	out := tgt.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: tgt.Cred}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the check command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return 0, fmt.Errorf("command timed out: %w", ctx.Err())
	}
	// Whatever the check left in its group goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int32(ws.Signal()), nil
		}
		return int32(ee.ExitCode()), nil
	}
	return 0, fmt.Errorf("wait for the check command: %w", err)
}

// insecure is curl -k: the task's certificate is not verified.
var insecure = &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as Mesos's curl -k
	DisableKeepAlives: true,
	Proxy:             nil, // never through the agent's HTTP proxy
}

func getHTTP(ctx context.Context, p probe, tgt Target) (uint32, error) {
	scheme := p.scheme
	if scheme == "" {
		scheme = "http"
	}
	path := p.path
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+hostPort(tgt, p.port)+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: insecure}).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return uint32(resp.StatusCode), nil
}

func dialTCP(ctx context.Context, addr string) bool {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
