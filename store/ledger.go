package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxEvents is how many events a cluster's history keeps (newest last).
const MaxEvents = 50

// ListTasks returns the ledger of one cluster, sorted by task id.
func (s *Store) ListTasks(ctx context.Context, ns, name string) ([]TaskRecord, error) {
	if err := validateNsName(ns, name); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return s.listTasks(ctx, s.tasksPrefix(ns, name))
}

// ListAllTasks returns the whole ledger, sorted by namespace, cluster and task id.
func (s *Store) ListAllTasks(ctx context.Context) ([]TaskRecord, error) {
	return s.listTasks(ctx, s.prefix+"/tasks/")
}

func (s *Store) listTasks(ctx context.Context, prefix string) ([]TaskRecord, error) {
	resp, err := s.get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list tasks under %s: %w", prefix, err)
	}
	out := make([]TaskRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r TaskRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decode task %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// GetElection returns a cluster's election record, or nil, nil if none.
func (s *Store) GetElection(ctx context.Context, ns, name string) (*ElectionRecord, error) {
	if err := validateNsName(ns, name); err != nil {
		return nil, fmt.Errorf("get election: %w", err)
	}
	var e ElectionRecord
	found, err := s.getJSON(ctx, s.electionKey(ns, name), &e)
	if err != nil || !found {
		return nil, err
	}
	return &e, nil
}

// ListElections returns every election record by "ns/name".
func (s *Store) ListElections(ctx context.Context) (map[string]ElectionRecord, error) {
	base := s.prefix + "/elections/"
	resp, err := s.get(ctx, base, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list elections: %w", err)
	}
	out := make(map[string]ElectionRecord, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ns, name, ok := nsNameFromKey(base, string(kv.Key))
		if !ok {
			continue
		}
		var e ElectionRecord
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("decode election %s: %w", kv.Key, err)
		}
		out[ns+"/"+name] = e
	}
	return out, nil
}

// GetEndpoints returns a cluster's published endpoints, or nil, nil if none.
func (s *Store) GetEndpoints(ctx context.Context, ns, name string) (*Endpoints, error) {
	if err := validateNsName(ns, name); err != nil {
		return nil, fmt.Errorf("get endpoints: %w", err)
	}
	var e Endpoints
	found, err := s.getJSON(ctx, s.endpointsKey(ns, name), &e)
	if err != nil || !found {
		return nil, err
	}
	return &e, nil
}

// WatchEndpoints sends the current endpoints of a cluster first (nil when
// none are published), then every change (nil = deleted). It survives
// compaction and lost connections by re-reading the key. The channel is
// closed when ctx ends, or at once if ns or name is invalid.
func (s *Store) WatchEndpoints(ctx context.Context, ns, name string) <-chan *Endpoints {
	out := make(chan *Endpoints)
	if err := validateNsName(ns, name); err != nil {
		close(out)
		return out
	}
	key := s.endpointsKey(ns, name)
	go func() {
		defer close(out)
		send := func(e *Endpoints) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		backoff := watchRetryMin
		lastMod := int64(-1) // mod revision last sent (0 = absent)
		for ctx.Err() == nil {
			resp, err := s.get(ctx, key)
			if err != nil {
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				backoff = min(backoff*2, watchRetryMax)
				continue
			}
			backoff = watchRetryMin
			var mod int64
			var cur *Endpoints
			if len(resp.Kvs) > 0 {
				mod = resp.Kvs[0].ModRevision
				var e Endpoints
				if err := json.Unmarshal(resp.Kvs[0].Value, &e); err == nil {
					cur = &e
				}
			}
			if mod != lastMod {
				if !send(cur) {
					return
				}
				lastMod = mod
			}
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for wr := range s.cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
				if wr.Err() != nil || wr.Canceled {
					break
				}
				for _, ev := range wr.Events {
					var e *Endpoints
					if ev.Type == clientv3.EventTypePut {
						var v Endpoints
						if err := json.Unmarshal(ev.Kv.Value, &v); err != nil {
							continue
						}
						e = &v
						lastMod = ev.Kv.ModRevision
					} else {
						lastMod = 0
					}
					if !send(e) {
						cancel()
						return
					}
				}
			}
			cancel()
		}
	}()
	return out
}

// ListEvents returns a cluster's recent events, oldest first.
func (s *Store) ListEvents(ctx context.Context, ns, name string) ([]Event, error) {
	if err := validateNsName(ns, name); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	var evs []Event
	if _, err := s.getJSON(ctx, s.eventsKey(ns, name), &evs); err != nil {
		return nil, err
	}
	return evs, nil
}

// GetFramework returns the framework state, or nil, nil if none.
func (s *Store) GetFramework(ctx context.Context) (*FrameworkState, error) {
	var f FrameworkState
	found, err := s.getJSON(ctx, s.frameworkKey(), &f)
	if err != nil || !found {
		return nil, err
	}
	return &f, nil
}

// PutFramework writes the framework state (fenced like every write).
func (s *Store) PutFramework(ctx context.Context, f FrameworkState) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode framework state: %w", err)
	}
	if _, _, _, err := s.write(ctx, nil, []clientv3.Op{clientv3.OpPut(s.frameworkKey(), string(b))}, nil); err != nil {
		return fmt.Errorf("save framework state: %w", err)
	}
	return nil
}

// ErrFrameworkRemoved is returned by LoadFrameworkID when the Mesos master
// removed the framework: its id can never subscribe again, and the operator
// must decide to start a new framework.
var ErrFrameworkRemoved = errors.New("framework was removed by the Mesos master")

// LoadFrameworkID returns the persisted framework id ("" if none yet).
// A framework marked removed is an error wrapping ErrFrameworkRemoved.
func (s *Store) LoadFrameworkID(ctx context.Context) (string, error) {
	f, err := s.GetFramework(ctx)
	if err != nil {
		return "", err
	}
	if f == nil {
		return "", nil
	}
	if f.Removed {
		return "", fmt.Errorf("framework %s: %w (%s); its tasks are gone: start a new framework (converge serve --new-framework)",
			f.FrameworkID, ErrFrameworkRemoved, f.RemovedMessage)
	}
	return f.FrameworkID, nil
}

// SaveFrameworkID persists the framework id (keeping name and role),
// clearing any removed mark.
func (s *Store) SaveFrameworkID(ctx context.Context, id string) error {
	f, err := s.GetFramework(ctx)
	if err != nil {
		return err
	}
	if f == nil {
		f = &FrameworkState{}
	}
	f.FrameworkID = id
	f.Removed, f.RemovedMessage = false, ""
	f.UpdatedAt = time.Now().UTC()
	return s.PutFramework(ctx, *f)
}

// MarkFrameworkRemoved records that the master removed the framework.
func (s *Store) MarkFrameworkRemoved(ctx context.Context, msg string) error {
	f, err := s.GetFramework(ctx)
	if err != nil {
		return err
	}
	if f == nil {
		f = &FrameworkState{}
	}
	f.Removed, f.RemovedMessage = true, msg
	f.UpdatedAt = time.Now().UTC()
	return s.PutFramework(ctx, *f)
}

// getJSON reads key into v; found is false when the key does not exist.
func (s *Store) getJSON(ctx context.Context, key string, v any) (found bool, err error) {
	resp, err := s.get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}
