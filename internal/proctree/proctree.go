// Package proctree finds the processes descended from a process, those that
// left its process group or session too, so that stopping a task stops all
// of it, as Mesos's cgroups isolation does (a process group alone is the
// posix launcher's, which children escape with setsid or setpgid).
package proctree

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Proc is a process as /proc shows it: its start time (clock ticks since
// boot) tells it from a later process that reuses its pid.
type Proc struct {
	Pid   int
	Start uint64
}

// Descendants returns the live descendants of pid (not pid itself), read from
// /proc; nil where there is no /proc.
func Descendants(pid int) []Proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]Proc{}
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		ppid, start, err := stat(p)
		if err != nil {
			continue // gone meanwhile
		}
		children[ppid] = append(children[ppid], Proc{Pid: p, Start: start})
	}
	var out []Proc
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !seen[c.Pid] {
				seen[c.Pid] = true
				out = append(out, c)
				queue = append(queue, c.Pid)
			}
		}
	}
	return out
}

// Signal sends sig to every process of ps that is still the one recorded
// (same start time); processes that are gone are skipped.
func Signal(ps []Proc, sig syscall.Signal) {
	for _, p := range ps {
		if _, start, err := stat(p.Pid); err != nil || start != p.Start {
			continue
		}
		_ = syscall.Kill(p.Pid, sig)
	}
}

// Alive reports whether p still runs (a zombie does not).
func Alive(p Proc) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/stat")
	if err != nil {
		return false
	}
	f, err := fields(string(b))
	if err != nil || f[0] == "Z" || f[0] == "X" {
		return false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return err == nil && start == p.Start
}

// stat reads the parent pid and start time of pid from /proc/pid/stat.
func stat(pid int) (ppid int, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	f, err := fields(string(b))
	if err != nil {
		return 0, 0, err
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, err
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return ppid, start, err
}

// fields are those of a stat line after "pid (comm)": state is [0], ppid
// [1], starttime [19] (proc(5) fields 3, 4 and 22). comm may hold spaces and
// parentheses, so the line is cut at its last ')'.
func fields(line string) ([]string, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return nil, errors.New("malformed stat line")
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 20 {
		return nil, errors.New("short stat line")
	}
	return f, nil
}
