package main

import (
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/utils/clock"

	"github.com/converge-io/converge/store"
)

// defaultCompactionInterval is kube-apiserver's --etcd-compaction-interval.
const defaultCompactionInterval = 5 * time.Minute

// registerCompaction adds --etcd-compaction-interval to cmd.
func registerCompaction(cmd *cobra.Command, interval *time.Duration) {
	cmd.Flags().DurationVar(interval, "etcd-compaction-interval", defaultCompactionInterval,
		"compact etcd's history this often, keeping the last interval's revisions, as kube-apiserver does (0: never; then etcd's --auto-compaction-retention must)")
}

// startCompactor compacts etcd's key history every interval with
// kube-apiserver's compactor (k8s.io/apiserver's etcd3): each round
// compacts to the revision the previous round saw, and a compare-and-swap
// on compact_rev_key makes it one compaction per interval however many
// replicas run it. A stock etcd keeps every revision until something
// compacts it, and refuses writes once its database reaches the 2 GiB
// quota; status, election and position writes would get there. Watches
// behind a compaction list again (store.IsCompacted). It returns the
// compactor's stop.
func startCompactor(st *store.Store, interval time.Duration, log logr.Logger) func() {
	if interval <= 0 {
		log.Info("etcd compaction off: etcd must compact itself (--auto-compaction-retention), or it fills its quota")
		return func() {}
	}
	c := etcd3.NewCompactor(st.Client(), interval, clock.RealClock{}, nil)
	return c.Stop
}
