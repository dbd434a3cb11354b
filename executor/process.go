package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startProcess starts argv in dir with env as the leader of a new process group,
// its stdout and stderr those of the executor (the sandbox's stdout and stderr
// files under Mesos), as the user env names (CONVERGE_TASK_USER).
func startProcess(argv []string, dir string, env []string) (*exec.Cmd, error) {
	cred, err := userCredential(env)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the executor dies the task dies with it, as Mesos destroys an
		// executor's container.
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start task process: %w", err)
	}
	return cmd, nil
}

// signalGroup sends sig to the process group led by pid. A group that is gone is
// not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to process group %d: %w", sig, pid, err)
	}
	return nil
}

// describeExit turns a process's wait error into (exit code, description).
// code is -1 when the process was ended by a signal.
func describeExit(err error) (int, string) {
	if err == nil {
		return 0, "exited with status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, fmt.Sprintf("terminated by signal %v", ws.Signal())
		}
		return ee.ExitCode(), fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	return -1, fmt.Sprintf("wait failed: %v", err)
}

// maxHookOutput bounds what a hook may print on stdout.
const maxHookOutput = 64 << 10

// hookResult is what runHook reports.
type hookResult struct {
	Stdout string // trimmed
}

// runHook runs `sh -c script` in dir with env and a timeout, as the task's user
// (CONVERGE_TASK_USER in env), in its own process group (killed whole on
// timeout or ctx end). Its stdout is returned trimmed
// (at most 64 KiB); its stderr is copied to stderrSink and its tail quoted in the
// error of a failed run.
func runHook(ctx context.Context, name, script, dir string, env []string, timeout time.Duration, stderrSink io.Writer) (hookResult, error) {
	cred, err := userCredential(env)
	if err != nil {
		return hookResult{}, fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	var stdout limitedBuffer
	stdout.max = maxHookOutput
	tail := &tailBuffer{max: 512}
	cmd.Stdout = &stdout
	if stderrSink == nil {
		stderrSink = io.Discard
	}
	cmd.Stderr = io.MultiWriter(stderrSink, tail)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGKILL) }
	// Background children may keep stdout open: do not wait for them for long.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		// Leave nothing of the hook behind.
		_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		var msg string
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			msg = fmt.Sprintf("%s timed out after %v", name, timeout)
		case ctx.Err() != nil:
			msg = fmt.Sprintf("%s cancelled", name)
		default:
			_, how := describeExit(err)
			msg = fmt.Sprintf("%s %s", name, how)
		}
		if t := strings.TrimSpace(tail.String()); t != "" {
			msg += ": " + t
		}
		return hookResult{}, errors.New(msg)
	}
	if stdout.overflow {
		return hookResult{}, fmt.Errorf("%s printed more than %d bytes", name, maxHookOutput)
	}
	return hookResult{Stdout: strings.TrimSpace(stdout.String())}, nil
}

// limitedBuffer keeps the first max bytes written and notes an overflow.
type limitedBuffer struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - b.buf.Len()
	if len(p) > room {
		b.overflow = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
