package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/converge-io/converge/bench"
	"github.com/converge-io/converge/cli"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

func newBenchCmd(g *globals) *cobra.Command {
	var (
		o       bench.Options
		asJSON  bool
		verbose int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Scale benchmark: embedded etcd, simulated local Mesos and the controller in one process",
		Long: `bench starts an embedded etcd (in a temporary directory), a local Mesos with
simulated agents and the controller, applies --clusters clusters of --replicas
members with position elections, and waits until every cluster is Ready with
its master elected. It then watches the converged state idle, fails one master
among all tasks, and measures the raw write rate of the same etcd, so every
figure reads as a ratio to what this machine can do.`,
		Example: `  converge bench --clusters 1000 --replicas 10 --agents 1000 --json
  converge bench --clusters 50 --replicas 3 --agents 50 --cpuprofile cpu.out`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Clusters <= 0 || o.Replicas <= 0 || o.Agents <= 0 {
				return cli.Usage("--clusters, --replicas and --agents must be positive")
			}
			if o.Replicas > 1000 {
				return cli.Usage("--replicas is at most 1000 (spec.replicas' limit)")
			}
			if !asJSON {
				o.Progress = func(format string, args ...any) {
					fmt.Fprintf(g.errOut, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
				}
			}
			o.Log = logr.Discard()
			if verbose > 0 {
				o.Log = newLogger(g.errOut, verbose-1)
			}
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if asJSON {
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printBench(g.out, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Clusters, "clusters", 100, "clusters to apply")
	f.IntVar(&o.Replicas, "replicas", 3, "members per cluster")
	f.IntVar(&o.Agents, "agents", 100, "simulated Mesos agents (4 cpus, 8 GiB each)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of a summary")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of first apply to Ready to this file")
	f.StringVar(&o.BlockProfile, "blockprofile", "", "write a profile of where goroutines waited (first apply to Ready) to this file")
	f.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile taken at Ready (after GC) to this file")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up when not converged within this")
	f.DurationVar(&o.AllocationInterval, "allocation-interval", time.Second, "local Mesos offer round interval (a real master's default is 1s)")
	f.DurationVar(&o.LaunchDelay, "launch-delay", 50*time.Millisecond, "simulated time from TASK_STARTING to TASK_RUNNING")
	f.IntVar(&o.Workers, "workers", 0, "controller reconcile workers (0: the controller's default)")
	f.IntVar(&o.Shards, "shards", 0, "run this many controllers, each leading one shard of the clusters (its own Mesos framework) and standing by for the next; one is killed once half the clusters are Ready (0: one unsharded controller)")
	f.DurationVar(&o.ShardTTL, "shard-ttl", 0, "with --shards: the shard leaders' lease TTL, how long a killed leader's shard waits to be taken over (0: the default 5s)")
	f.DurationVar(&o.Idle, "idle", 3*time.Second, "how long to watch the converged state")
	f.DurationVar(&o.Timeline, "timeline", 0, "print convergence progress at this interval (0: off)")
	f.IntVarP(&verbose, "verbose", "v", 0, "log the parts' output to stderr (1: info, 2+: debug)")
	return cmd
}

func printBench(w io.Writer, r bench.Result) {
	fmt.Fprintf(w, "converge bench: %d clusters x %d replicas = %d tasks on %d simulated agents (allocation interval %.0fms, launch delay %.0fms, GOMAXPROCS %d)\n",
		r.Clusters, r.Replicas, r.Tasks, r.Agents, r.AllocationIntervalMS, r.LaunchDelayMS, r.GOMAXPROCS)
	fmt.Fprintf(w, "  converged        %.2fs after the first apply (applies took %.2fs): %.0f tasks/s\n", r.ConvergeSeconds, r.ApplySeconds, r.TasksPerSecond)
	fmt.Fprintf(w, "  etcd writes      %.2f key writes/task, %.2f write requests/task (%d txns, %d puts, %d deletes; %d applies excluded); %.0f txns/s\n",
		r.EtcdWritesPerTask, r.EtcdTxnsPerTask, r.EtcdWrites.Txns, r.EtcdWrites.Puts, r.EtcdWrites.Deletes, r.ApplyWritesExcluded, r.EtcdTxnsPerSecond)
	fmt.Fprintf(w, "  puts by key      %s (at Ready, cluster creates included)\n", byKind(r.EtcdPutsByKind))
	fmt.Fprintf(w, "  etcd ceiling     %.0f writes/s (%d clients, sequential single-key puts); convergence used %.0f%% of it\n",
		r.EtcdCeilingWritesPerSecond, r.EtcdCeilingClients, 100*r.EtcdCeilingRatio)
	if r.Shards > 0 {
		fmt.Fprintf(w, "  shards           %d, clusters per shard %v; tasks under another shard's framework %d, clusters split over two %d\n",
			r.Shards, r.ShardClusters, r.ShardTasksMisplaced, r.ShardClustersSplit)
		if r.ShardKilled != nil {
			fmt.Fprintf(w, "  shard takeover   process %d killed with %d clusters Ready; its shard led by process %d and subscribed again %.2fs later\n",
				*r.ShardKilled, r.ShardKilledAtReady, r.ShardTakenOverBy, r.ShardTakeoverSeconds)
		}
	}
	fmt.Fprintf(w, "  acks             %d; update to ACKNOWLEDGE p50 %.1fms, p99 %.1fms, max %.1fms (durable and queued: p50 %.1fms, p99 %.1fms)\n",
		r.Acks, r.AckLatencyP50MS, r.AckLatencyP99MS, r.AckLatencyMaxMS, r.AckDurableP50MS, r.AckDurableP99MS)
	fmt.Fprintf(w, "  process          %.2fs CPU to converge, peak RSS %.0f MB, heap at converge %.0f MB\n", r.ControllerCPUSeconds, r.PeakRSSMB, r.HeapMB)
	fmt.Fprintf(w, "  idle             %.1f writes/s, %.1f%% CPU, %d offers, %d declines, offers suppressed: %v\n",
		r.IdleWritesPerSecond, r.IdleCPUPercent, r.IdleOffers, r.IdleDeclines, r.OffersSuppressed)
	fmt.Fprintf(w, "  machine          load average %.2f at the start, %.2f at the end\n", r.LoadAverageStart, r.LoadAverageEnd)
	if r.OneFailureTask != "" {
		printFailure(w, r)
	}
}

// printFailure prints the quiet wait before the one failure, and the failure.
func printFailure(w io.Writer, r bench.Result) {
	if r.QuietCapHit {
		fmt.Fprintf(w, "  quiet wait       NOT quiet: reconciles still ran %.1fs after the idle window (%d of them); the failure below was measured anyway\n",
			r.QuietSeconds, r.QuietReconciles)
	} else {
		fmt.Fprintf(w, "  quiet wait       last reconcile %.2fs after the idle window (%d reconciles), then none for %.1fs\n",
			r.QuietSeconds, r.QuietReconciles, r.QuietForSeconds)
	}
	fmt.Fprintf(w, "  one failure      %d reconciles, %d key writes in %d txns, %d cluster(s) touched, recovered in %.2fs; %d resync sweep(s) inside, attempt %d of at most 3\n",
		r.OneFailureReconciles, r.OneFailureWrites, r.OneFailureTxns, r.OneFailureClustersTouched, r.OneFailureRecoverSeconds, r.OneFailureResyncs, r.OneFailureAttempts)
}

func byKind(m map[string]int64) string {
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
