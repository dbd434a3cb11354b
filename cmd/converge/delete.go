package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

func newDeleteCmd(g *globals) *cobra.Command {
	var (
		files          []string
		selector       string
		wait           bool
		timeout        time.Duration
		ignoreNotFound bool
	)
	cmd := &cobra.Command{
		Use:   "delete cluster NAME... | delete -f PATH | delete cluster -l SELECTOR",
		Short: "Delete clusters: their tasks are killed, then the objects removed",
		Long: `Delete marks clusters for deletion. The controller kills their tasks, then
removes the finalizer and the object goes; --wait waits until it has gone.`,
		Example: `  converge delete cluster orders-db
  converge delete -f orders.yaml --wait
  converge delete clusters -l team=payments`,
		RunE: func(cmd *cobra.Command, args []string) error {
			type target struct{ ns, name string }
			var targets []target
			ns := g.ns()
			switch {
			case len(files) > 0:
				if len(args) > 0 || selector != "" {
					return cli.Usage("give -f, or names, or -l; not several")
				}
				ms, err := g.readManifests(files)
				if err != nil {
					return err
				}
				for _, m := range ms {
					targets = append(targets, target{m.Cluster.Namespace, m.Cluster.Name})
				}
			default:
				names, err := cli.ParseNames(args)
				if err != nil {
					return err
				}
				if len(names) == 0 && selector == "" {
					return cli.Usage("name the clusters to delete (cluster NAME, cluster/NAME, -l SELECTOR or -f PATH)")
				}
				if len(names) > 0 && selector != "" {
					return cli.Usage("give names or a selector (-l), not both")
				}
				for _, n := range names {
					targets = append(targets, target{ns, n})
				}
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
			if selector != "" {
				items, err := listSelected(ctx, st, ns, selector)
				if err != nil {
					return err
				}
				if len(items) == 0 {
					fmt.Fprintf(g.errOut, "No clusters found in namespace %s.\n", ns)
				}
				for _, c := range items {
					targets = append(targets, target{c.Namespace, c.Name})
				}
			}
			var errs []error
			var deleted []target
			for _, t := range targets {
				_, _, err := st.Delete(ctx, t.ns, t.name)
				if store.IsNotFound(err) {
					if !ignoreNotFound {
						errs = append(errs, fmt.Errorf("%s not found in namespace %s", cli.Ref(t.name), t.ns))
					}
					continue
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(g.out, "%s %s\n", cli.Ref(t.name), cli.ActionDeleted)
				deleted = append(deleted, t)
			}
			if wait && len(deleted) > 0 {
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				for _, t := range deleted {
					if _, err := cli.Wait(wctx, st, t.ns, t.name, cli.WaitFor{Delete: true}); err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintf(g.out, "%s gone\n", cli.Ref(t.name))
				}
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&files, "filename", "f", nil, "delete the clusters named in these files (file, directory or -)")
	f.StringVarP(&selector, "selector", "l", "", "delete the clusters matching this label selector")
	f.BoolVar(&wait, "wait", false, "wait until the clusters are gone (tasks killed, object removed)")
	f.DurationVar(&timeout, "timeout", defaultApplyWait, "how long --wait waits")
	f.BoolVar(&ignoreNotFound, "ignore-not-found", false, "a cluster that does not exist is not an error")
	return cmd
}

// listSelected lists the clusters of namespace ns matching the label
// selector (a bad selector is an error naming it).
func listSelected(ctx context.Context, st *store.Store, ns, selector string) ([]*v1alpha1.Cluster, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("selector %q: %w", selector, err)
	}
	items, _, err := st.List(ctx, ns, sel)
	return items, err
}
