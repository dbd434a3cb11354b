package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
)

func newDescribeCmd(g *globals) *cobra.Command {
	var selector string
	cmd := &cobra.Command{
		Use:   "describe cluster [NAME...]",
		Short: "Show a cluster in detail: spec, status, tasks, master, conditions, events",
		Long: `Describe shows a cluster's spec, status, tasks, master and epoch, conditions
and recent events. Environment values are never shown, only their names: they
may hold secrets. Without a NAME it describes every cluster of the namespace
(that matches -l).`,
		Example: `  converge describe cluster orders-db
  converge describe cl/orders-db`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := cli.ParseNames(args)
			if err != nil {
				return err
			}
			var sel labels.Selector
			if selector != "" {
				if sel, err = labels.Parse(selector); err != nil {
					return fmt.Errorf("selector %q: %w", selector, err)
				}
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			ns := g.ns()
			var items []*v1alpha1.Cluster
			if len(names) == 0 {
				if items, _, err = st.List(ctx, ns, sel); err != nil {
					return err
				}
				if len(items) == 0 {
					fmt.Fprintf(g.errOut, "No clusters found in namespace %s.\n", ns)
					return nil
				}
			}
			for _, n := range names {
				c, err := st.Get(ctx, ns, n)
				if err != nil {
					return err
				}
				items = append(items, c)
			}
			for i, c := range items {
				if i > 0 {
					fmt.Fprintln(g.out)
				}
				events, err := st.ListEvents(ctx, c.Namespace, c.Name)
				if err != nil {
					return err
				}
				eps, err := st.GetEndpoints(ctx, c.Namespace, c.Name)
				if err != nil {
					return err
				}
				if err := cli.Describe(g.out, cli.Description{Cluster: c, Events: events, Endpoints: eps}, time.Now()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, when no NAME is given")
	return cmd
}
