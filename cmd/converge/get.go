package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

// getFlags are converge get's flags.
type getFlags struct {
	output        string
	watch         bool
	selector      string
	allNamespaces bool
	noHeaders     bool
	showLabels    bool
}

// getQuery is what one converge get asks for, checked before etcd is
// dialled: the names (none: all), the label selector and the namespace
// ("": every namespace).
type getQuery struct {
	getFlags
	names []string
	sel   labels.Selector
	ns    string
}

func newGetCmd(g *globals) *cobra.Command {
	var fl getFlags
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
			q, err := fl.query(g, args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			return q.run(ctx, g, st)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&fl.output, "output", "o", "", "output format: wide, yaml, json, name or jsonpath=TEMPLATE")
	f.BoolVarP(&fl.watch, "watch", "w", false, "after listing, stream every change until interrupted")
	f.StringVarP(&fl.selector, "selector", "l", "", "label selector, e.g. team=payments,tier!=cache")
	f.BoolVarP(&fl.allNamespaces, "all-namespaces", "A", false, "list clusters of every namespace")
	f.BoolVar(&fl.noHeaders, "no-headers", false, "print the table without its header")
	f.BoolVar(&fl.showLabels, "show-labels", false, "print the table with each cluster's labels as its last column")
	return cmd
}

// query checks the arguments and flags together, so that a bad combination
// is a usage error before anything is read.
func (fl getFlags) query(g *globals, args []string) (getQuery, error) {
	q := getQuery{getFlags: fl, ns: g.ns()}
	var err error
	if q.names, err = cli.ParseNames(args); err != nil {
		return q, err
	}
	if err := cli.CheckOutput(fl.output); err != nil {
		return q, err
	}
	if fl.selector != "" {
		if len(q.names) > 0 {
			return q, cli.Usage("give names or a selector (-l), not both")
		}
		if q.sel, err = labels.Parse(fl.selector); err != nil {
			return q, fmt.Errorf("selector %q: %w", fl.selector, err)
		}
	}
	if fl.allNamespaces {
		if len(q.names) > 0 {
			return q, cli.Usage("names are per namespace: give -n NAMESPACE instead of -A")
		}
		q.ns = ""
	}
	return q, nil
}

// run prints the clusters asked for, then with -w follows their changes.
// Names that do not exist are reported after the others are printed.
func (q getQuery) run(ctx context.Context, g *globals, st *store.Store) error {
	items, rev, notFound, err := q.fetch(ctx, st)
	if err != nil {
		return err
	}
	tp := cli.TablePrinter{AllNamespaces: q.allNamespaces, NoHeaders: q.noHeaders, Wide: q.output == cli.OutputWide, ShowLabels: q.showLabels}
	stream := &cli.TableStream{P: tp}
	if err := q.printListed(g, items, rev, tp, stream); err != nil {
		return err
	}
	if len(notFound) > 0 {
		return errors.Join(notFound...)
	}
	if !q.watch {
		return nil
	}
	defer cli.ReportConnection(ctx, st, g.errOut)()
	return q.follow(ctx, g, st, rev, stream)
}

// fetch reads the clusters: a list (with its revision, where a watch
// starts) for all of them or for a watch, else each name on its own so
// that a missing one is named.
func (q getQuery) fetch(ctx context.Context, st *store.Store) (items []*v1alpha1.Cluster, rev int64, notFound []error, err error) {
	if len(q.names) == 0 || q.watch {
		all, r, err := st.List(ctx, q.ns, q.sel)
		if err != nil {
			return nil, 0, nil, err
		}
		rev = r
		for _, c := range all {
			if len(q.names) == 0 || slices.Contains(q.names, c.Name) {
				items = append(items, c)
			}
		}
	}
	if len(q.names) > 0 && !q.watch {
		for _, n := range q.names {
			c, err := st.Get(ctx, q.ns, n)
			if store.IsNotFound(err) {
				notFound = append(notFound, fmt.Errorf("%s not found in namespace %s", cli.Ref(n), q.ns))
				continue
			}
			if err != nil {
				return nil, 0, nil, err
			}
			items = append(items, c)
		}
	}
	return items, rev, notFound, nil
}

// printListed prints what was read: a watched table's header at once
// (rows follow aligned under it), the items in the chosen output, or
// kubectl's "No clusters found" on stderr.
func (q getQuery) printListed(g *globals, items []*v1alpha1.Cluster, rev int64, tp cli.TablePrinter, stream *cli.TableStream) error {
	table := q.output == cli.OutputTable || q.output == cli.OutputWide
	single := len(q.names) == 1
	switch {
	case q.watch && table:
		return stream.Print(g.out, items)
	case len(items) > 0 || q.output == cli.OutputYAML || q.output == cli.OutputJSON || cli.IsJSONPath(q.output):
		if !(single && len(items) == 0) {
			return cli.PrintItems(g.out, q.output, items, single, rev, tp)
		}
	case len(q.names) == 0:
		if q.allNamespaces {
			fmt.Fprintln(g.errOut, "No clusters found.")
		} else {
			fmt.Fprintf(g.errOut, "No clusters found in namespace %s.\n", q.ns)
		}
	}
	return nil
}

// follow prints every change after revision rev to the clusters asked for,
// one object at a time, until ctx ends (an interrupt ends it normally).
func (q getQuery) follow(ctx context.Context, g *globals, st *store.Store, rev int64, stream *cli.TableStream) error {
	for ev := range st.Watch(ctx, q.ns, rev) {
		c := ev.Object
		if c == nil || (q.sel != nil && !q.sel.Matches(labels.Set(c.Labels))) {
			continue
		}
		if len(q.names) > 0 && !slices.Contains(q.names, c.Name) {
			continue
		}
		var err error
		switch q.output {
		case cli.OutputYAML:
			fmt.Fprintln(g.out, "---")
			err = cli.PrintObject(g.out, q.output, c)
		case cli.OutputJSON:
			err = cli.PrintObject(g.out, q.output, c)
		case cli.OutputName:
			fmt.Fprintln(g.out, cli.Ref(c.Name))
		case cli.OutputTable, cli.OutputWide:
			err = stream.Print(g.out, []*v1alpha1.Cluster{c})
		default: // jsonpath, one object at a time
			err = cli.PrintObject(g.out, q.output, c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
