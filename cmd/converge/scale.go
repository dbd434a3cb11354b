package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
)

func init() { extraCommands = append(extraCommands, newScaleCmd) }

func newScaleCmd(g *globals) *cobra.Command {
	var replicas, current int32
	cmd := &cobra.Command{
		Use:   "scale cluster/NAME... --replicas N",
		Short: "Set the number of members of clusters",
		Long: `Scale sets spec.replicas, as kubectl scale does: the controller launches the
missing members (lowest free ordinals) or stops the highest ordinals, the master
last. --current-replicas makes it a compare-and-set: nothing is written unless the
cluster has that many desired replicas now.`,
		Example: `  converge scale cluster/orders-db --replicas 5
  converge scale cluster/orders-db --replicas 3 --current-replicas 5`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := cli.ParseNames(args)
			if err != nil {
				return err
			}
			if len(names) == 0 {
				return cli.Usage("name the clusters to scale: scale cluster/NAME --replicas N")
			}
			if !cmd.Flags().Changed("replicas") {
				return cli.Usage("--replicas is required: the number of members wanted")
			}
			if replicas < 0 {
				return cli.Usage("--replicas %d: must be 0 or more", replicas)
			}
			var pre *int32
			if cmd.Flags().Changed("current-replicas") {
				pre = &current
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			for _, name := range names {
				if _, err := cli.Scale(ctx, st, g.ns(), name, replicas, pre); err != nil {
					return err
				}
				fmt.Fprintf(g.out, "%s scaled\n", cli.Ref(name))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32Var(&replicas, "replicas", 0, "the number of members wanted (required)")
	f.Int32Var(&current, "current-replicas", 0, "precondition: the cluster's desired replicas must be this now")
	return cmd
}
