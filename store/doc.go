// Package store is converge's etcd v3 object store: Cluster objects with
// optimistic concurrency, status writes, finalizers and a watch that survives
// compaction and lost connections; the controller's task ledger, elections,
// published endpoints, event history and framework state.
//
// # Key layout
//
// Everything lives under one prefix (Options.Prefix, default "/converge");
// values are JSON.
//
//	key                                  value
//	<p>/clusters/<ns>/<name>             v1alpha1.Cluster (metadata, spec, status)
//	<p>/tasks/<ns>/<name>/<taskID>       TaskRecord: the ledger, one key per task
//	<p>/elections/<ns>/<name>            ElectionRecord
//	<p>/endpoints/<ns>/<name>            Endpoints (clients watch this)
//	<p>/events/<ns>/<name>               []Event, newest last, at most 50
//	<p>/framework                        FrameworkState
//	<p>/leader/                          controller leader election (concurrency.Election)
//
// A per-task change is one small key, never a rewrite of the Cluster. Every
// namespace and name used in a key is a DNS-1123 label of at most 63
// characters, and every task id matches [A-Za-z0-9._-]{1,200} and is neither
// "." nor "..": no input can address a key outside its own subtree, let
// alone outside the prefix. Keys are grouped by kind, then namespace, then
// name, so clusters can later be sharded across leaders by key range.
//
// # Versions
//
// metadata.resourceVersion is the etcd ModRevision of the object's key, as a
// decimal string; it is not stored in the value. Writes are etcd transactions
// conditioned on it, so a stale write is a Conflict error, never a silent
// overwrite. metadata.generation starts at 1 and is bumped only when the spec
// changes; status writes never bump it.
//
// # Fencing
//
// Store.Fenced returns a view whose every write carries the extra
// comparison CreateRevision(leaderKey) == leaderRev: once the controller that
// holds it has lost its leadership key, its late writes fail with
// ErrNotLeader instead of overwriting a newer leader's state.
package store
