package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataLockName is the file under --data-dir that `converge dev` holds an
// exclusive flock(2) on while it runs, with its pid inside.
const dataLockName = "converge.pid"

// dataLock is a held lock on a data directory; Release (or the process's
// exit: the kernel drops flock locks with the last descriptor) frees it.
type dataLock struct {
	f *os.File
}

// lockDataDir takes the data directory for this process, without waiting.
// etcd locks its own files too, but blocking and without a word: a second
// `converge dev` on the same directory would hang there, deaf to Ctrl-C.
// This lock fails at once instead and names the process holding the dir.
func lockDataDir(dir string) (*dataLock, error) {
	path := filepath.Join(dir, dataLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another converge dev (%s); stop it, or give another --data-dir", dir, holder)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", path, err)
	}
	// Ours now: record who holds it, for the error above.
	if err = f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	return &dataLock{f: f}, nil
}

// readHolder says which process holds the lock, from the pid it wrote.
func readHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return "pid unknown"
	}
	return "pid " + strconv.Itoa(pid)
}

// Release frees the directory. The pid file stays: an empty or stale pid is
// harmless, since only the flock says whether the dir is held.
func (l *dataLock) Release() {
	if l != nil && l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}
