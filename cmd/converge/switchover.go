package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
)

func newSwitchoverCmd(g *globals) *cobra.Command {
	var (
		to      int
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "switchover cluster/NAME [--to ORDINAL] [--wait]",
		Short: "Hand the master over to another member (planned, no acknowledged write lost)",
		Long: `Switchover asks the controller to hand the cluster's master over: the master
is demoted first (its demoteCommand, told CONVERGE_DEMOTE_REASON=switchover;
it stops taking writes and lets the others receive everything), then the other
members elect a new master by position (the one asked for with --to, unless
another member's position is ahead of it), it is promoted and published, and
the old master follows it as every other member does.

The request is recorded on the object (annotations converge.io/switchover-*),
the controller acts on it once and reports in status.switchover, events and
the Ready condition. It needs election.strategy position, a master now, and
another running member. --wait waits until the new master is promoted (exit 1
if the controller reports the switchover failed, with its reason).`,
		Example: `  converge switchover cluster/postgres
  converge switchover cluster/postgres --to 1 --wait --timeout 1m`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := cli.ParseNames(args)
			if err != nil {
				return err
			}
			if len(names) != 1 {
				return cli.Usage("name one cluster: converge switchover cluster/NAME")
			}
			var target *int32
			if cmd.Flags().Changed("to") {
				if to < 0 {
					return cli.Usage("--to %d: an ordinal is 0 or more", to)
				}
				t := int32(to)
				target = &t
			}
			if wait && timeout <= 0 {
				return cli.Usage("--timeout must be positive")
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			ns, name := g.ns(), names[0]
			req, err := cli.RequestSwitchover(ctx, st, ns, name, target, time.Now())
			if err != nil {
				return err
			}
			dest := "the member with the highest position"
			if target != nil {
				dest = fmt.Sprintf("ordinal %d", *target)
			}
			fmt.Fprintf(g.out, "%s switchover requested: master ordinal %d -> %s\n", cli.Ref(name), req.From.Ordinal, dest)
			if !wait {
				return nil
			}
			wctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			sw, err := cli.WaitSwitchover(wctx, st, ns, name, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s switched over: %s\n", cli.Ref(name), sw.Message)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&to, "to", 0, "the ordinal of the member to hand over to (default: the member with the highest position)")
	f.BoolVar(&wait, "wait", false, "wait until the new master is promoted")
	f.DurationVar(&timeout, "timeout", time.Minute, "how long --wait waits")
	return cmd
}
