package proctree

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFieldsCutsAtTheLastParen(t *testing.T) {
	f, err := fields("42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if f[0] != "S" || f[1] != "7" || f[19] != "123456" {
		t.Fatalf("state %q ppid %q start %q, want S 7 123456", f[0], f[1], f[19])
	}
	if _, err := fields("42 (x) S 1"); err == nil {
		t.Fatal("a short line parsed")
	}
}

// TestDescendantsFindsWhatLeftTheGroup: a grandchild in its own session is
// a descendant; Signal reaches it; a recorded process whose start time no
// longer matches (a reused pid) is not signalled.
func TestDescendantsFindsWhatLeftTheGroup(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `setsid sh -c 'sleep 1000 & echo $! > escaped; wait' & wait`)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		Signal(Descendants(cmd.Process.Pid), syscall.SIGKILL) // whatever a failure left
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var escaped int
	deadline := time.Now().Add(10 * time.Second)
	for escaped == 0 {
		b, _ := os.ReadFile(dir + "/escaped")
		escaped, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("no escaped pid")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var found *Proc
	for _, p := range Descendants(cmd.Process.Pid) {
		if p.Pid == escaped {
			p := p
			found = &p
		}
	}
	if found == nil {
		t.Fatalf("the setsid grandchild %d is not among the descendants of %d", escaped, cmd.Process.Pid)
	}
	Signal([]Proc{{Pid: found.Pid, Start: found.Start + 1}}, syscall.SIGKILL)
	if !Alive(*found) {
		t.Fatal("a process with another start time was signalled")
	}
	Signal([]Proc{*found}, syscall.SIGKILL)
	for Alive(*found) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d survived SIGKILL", found.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
