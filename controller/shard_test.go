package controller

import (
	"fmt"
	"testing"
)

// Every cluster belongs to exactly one shard, the shards are near even, and
// the zero Shard owns everything.
func TestShardOwnership(t *testing.T) {
	const n, keys = 4, 4000
	per := make([]int, n)
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("default/bench-%05d", i)
		owners := 0
		for s := 0; s < n; s++ {
			if (Shard{Index: s, Count: n}).Owns(key) {
				owners++
				per[s]++
			}
		}
		if owners != 1 {
			t.Fatalf("%s has %d owners among %d shards", key, owners, n)
		}
		if !(Shard{}).Owns(key) {
			t.Fatalf("the zero Shard does not own %s", key)
		}
	}
	for s, c := range per {
		if c < keys/n*8/10 || c > keys/n*12/10 {
			t.Errorf("shard %d owns %d of %d keys (shards %v)", s, c, keys, per)
		}
	}
}
