package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/chaos"
	"github.com/converge-io/converge/cli"
)

func init() {
	extraCommands = append(extraCommands, newChaosCmd, newChaosEtcdMemberCmd)
}

func newChaosCmd(g *globals) *cobra.Command {
	var (
		cfg     chaos.Config
		jsonOut bool
		keep    bool
	)
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run the fault suite: real processes, injected faults, checked invariants",
		Long: `chaos runs converge as in production, each part its own process: a 3-member
etcd cluster (embedded members), the local Mesos (2 masters, simulated tasks)
and several ` + "`converge serve`" + ` replicas. For --duration it injects faults
(SIGKILL of the leading and of a standby controller, SIGKILL and restart of
an etcd member, task failures, agent loss and return, Mesos master failover,
dropped and duplicated status updates, scaling) while it checks invariants
against /master/state and etcd; then it heals everything and waits for every
cluster to converge. It prints what it injected, what held, the convergence
time and takeover_seconds (SIGKILL of the leader to the standby's SUBSCRIBE).
Exit 1 if an invariant was violated or a cluster did not converge.`,
		Example: `  converge chaos --duration 10m
  converge chaos --duration 90s --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Binary = exe
			if cfg.Dir == "" {
				d, err := os.MkdirTemp("", "converge-chaos-")
				if err != nil {
					return err
				}
				cfg.Dir = d
				if !keep {
					defer os.RemoveAll(d)
				}
			} else if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
				return err
			}
			cfg.Out = g.errOut
			rep, err := chaos.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.Print(g.out)
			}
			if !rep.OK() {
				return errors.New("chaos: an invariant was violated or a cluster did not converge (logs kept with --keep)")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long to inject faults")
	f.DurationVar(&cfg.FaultEvery, "fault-every", 4*time.Second, "mean pause between faults")
	f.IntVar(&cfg.Controllers, "controllers", 3, "converge serve replicas")
	f.IntVar(&cfg.Clusters, "clusters", 4, "clusters to run")
	f.Int32Var(&cfg.Replicas, "replicas", 3, "members per cluster")
	f.IntVar(&cfg.Agents, "agents", 6, "local Mesos agents")
	f.IntVar(&cfg.Masters, "masters", 2, "local Mesos masters")
	f.DurationVar(&cfg.ConvergeTimeout, "converge-timeout", 3*time.Minute, "how long clusters may take to converge once the faults stop")
	f.Int64Var(&cfg.Seed, "seed", 0, "seed of the fault schedule (default: the time)")
	f.StringVar(&cfg.Dir, "work-dir", "", "directory for data and process logs (default: a temporary one)")
	f.BoolVar(&keep, "keep", false, "keep the temporary work directory (logs) after the run")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

// newChaosEtcdMemberCmd is the hidden command the suite runs for each etcd
// member, so that a member is a process it can SIGKILL.
func newChaosEtcdMemberCmd(_ *globals) *cobra.Command {
	var o chaos.MemberOptions
	cmd := &cobra.Command{
		Use:    "chaos-etcd-member",
		Short:  "Run one embedded etcd member (for converge chaos)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Name == "" || o.Dir == "" || o.ClientURL == "" || o.PeerURL == "" || o.InitialCluster == "" {
				return cli.Usage("--name, --dir, --client-url, --peer-url and --initial-cluster are required")
			}
			if err := chaos.RunEtcdMember(cmd.Context(), o); err != nil {
				return fmt.Errorf("etcd member: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "member name")
	f.StringVar(&o.Dir, "dir", "", "data directory")
	f.StringVar(&o.ClientURL, "client-url", "", "client URL to listen on")
	f.StringVar(&o.PeerURL, "peer-url", "", "peer URL to listen on")
	f.StringVar(&o.InitialCluster, "initial-cluster", "", "name=peerURL,... of every member")
	return cmd
}
