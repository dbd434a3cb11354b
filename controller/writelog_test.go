package controller

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// target is the address a writer writes to.
type target struct {
	mu   sync.Mutex
	addr string
}

func (t *target) set(a string) { t.mu.Lock(); t.addr = a; t.mu.Unlock() }
func (t *target) get() string  { t.mu.Lock(); defer t.mu.Unlock(); return t.addr }

// followMaster keeps to pointed at the named cluster's published master, as
// a client of converge endpoints -w would.
func followMaster(e *env, name string, to *target) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				if c := e.get(name); c != nil && c.Status.Master != nil {
					to.set(addrOf(*c.Status.Master))
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// write is one acknowledged INSERT.
type write struct {
	id          string
	addr        string
	sent, acked time.Time
}

// writeLog is the client's log of acknowledged writes and of refusals.
type writeLog struct {
	mu      sync.Mutex
	acks    []write
	refused []write // not acknowledged (sent = when tried)
	lastErr map[string]string
}

func (l *writeLog) record(w write, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastErr == nil {
		l.lastErr = map[string]string{}
	}
	if err != nil {
		l.refused = append(l.refused, w)
		l.lastErr[w.addr] = err.Error()
		return
	}
	l.acks = append(l.acks, w)
}

// waitAcks waits for n acknowledged writes to addr sent since then (an
// address may be reused by a later member) and returns the first.
func (l *writeLog) waitAcks(t *testing.T, addr string, since time.Time, n int, timeout time.Duration) write {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		var got []write
		for _, w := range l.acks {
			if w.addr == addr && !w.sent.Before(since) {
				got = append(got, w)
			}
		}
		last := l.lastErr[addr]
		l.mu.Unlock()
		if len(got) >= n {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged writes to %s after %s, want %d (last error: %s)", len(got), addr, timeout, n, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkOn checks that every acknowledged write so far is among the ids that
// ids reads on addr, and returns how many there were and how many are not.
func (l *writeLog) checkOn(t *testing.T, addr string, ids func(addr string) ([]string, error)) (acked, missing int) {
	t.Helper()
	l.mu.Lock()
	acks := append([]write(nil), l.acks...)
	l.mu.Unlock()
	var rows []string
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		if rows, err = ids(addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("read the writes on %s: %v", addr, err)
	}
	have := make(map[string]bool, len(rows))
	for _, id := range rows {
		have[id] = true
	}
	var lost []string
	for _, w := range acks {
		if !have[w.id] {
			lost = append(lost, fmt.Sprintf("%s (to %s, acknowledged %s)", w.id, w.addr, w.acked.Format("15:04:05.000")))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes are not on %s: %s", len(lost), len(acks), addr, strings.Join(lost, ", "))
	}
	return len(acks), len(lost)
}

// overlap returns when the old master (writes to oldAddr since oldSince)
// last acknowledged a write, when the first write the new one (newAddr since
// newSince) acknowledged was sent, and how many writes to the old address
// failed after that.
func (l *writeLog) overlap(oldAddr string, oldSince time.Time, newAddr string, newSince time.Time) (oldLast, newFirst time.Time, refusedAfter int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.acks {
		if w.addr == oldAddr && !w.sent.Before(oldSince) && w.acked.After(oldLast) {
			oldLast = w.acked
		}
		if w.addr == newAddr && !w.sent.Before(newSince) && (newFirst.IsZero() || w.sent.Before(newFirst)) {
			newFirst = w.sent
		}
	}
	for _, w := range l.refused {
		if w.addr == oldAddr && w.sent.After(newFirst) {
			refusedAfter++
		}
	}
	return oldLast, newFirst, refusedAfter
}

func (l *writeLog) lastError(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.lastErr[addr]; s != "" {
		return "last error: " + s
	}
	return "no error"
}
