package controller

import (
	"context"
	"sync"
)

// ackQueue holds acknowledgements due, for the acknowledgers. push never
// blocks: it is called from the writer's after callbacks, and the writer (and
// with it every launch) must not wait on acknowledgements. It needs no bound:
// an agent forwards at most one unacknowledged update per task, so the queue
// holds at most one entry per task.
type ackQueue struct {
	mu     sync.Mutex
	items  []pendingAck
	signal chan struct{} // holds a token while items may be waiting
}

func newAckQueue() *ackQueue { return &ackQueue{signal: make(chan struct{}, 1)} }

func (q *ackQueue) push(p pendingAck) {
	q.mu.Lock()
	q.items = append(q.items, p)
	q.mu.Unlock()
	q.wake()
}

func (q *ackQueue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop returns the oldest entry, waiting for one; false once ctx ends.
func (q *ackQueue) pop(ctx context.Context) (pendingAck, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			p := q.items[0]
			q.items[0] = pendingAck{}
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				q.wake() // another acknowledger takes the next
			}
			return p, true
		}
		q.mu.Unlock()
		select {
		case <-q.signal:
		case <-ctx.Done():
			return pendingAck{}, false
		}
	}
}
