package controller

import (
	"hash/fnv"
	"strconv"
)

// Shard is the part of the clusters one controller owns when several share
// an etcd and a Mesos (docs/design.md, "Sharding"): a cluster belongs to
// shard hash(namespace/name) mod Count. Each shard is its own Mesos
// framework with its own leader election, so a cluster's tasks, offers and
// updates only ever reach its shard's controller. The zero Shard owns every
// cluster.
type Shard struct {
	Index, Count int
}

// Owns reports whether the cluster with key "namespace/name" is the shard's.
func (s Shard) Owns(key string) bool {
	if s.Count <= 1 {
		return true
	}
	return ShardOf(key, s.Count) == s.Index
}

// Name is the shard's name in the store (store.Store.Shard) and in its
// framework's name.
func (s Shard) Name() string { return strconv.Itoa(s.Index) }

// ShardOf is the shard of the cluster with key "namespace/name" among count.
// FNV-1a spreads the keys evenly, and the owner of a key depends on nothing
// but the key and the count.
func ShardOf(key string, count int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(count))
}
