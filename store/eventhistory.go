package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventHistory is the stored event history of one cluster (ListEvents'),
// with the etcd revision it was last written at.
type EventHistory struct {
	Namespace, Name string
	// Events are oldest first; nil when the history was deleted (in a watch).
	Events   []Event
	Revision int64
}

// EventHistoryChange is one change seen by WatchEventHistories; Err, if set,
// is the last value sent (the watch ended: compacted, or etcd lost).
type EventHistoryChange struct {
	EventHistory
	Err error
}

// IsCompacted reports whether err is etcd's: the revision asked for is
// compacted away.
func IsCompacted(err error) bool { return errors.Is(err, rpctypes.ErrCompacted) }

func (s *Store) eventsPrefix(ns string) string {
	if ns == "" {
		return s.prefix + "/events/"
	}
	return s.prefix + "/events/" + ns + "/"
}

// ListEventHistories returns the event histories of the clusters of
// namespace ns ("" = all), or of cluster ns/name only, as they were at etcd
// revision atRev (0 = now), and the revision of the read, to watch from.
// A compacted atRev is etcd's ErrCompacted.
func (s *Store) ListEventHistories(ctx context.Context, ns, name string, atRev int64) ([]EventHistory, int64, error) {
	if ns != "" || name != "" {
		if err := ValidateKeyName("namespace", ns); err != nil {
			return nil, 0, fmt.Errorf("list events: %w", err)
		}
	}
	key, opts := s.eventsPrefix(ns), []clientv3.OpOption{clientv3.WithPrefix()}
	if name != "" {
		if err := ValidateKeyName("name", name); err != nil {
			return nil, 0, fmt.Errorf("list events: %w", err)
		}
		key, opts = s.eventsKey(ns, name), nil
	}
	if atRev > 0 {
		opts = append(opts, clientv3.WithRev(atRev))
	}
	resp, err := s.get(ctx, key, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("list events: %w", err)
	}
	out := make([]EventHistory, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		h, ok, err := s.decodeEventHistory(kv.Key, kv.Value, kv.ModRevision)
		if err != nil {
			return nil, 0, fmt.Errorf("list events: %w", err)
		}
		if ok {
			out = append(out, h)
		}
	}
	return out, resp.Header.Revision, nil
}

// WatchEventHistories streams the changes of the event histories of
// namespace ns ("" = all) after revision fromRev (a revision of
// ListEventHistories, or later): each change is the whole
// new history of a cluster (nil Events when it was deleted, with its
// cluster). Unlike Watch it does not re-list: when fromRev is compacted or
// the watch is lost it sends one change with Err and closes, and the caller
// lists again (the Kubernetes API answers 410 Gone, as kube-apiserver does).
func (s *Store) WatchEventHistories(ctx context.Context, ns string, fromRev int64) <-chan EventHistoryChange {
	out := make(chan EventHistoryChange)
	go func() {
		defer close(out)
		send := func(c EventHistoryChange) bool {
			select {
			case out <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		for wr := range s.cli.Watch(wctx, s.eventsPrefix(ns), clientv3.WithPrefix(), clientv3.WithRev(fromRev+1)) {
			if err := wr.Err(); err != nil {
				send(EventHistoryChange{Err: fmt.Errorf("watch events: %w", err)})
				return
			}
			for _, ev := range wr.Events {
				var value []byte
				if ev.Type == clientv3.EventTypePut {
					value = ev.Kv.Value
				}
				h, ok, err := s.decodeEventHistory(ev.Kv.Key, value, ev.Kv.ModRevision)
				if err != nil {
					send(EventHistoryChange{Err: fmt.Errorf("watch events: %w", err)})
					return
				}
				if ok && !send(EventHistoryChange{EventHistory: h}) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(EventHistoryChange{Err: fmt.Errorf("watch events: the etcd watch ended")})
		}
	}()
	return out
}

// decodeEventHistory decodes one events key; value nil is a deleted history.
func (s *Store) decodeEventHistory(key, value []byte, rev int64) (EventHistory, bool, error) {
	ns, name, ok := nsNameFromKey(s.eventsPrefix(""), string(key))
	if !ok {
		return EventHistory{}, false, nil
	}
	h := EventHistory{Namespace: ns, Name: name, Revision: rev}
	if value != nil {
		if err := json.Unmarshal(value, &h.Events); err != nil {
			return EventHistory{}, false, fmt.Errorf("decode events of %s/%s: %w", ns, name, err)
		}
		if h.Events == nil {
			h.Events = []Event{}
		}
	}
	return h, true, nil
}
