package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

func newEndpointsCmd(g *globals) *cobra.Command {
	var (
		watch  bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "endpoints cluster/NAME",
		Short: "Print a cluster's published endpoints: master and members, host:port, epoch",
		Long: `Endpoints prints the service discovery record the controller publishes for a
cluster once its members run (and its master is elected): the epoch, the master
and every member with host:port. -w streams every change, as a client watching
the record would see it.`,
		Example: `  converge endpoints cluster/orders-db
  converge endpoints orders-db -w -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var name string
			if len(args) == 1 && !strings.Contains(args[0], "/") && !cli.IsClusterResource(args[0]) {
				name = args[0] // a bare NAME: the resource is implied
			} else {
				names, err := cli.ParseNames(args)
				if err != nil {
					return err
				}
				if len(names) != 1 {
					return cli.Usage("name exactly one cluster: endpoints cluster/NAME")
				}
				name = names[0]
			}
			if output != "" && output != cli.OutputJSON && output != cli.OutputYAML {
				return cli.Usage("unknown output format %q: use json or yaml", output)
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			ns := g.ns()
			if _, err := st.Get(ctx, ns, name); err != nil {
				if store.IsNotFound(err) {
					return fmt.Errorf("%s not found in namespace %s", cli.Ref(name), ns)
				}
				return err
			}
			print := func(e *store.Endpoints) error {
				if e == nil {
					fmt.Fprintf(g.out, "%s has no published endpoints (no member running yet, or deleted)\n", cli.Ref(name))
					return nil
				}
				if output != "" {
					if output == cli.OutputYAML && watch {
						fmt.Fprintln(g.out, "---")
					}
					return cli.PrintObject(g.out, output, e)
				}
				return cli.PrintEndpoints(g.out, e)
			}
			if !watch {
				e, err := st.GetEndpoints(ctx, ns, name)
				if err != nil {
					return err
				}
				if e == nil {
					return fmt.Errorf("%s has no published endpoints yet: no member is running (see converge describe cluster %s)", cli.Ref(name), name)
				}
				return print(e)
			}
			defer cli.ReportConnection(ctx, st, g.errOut)()
			for e := range st.WatchEndpoints(ctx, ns, name) {
				if err := print(e); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "stream every change until interrupted")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml")
	return cmd
}
