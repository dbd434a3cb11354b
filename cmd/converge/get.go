package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

func newGetCmd(g *globals) *cobra.Command {
	var (
		output        string
		watch         bool
		selector      string
		allNamespaces bool
		noHeaders     bool
		showLabels    bool
	)
	cmd := &cobra.Command{
		Use:   "get clusters|cluster|cl [NAME...]",
		Short: "List clusters, or show some, as a table, YAML or JSON",
		Long: `Get prints clusters: a table by default (NAME, REPLICAS ready/desired, MASTER,
EPOCH, READY, AGE; -o wide adds GENERATION, OBSERVED, STRATEGY, UPDATED).

-o yaml|json prints a ClusterList, or the object itself when exactly one NAME is
given; either applies back unchanged with "converge apply -f -". -o
jsonpath=TEMPLATE prints fields of the same object through a kubectl JSONPath
template. --show-labels adds a LABELS column.`,
		Example: `  converge get clusters
  converge get cl orders-db -o yaml
  converge get clusters -l team=payments -o wide
  converge get clusters -A -w
  converge get cluster/orders-db -o jsonpath='{.status.master.hostname}:{.status.master.port}'
  converge get clusters -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
  converge get clusters --show-labels`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := cli.ParseNames(args)
			if err != nil {
				return err
			}
			if err := cli.CheckOutput(output); err != nil {
				return err
			}
			var sel labels.Selector
			if selector != "" {
				if len(names) > 0 {
					return cli.Usage("give names or a selector (-l), not both")
				}
				if sel, err = labels.Parse(selector); err != nil {
					return fmt.Errorf("selector %q: %w", selector, err)
				}
			}
			ns := g.ns()
			if allNamespaces {
				if len(names) > 0 {
					return cli.Usage("names are per namespace: give -n NAMESPACE instead of -A")
				}
				ns = ""
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)

			var (
				items    []*v1alpha1.Cluster
				rev      int64
				notFound []error
			)
			if len(names) == 0 || watch {
				all, r, err := st.List(ctx, ns, sel)
				if err != nil {
					return err
				}
				rev = r
				for _, c := range all {
					if len(names) == 0 || slices.Contains(names, c.Name) {
						items = append(items, c)
					}
				}
			}
			if len(names) > 0 && !watch {
				for _, n := range names {
					c, err := st.Get(ctx, ns, n)
					if store.IsNotFound(err) {
						notFound = append(notFound, fmt.Errorf("%s not found in namespace %s", cli.Ref(n), ns))
						continue
					}
					if err != nil {
						return err
					}
					items = append(items, c)
				}
			}
			tp := cli.TablePrinter{AllNamespaces: allNamespaces, NoHeaders: noHeaders, Wide: output == cli.OutputWide, ShowLabels: showLabels}
			stream := &cli.TableStream{P: tp}
			table := output == cli.OutputTable || output == cli.OutputWide
			single := len(names) == 1
			switch {
			case watch && table:
				// Header now, even before the first row, and rows aligned under it.
				if err := stream.Print(g.out, items); err != nil {
					return err
				}
			case len(items) > 0 || output == cli.OutputYAML || output == cli.OutputJSON || cli.IsJSONPath(output):
				if !(single && len(items) == 0) {
					if err := cli.PrintItems(g.out, output, items, single, rev, tp); err != nil {
						return err
					}
				}
			case len(names) == 0:
				if allNamespaces {
					fmt.Fprintln(g.errOut, "No clusters found.")
				} else {
					fmt.Fprintf(g.errOut, "No clusters found in namespace %s.\n", ns)
				}
			}
			if len(notFound) > 0 {
				return errors.Join(notFound...)
			}
			if !watch {
				return nil
			}
			defer cli.ReportConnection(ctx, st, g.errOut)()
			for ev := range st.Watch(ctx, ns, rev) {
				c := ev.Object
				if c == nil || (sel != nil && !sel.Matches(labels.Set(c.Labels))) {
					continue
				}
				if len(names) > 0 && !slices.Contains(names, c.Name) {
					continue
				}
				switch output {
				case cli.OutputYAML:
					fmt.Fprintln(g.out, "---")
					err = cli.PrintObject(g.out, output, c)
				case cli.OutputJSON:
					err = cli.PrintObject(g.out, output, c)
				case cli.OutputName:
					fmt.Fprintln(g.out, cli.Ref(c.Name))
				case cli.OutputTable, cli.OutputWide:
					err = stream.Print(g.out, []*v1alpha1.Cluster{c})
				default: // jsonpath, one object at a time
					err = cli.PrintObject(g.out, output, c)
				}
				if err != nil {
					return err
				}
			}
			return nil // interrupted: streaming ends normally
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "output format: wide, yaml, json, name or jsonpath=TEMPLATE")
	f.BoolVarP(&watch, "watch", "w", false, "after listing, stream every change until interrupted")
	f.StringVarP(&selector, "selector", "l", "", "label selector, e.g. team=payments,tier!=cache")
	f.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list clusters of every namespace")
	f.BoolVar(&noHeaders, "no-headers", false, "print the table without its header")
	f.BoolVar(&showLabels, "show-labels", false, "print the table with each cluster's labels as its last column")
	return cmd
}
