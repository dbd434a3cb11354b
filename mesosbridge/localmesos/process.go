package localmesos

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/internal/proctree"
)

// process is a task's or executor's process, in its own process group so that
// signals reach everything it started.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu          sync.Mutex
	terminating bool
	exitCode    int
	signaled    bool
	// tree: the leader's descendants seen when it was signalled, those
	// that left its group too; they are killed with it.
	tree []proctree.Proc
}

// startProcess starts argv in dir with env, its stdout and stderr appended to
// the sandbox's files, in its own process group. ra, if not nil, is the user
// it runs as (its stdout and stderr files are the user's too, as the Mesos
// fetcher chowns them).
func startProcess(dir string, argv []string, env []string, ra *runAs) (*process, error) {
	stdout, err := os.OpenFile(filepath.Join(dir, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	stderr, err := os.OpenFile(filepath.Join(dir, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		stdout.Close()
		return nil, err
	}
	if ra != nil {
		for _, f := range []*os.File{stdout, stderr} {
			if err := f.Chown(ra.uid, ra.gid); err != nil {
				stdout.Close()
				stderr.Close()
				return nil, fmt.Errorf("chown %s to %q: %w", f.Name(), ra.name, err)
			}
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// Own process group (signals reach the whole tree); killed if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: ra.credential()}
	if err := cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		stdout.Close()
		stderr.Close()
		p.mu.Lock()
		p.exitCode = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.signaled = true
				p.exitCode = 128 + int(ws.Signal())
			} else {
				p.exitCode = ee.ExitCode()
			}
		} else if err != nil {
			p.exitCode = -1
		}
		tree := p.tree
		p.mu.Unlock()
		// Whatever the leader did, leave nothing of its group (or of the
		// tree it had when signalled) behind.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		proctree.Signal(tree, syscall.SIGKILL)
		close(p.done)
	}()
	return p, nil
}

func (p *process) signal(sig syscall.Signal) {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// signalTree sends sig to the group and to every descendant of the leader,
// also those that left its group (setsid, setpgid): a stopped task leaves
// no process behind.
func (p *process) signalTree(sig syscall.Signal) {
	if p == nil || p.cmd.Process == nil {
		return
	}
	var found []proctree.Proc
	select {
	case <-p.done: // reaped: its pid may be another's now
	default:
		found = proctree.Descendants(p.cmd.Process.Pid)
	}
	p.mu.Lock()
	p.tree = append(p.tree, found...)
	tree := append([]proctree.Proc(nil), p.tree...)
	p.mu.Unlock()
	p.signal(sig)
	proctree.Signal(tree, sig)
}

// terminate sends SIGTERM to the task's processes and SIGKILL after grace.
// It does not block.
func (p *process) terminate(grace time.Duration) {
	p.mu.Lock()
	if p.terminating {
		p.mu.Unlock()
		return
	}
	p.terminating = true
	p.mu.Unlock()
	p.signal(syscall.SIGCONT)
	p.signalTree(syscall.SIGTERM)
	go func() {
		select {
		case <-p.done:
		case <-time.After(grace):
			p.signalTree(syscall.SIGKILL)
		}
	}()
}

func (p *process) killNow() {
	p.mu.Lock()
	p.terminating = true
	p.mu.Unlock()
	p.signalTree(syscall.SIGKILL)
	p.signal(syscall.SIGCONT)
}

func (p *process) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *process) result() (code int, signaled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode, p.signaled
}

// sandboxDir is where Mesos puts an executor's run directory.
func (m *Mesos) sandboxDir(a *agent, fwID, execID string) string {
	return filepath.Join(m.workDir, "agents", a.id, "frameworks", fwID, "executors", execID, "runs", "latest")
}

func envList(base []string, extra map[string]string, ce *mesos.CommandInfo) []string {
	env := append([]string(nil), base...)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable environment, the same on every launch
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	if ce != nil && ce.Environment != nil {
		for _, v := range ce.Environment.Variables {
			if v.Name != "" {
				env = append(env, v.Name+"="+v.GetValue())
			}
		}
	}
	return env
}

func commandArgv(c *mesos.CommandInfo) ([]string, error) {
	if c == nil || c.Value == nil || *c.Value == "" {
		if c != nil && !c.GetShell() && len(c.Arguments) > 0 {
			return nil, errors.New("command value (the program) is empty")
		}
		return nil, errors.New("command is empty")
	}
	if c.GetShell() {
		return []string{"/bin/sh", "-c", *c.Value}, nil
	}
	argv := []string{*c.Value}
	if len(c.Arguments) > 1 {
		argv = append(argv, c.Arguments[1:]...)
	}
	return argv, nil
}

// startCommandTask runs a task.command the way Mesos's command executor does:
// fetch URIs into a fresh sandbox, TASK_STARTING, `sh -c` the command, TASK_RUNNING;
// exit 0 is TASK_FINISHED, anything else TASK_FAILED; a kill is TASK_KILLED. Under
// the default executor (a task of a group) the task's sandbox is
// tasks/<task id> in the executor's, as the default executor's nested containers
// have it, and a task without a command fails to launch.
func (m *Mesos) startCommandTask(t *task) {
	ra, ok := m.runAsOrDrop(t, t.info.Command.GetUser())
	if !ok {
		return
	}
	m.agentStatus(t, mesos.TASK_STARTING, nil, "", mesos.SOURCE_EXECUTOR)
	dir := m.sandboxDir(t.agent, t.fw.id, t.exec.id)
	t.exec.dir = dir
	m.reuseSandbox(dir)
	if t.exec.kind == execDefault {
		dir = filepath.Join(dir, "tasks", t.id)
	}
	var uris []mesos.CommandInfo_URI
	if t.info.Command != nil {
		uris = append(uris, t.info.Command.URIs...)
	}
	user := commandUser(t.fw, t.info.Command)
	go func() {
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = m.fetcher.fetchAll(uris, dir, user)
		}
		var chownErr error
		if err == nil {
			chownErr = ra.chownSandbox(dir)
		}
		if err == nil && chownErr == nil {
			chownErr = m.linkVolumes(t.agent, dir, t.res, ra)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closed || t.forgotten {
			return
		}
		if t.killing {
			m.agentStatus(t, mesos.TASK_KILLED, nil, "Task killed before it started", mesos.SOURCE_EXECUTOR)
			return
		}
		fail := func(msg string) {
			reason := mesos.REASON_CONTAINER_LAUNCH_FAILED
			m.agentStatus(t, mesos.TASK_FAILED, &reason, msg, mesos.SOURCE_AGENT)
		}
		if err != nil {
			fail("Failed to fetch URIs: " + err.Error())
			return
		}
		if chownErr != nil {
			fail("Failed to prepare the sandbox: " + chownErr.Error())
			return
		}
		argv, err := commandArgv(t.info.Command)
		if err != nil {
			fail(err.Error())
			return
		}
		env := envList(os.Environ(), m.taskEnv(t, dir), t.info.Command)
		p, err := startProcess(dir, argv, env, ra)
		if err != nil {
			fail("Failed to launch command: " + err.Error())
			return
		}
		t.proc = p
		t.exec.taskProcs = append(t.exec.taskProcs, p)
		if t.agent.frozen() {
			p.signal(syscall.SIGSTOP)
		}
		m.agentStatus(t, mesos.TASK_RUNNING, nil, "", mesos.SOURCE_EXECUTOR)
		m.startChecks(t, dir, env, ra)
		go m.awaitCommandTask(t, p)
	}()
}

func (m *Mesos) awaitCommandTask(t *task, p *process) {
	<-p.done
	code, signaled := p.result()
	m.mu.Lock()
	defer m.mu.Unlock()
	t.stopChecking()
	if m.closed || t.forgotten {
		return
	}
	switch {
	case t.killing && t.killedByHealth:
		// As Mesos's executors: "a kill occurred due to a failing health check".
		m.agentUpdate(t, m.newAgentStatus(t, mesos.TASK_KILLED, nil, "Command terminated with signal Terminated: killed by its health check", mesos.SOURCE_EXECUTOR, false))
	case t.killing:
		m.agentStatus(t, mesos.TASK_KILLED, nil, "Command terminated with signal Terminated", mesos.SOURCE_EXECUTOR)
	case code == 0:
		m.agentStatus(t, mesos.TASK_FINISHED, nil, "Command exited with status 0", mesos.SOURCE_EXECUTOR)
	case signaled:
		m.agentStatus(t, mesos.TASK_FAILED, nil, fmt.Sprintf("Command terminated with signal %d", code-128), mesos.SOURCE_EXECUTOR)
	default:
		m.agentStatus(t, mesos.TASK_FAILED, nil, fmt.Sprintf("Command exited with status %d", code), mesos.SOURCE_EXECUTOR)
	}
}

// taskEnv is what the command executor gives a task.
func (m *Mesos) taskEnv(t *task, dir string) map[string]string {
	env := map[string]string{
		"MESOS_TASK_ID":      t.id,
		"MESOS_SANDBOX":      dir,
		"MESOS_DIRECTORY":    dir,
		"MESOS_AGENT_ID":     t.agent.id,
		"MESOS_SLAVE_ID":     t.agent.id,
		"MESOS_FRAMEWORK_ID": t.fw.id,
		"MESOS_EXECUTOR_ID":  t.exec.id,
		"HOST":               t.agent.hostname,
		"LIBPROCESS_IP":      t.agent.hostname,
	}
	ports := t.res.portList()
	var ps []string
	for i, p := range ports {
		s := strconv.FormatUint(p, 10)
		env["PORT"+strconv.Itoa(i)] = s
		ps = append(ps, s)
	}
	if len(ports) > 0 {
		env["PORT"] = strconv.FormatUint(ports[0], 10)
		env["PORTS"] = strings.Join(ps, ",")
	}
	return env
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func safeJoin(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if p != dir && !strings.HasPrefix(p, dir+string(os.PathSeparator)) {
		return "", fmt.Errorf("archive entry %q escapes the sandbox", name)
	}
	return p, nil
}

func extractTar(path, dir string, gz bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := safeJoin(dir, h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(p, tr, os.FileMode(h.Mode)&0o777); err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Symlink(h.Linkname, p)
		}
	}
}

func extractZip(path, dir string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		p, err := safeJoin(dir, f.Name)
		if err != nil {
			return err
		}
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		err = writeFile(p, rc, f.Mode()&0o777)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if mode == 0 {
		mode = 0o644
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
