package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	v1alpha1 "github.com/converge-io/converge/apis/v1alpha1"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// maxDeleteRetries bounds Delete's read-modify-write loop against
// concurrent writers.
const maxDeleteRetries = 10

// Create stores a new Cluster: uid, generation 1 and creationTimestamp are
// set, resourceVersion, deletionTimestamp and status are cleared (status is
// the controller's to write). An empty namespace means "default". The
// object is expected to be defaulted and validated by the caller.
func (s *Store) Create(ctx context.Context, c *v1alpha1.Cluster) (*v1alpha1.Cluster, error) {
	obj, err := clone(c)
	if err != nil {
		return nil, fmt.Errorf("create cluster %s/%s: %w", c.Namespace, c.Name, err)
	}
	if obj.Namespace == "" {
		obj.Namespace = v1alpha1.DefaultNamespace
	}
	ns, name := obj.Namespace, obj.Name
	if err := validateNsName(ns, name); err != nil {
		return nil, fmt.Errorf("create cluster: %w", err)
	}
	obj.APIVersion, obj.Kind = v1alpha1.APIVersion, v1alpha1.Kind
	obj.UID = uuid.NewUUID()
	obj.Generation = 1
	obj.CreationTimestamp = now()
	obj.DeletionTimestamp = nil
	obj.ResourceVersion = ""
	obj.Status = v1alpha1.ClusterStatus{}
	val, err := encode(obj)
	if err != nil {
		return nil, fmt.Errorf("create cluster %s/%s: %w", ns, name, err)
	}
	key := s.clusterKey(ns, name)
	rev, ok, _, err := s.write(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, string(val))}, nil)
	if err != nil {
		return nil, fmt.Errorf("create cluster %s/%s: %w", ns, name, err)
	}
	if !ok {
		return nil, alreadyExists(ns, name)
	}
	obj.ResourceVersion = strconv.FormatInt(rev, 10)
	return obj, nil
}

// Get reads one Cluster; a missing one is a NotFound error.
func (s *Store) Get(ctx context.Context, ns, name string) (*v1alpha1.Cluster, error) {
	if err := validateNsName(ns, name); err != nil {
		return nil, fmt.Errorf("get cluster: %w", err)
	}
	c, _, err := s.getCluster(ctx, ns, name)
	return c, err
}

// getCluster returns the object and its mod revision.
func (s *Store) getCluster(ctx context.Context, ns, name string) (*v1alpha1.Cluster, int64, error) {
	resp, err := s.get(ctx, s.clusterKey(ns, name))
	if err != nil {
		return nil, 0, fmt.Errorf("get cluster %s/%s: %w", ns, name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, notFound(ns, name)
	}
	c, err := decodeCluster(resp.Kvs[0])
	if err != nil {
		return nil, 0, err
	}
	return c, resp.Kvs[0].ModRevision, nil
}

// List returns the clusters of namespace ns ("" for all namespaces) whose
// labels match sel (nil matches everything), sorted by namespace and name,
// with the etcd revision of the read (to Watch from).
func (s *Store) List(ctx context.Context, ns string, sel labels.Selector) ([]*v1alpha1.Cluster, int64, error) {
	if ns != "" {
		if err := ValidateKeyName("namespace", ns); err != nil {
			return nil, 0, fmt.Errorf("list clusters: %w", err)
		}
	}
	resp, err := s.get(ctx, s.clustersPrefix(ns), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list clusters: %w", err)
	}
	out := make([]*v1alpha1.Cluster, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		c, err := decodeCluster(kv)
		if err != nil {
			return nil, 0, fmt.Errorf("list clusters: %w", err)
		}
		if sel != nil && !sel.Matches(labels.Set(c.Labels)) {
			continue
		}
		out = append(out, c)
	}
	return out, resp.Header.Revision, nil
}

// Update writes metadata (labels, annotations, finalizers, and
// managedFields unless nil) and spec; uid,
// creationTimestamp, deletionTimestamp and status are kept from the stored
// object. c.ResourceVersion must equal the stored mod revision, else a
// Conflict error. generation+1 iff the spec changed. An update that changes
// nothing writes nothing. If deletionTimestamp is set and no finalizer is
// left, the object is deleted with its ledger, election, endpoints and
// events, in the same transaction. Finalizers cannot be added to an object
// being deleted.
func (s *Store) Update(ctx context.Context, c *v1alpha1.Cluster) (*v1alpha1.Cluster, error) {
	ns, name := c.Namespace, c.Name
	cur, rv, stale, err := s.readForWrite(ctx, c, "update cluster")
	if err != nil {
		return nil, err
	}
	in, err := clone(c)
	if err != nil {
		return nil, fmt.Errorf("update cluster %s/%s: %w", ns, name, err)
	}
	next, err := clone(cur)
	if err != nil {
		return nil, fmt.Errorf("update cluster %s/%s: %w", ns, name, err)
	}
	next.Labels = in.Labels
	next.Annotations = in.Annotations
	next.Finalizers = in.Finalizers
	next.Spec = in.Spec
	if in.ManagedFields != nil {
		// Field ownership, as the Kubernetes API's server-side apply
		// records it; writers that do not track it (nil) keep it.
		next.ManagedFields = in.ManagedFields
	}
	if cur.DeletionTimestamp != nil {
		for _, f := range next.Finalizers {
			if !slices.Contains(cur.Finalizers, f) {
				return nil, fmt.Errorf("update cluster %s/%s: cannot add finalizer %q: the cluster is being deleted", ns, name, f)
			}
		}
	}
	changedSpec, err := differ(cur.Spec, next.Spec)
	if err != nil {
		return nil, fmt.Errorf("update cluster %s/%s: %w", ns, name, err)
	}
	if errs := v1alpha1.ValidateVolumesUpdate(next, cur); changedSpec && len(errs) > 0 {
		return nil, fmt.Errorf("update cluster %s/%s: %w", ns, name, errs.ToAggregate())
	}
	if changedSpec {
		next.Generation = cur.Generation + 1
	}
	if next.DeletionTimestamp != nil && len(next.Finalizers) == 0 {
		rev, err := s.writeIfRev(ctx, ns, name, rv, s.deleteOps(ns, name))
		if err != nil {
			return nil, fmt.Errorf("update cluster %s/%s (last finalizer removed, deleting): %w", ns, name, err)
		}
		next.ResourceVersion = strconv.FormatInt(rev, 10)
		return next, nil
	}
	changed, err := differ(cur, next)
	if err != nil {
		return nil, fmt.Errorf("update cluster %s/%s: %w", ns, name, err)
	}
	if !changed && !stale {
		return cur, nil
	}
	return s.putIfRev(ctx, ns, name, rv, next, "update cluster")
}

// putIfRev writes next as cluster ns/name if the stored mod revision is
// still rv, and returns next with the new resourceVersion. Errors are
// prefixed with op and ns/name.
func (s *Store) putIfRev(ctx context.Context, ns, name string, rv int64, next *v1alpha1.Cluster, op string) (*v1alpha1.Cluster, error) {
	val, err := encode(next)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", op, ns, name, err)
	}
	rev, err := s.writeIfRev(ctx, ns, name, rv, []clientv3.Op{clientv3.OpPut(s.clusterKey(ns, name), string(val))})
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", op, ns, name, err)
	}
	next.ResourceVersion = strconv.FormatInt(rev, 10)
	return next, nil
}

// readForWrite checks c's namespace, name and resourceVersion and reads the
// stored object with its mod revision. stale is whether that revision is no
// longer c's: an unfenced store answers a Conflict error at once, while a
// fenced write goes on to its transaction even when stale, so that a deposed
// leader learns ErrNotLeader rather than a conflict. Errors are prefixed
// with op ("update cluster", "update status of cluster").
func (s *Store) readForWrite(ctx context.Context, c *v1alpha1.Cluster, op string) (cur *v1alpha1.Cluster, rv int64, stale bool, err error) {
	ns, name := c.Namespace, c.Name
	if err := validateNsName(ns, name); err != nil {
		return nil, 0, false, fmt.Errorf("%s: %w", op, err)
	}
	rv, err = parseRV(c)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%s %s/%s: %w", op, ns, name, err)
	}
	cur, curRev, err := s.getCluster(ctx, ns, name)
	if err != nil {
		return nil, 0, false, err
	}
	stale = curRev != rv
	if stale && s.fence == nil {
		return nil, 0, false, conflict(ns, name, rv, curRev)
	}
	return cur, rv, stale, nil
}

// UpdateStatus writes only status; c.ResourceVersion must match (Conflict
// otherwise). It never bumps generation. A status equal to the stored one
// writes nothing.
func (s *Store) UpdateStatus(ctx context.Context, c *v1alpha1.Cluster) (*v1alpha1.Cluster, error) {
	ns, name := c.Namespace, c.Name
	cur, rv, stale, err := s.readForWrite(ctx, c, "update status of cluster")
	if err != nil {
		return nil, err
	}
	in, err := clone(c)
	if err != nil {
		return nil, fmt.Errorf("update status of cluster %s/%s: %w", ns, name, err)
	}
	changed, err := differ(cur.Status, in.Status)
	if err != nil {
		return nil, fmt.Errorf("update status of cluster %s/%s: %w", ns, name, err)
	}
	if !changed && !stale {
		return cur, nil
	}
	next := cur
	next.Status = in.Status
	return s.putIfRev(ctx, ns, name, rv, next, "update status of cluster")
}

// UpdateStatusOf writes status onto base in one round trip, without reading
// the stored object first (UpdateStatus reads it to keep the stored spec and
// metadata). base must be the object as the store returned it (Get, List,
// Watch or a previous write): its spec and metadata are written back as they
// are. The write is conditioned on base's resourceVersion still being the
// stored one, so a stale base is a Conflict error and never overwrites a
// newer object; a fenced store refuses a deposed leader with ErrNotLeader.
// The generation is never bumped. The controller, which holds every cluster
// as last read, writes status this way.
func (s *Store) UpdateStatusOf(ctx context.Context, base *v1alpha1.Cluster, status v1alpha1.ClusterStatus) (*v1alpha1.Cluster, error) {
	ns, name := base.Namespace, base.Name
	if err := validateNsName(ns, name); err != nil {
		return nil, fmt.Errorf("update status of cluster: %w", err)
	}
	rv, err := parseRV(base)
	if err != nil {
		return nil, fmt.Errorf("update status of cluster %s/%s: %w", ns, name, err)
	}
	next := base.DeepCopy()
	next.Status = v1alpha1.ClusterStatus{}
	status.DeepCopyInto(&next.Status)
	return s.putIfRev(ctx, ns, name, rv, next, "update status of cluster")
}

// Delete deletes a Cluster. With finalizers it sets deletionTimestamp
// (idempotent) and returns the object; the controller removes the
// finalizer once the tasks are gone, and that Update deletes the object.
// Without finalizers it deletes the object, its ledger, election, endpoints
// and events at once and returns the last state with gone=true.
func (s *Store) Delete(ctx context.Context, ns, name string) (obj *v1alpha1.Cluster, gone bool, err error) {
	if err := validateNsName(ns, name); err != nil {
		return nil, false, fmt.Errorf("delete cluster: %w", err)
	}
	for attempt := 0; ; attempt++ {
		cur, curRev, err := s.getCluster(ctx, ns, name)
		if err != nil {
			return nil, false, err
		}
		var ops []clientv3.Op
		switch {
		case len(cur.Finalizers) == 0:
			ops = s.deleteOps(ns, name)
			gone = true
		case cur.DeletionTimestamp != nil:
			return cur, false, nil
		default:
			t := now()
			cur.DeletionTimestamp = &t
			val, err := encode(cur)
			if err != nil {
				return nil, false, fmt.Errorf("delete cluster %s/%s: %w", ns, name, err)
			}
			ops = []clientv3.Op{clientv3.OpPut(s.clusterKey(ns, name), string(val))}
		}
		rev, err := s.writeIfRev(ctx, ns, name, curRev, ops)
		if IsConflict(err) && attempt < maxDeleteRetries {
			continue // someone wrote meanwhile: decide again on the new state
		}
		if err != nil {
			return nil, false, fmt.Errorf("delete cluster %s/%s: %w", ns, name, err)
		}
		cur.ResourceVersion = strconv.FormatInt(rev, 10)
		return cur, gone, nil
	}
}

// deleteOps delete a cluster and every key that belongs to it.
func (s *Store) deleteOps(ns, name string) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpDelete(s.clusterKey(ns, name)),
		clientv3.OpDelete(s.tasksPrefix(ns, name), clientv3.WithPrefix()),
		clientv3.OpDelete(s.electionKey(ns, name)),
		clientv3.OpDelete(s.endpointsKey(ns, name)),
		clientv3.OpDelete(s.eventsKey(ns, name)),
	}
}

// writeIfRev runs ops if the cluster key's mod revision is still rv, and
// turns a failed comparison into a Conflict (or NotFound) error.
func (s *Store) writeIfRev(ctx context.Context, ns, name string, rv int64, ops []clientv3.Op) (int64, error) {
	key := s.clusterKey(ns, name)
	rev, ok, elseResp, err := s.write(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rv)},
		ops, []clientv3.Op{clientv3.OpGet(key)})
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, conflictFrom(ns, name, rv, elseResp)
	}
	return rev, nil
}

func conflictFrom(ns, name string, rv int64, elseResp []*pb.ResponseOp) error {
	if len(elseResp) > 0 {
		if r := elseResp[0].GetResponseRange(); r != nil {
			if len(r.Kvs) == 0 {
				return notFound(ns, name)
			}
			return conflict(ns, name, rv, r.Kvs[0].ModRevision)
		}
	}
	return conflict(ns, name, rv, 0)
}

func parseRV(c *v1alpha1.Cluster) (int64, error) {
	if c.ResourceVersion == "" {
		return 0, fmt.Errorf("metadata.resourceVersion is required (get the cluster first)")
	}
	rv, err := strconv.ParseInt(c.ResourceVersion, 10, 64)
	if err != nil || rv <= 0 {
		return 0, fmt.Errorf("metadata.resourceVersion %q is not a revision", c.ResourceVersion)
	}
	return rv, nil
}

func decodeCluster(kv *mvccpb.KeyValue) (*v1alpha1.Cluster, error) {
	c := &v1alpha1.Cluster{}
	if err := json.Unmarshal(kv.Value, c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	c.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return c, nil
}

// MaxObjectBytes bounds a stored Cluster (spec and status, as JSON), well
// under etcd's default 1.5 MiB request limit.
const MaxObjectBytes = 1 << 20

// encode marshals an object for storage, without its resourceVersion
// (which is the key's mod revision, not part of the value).
func encode(c *v1alpha1.Cluster) ([]byte, error) {
	rv := c.ResourceVersion
	c.ResourceVersion = ""
	defer func() { c.ResourceVersion = rv }()
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if len(b) > MaxObjectBytes {
		return nil, fmt.Errorf("object is %d bytes encoded, over the %d byte limit", len(b), MaxObjectBytes)
	}
	return b, nil
}

// clone deep-copies through JSON, the form the object is stored in.
func clone(c *v1alpha1.Cluster) (*v1alpha1.Cluster, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	out := &v1alpha1.Cluster{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return out, nil
}

// differ compares the canonical JSON of a and b (map keys sorted,
// quantities in canonical form, so "0.5" and "500m" are the same cpus).
func differ(a, b any) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	return !bytes.Equal(ja, jb), nil
}

// now is a timestamp at the precision it is stored with (RFC 3339 seconds),
// so the object a write returns equals the one a later Get reads.
func now() metav1.Time { return metav1.NewTime(time.Now().UTC().Truncate(time.Second)) }
