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

// deleteFlags are converge delete's flags.
type deleteFlags struct {
	files          []string
	selector       string
	wait           bool
	timeout        time.Duration
	ignoreNotFound bool
}

// deleteTarget is one cluster to delete.
type deleteTarget struct{ ns, name string }

func newDeleteCmd(g *globals) *cobra.Command {
	var fl deleteFlags
	cmd := &cobra.Command{
		Use:   "delete cluster NAME... | delete -f PATH | delete cluster -l SELECTOR",
		Short: "Delete clusters: their tasks are killed, then the objects removed",
		Long: `Delete marks clusters for deletion. The controller kills their tasks, then
removes the finalizer and the object goes; --wait waits until it has gone.`,
		Example: `  converge delete cluster orders-db
  converge delete -f orders.yaml --wait
  converge delete clusters -l team=payments`,
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := fl.targets(g, args)
			if err != nil {
				return err
			}
			if fl.wait && fl.timeout <= 0 {
				return cli.Usage("--timeout must be positive")
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			if fl.selector != "" {
				ns := g.ns()
				items, err := listSelected(ctx, st, ns, fl.selector)
				if err != nil {
					return err
				}
				if len(items) == 0 {
					fmt.Fprintf(g.errOut, "No clusters found in namespace %s.\n", ns)
				}
				for _, c := range items {
					targets = append(targets, deleteTarget{c.Namespace, c.Name})
				}
			}
			deleted, errs := fl.deleteAll(ctx, g, st, targets)
			if fl.wait && len(deleted) > 0 {
				errs = append(errs, fl.waitGone(ctx, g, st, deleted)...)
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&fl.files, "filename", "f", nil, "delete the clusters named in these files (file, directory or -)")
	f.StringVarP(&fl.selector, "selector", "l", "", "delete the clusters matching this label selector")
	f.BoolVar(&fl.wait, "wait", false, "wait until the clusters are gone (tasks killed, object removed)")
	f.DurationVar(&fl.timeout, "timeout", defaultApplyWait, "how long --wait waits")
	f.BoolVar(&fl.ignoreNotFound, "ignore-not-found", false, "a cluster that does not exist is not an error")
	return cmd
}

// targets are the clusters named by -f or by the arguments, checked before
// etcd is dialled; those of -l are listed once connected.
func (fl deleteFlags) targets(g *globals, args []string) ([]deleteTarget, error) {
	var targets []deleteTarget
	if len(fl.files) > 0 {
		if len(args) > 0 || fl.selector != "" {
			return nil, cli.Usage("give -f, or names, or -l; not several")
		}
		ms, err := g.readManifests(fl.files)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			targets = append(targets, deleteTarget{m.Cluster.Namespace, m.Cluster.Name})
		}
		return targets, nil
	}
	names, err := cli.ParseNames(args)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 && fl.selector == "" {
		return nil, cli.Usage("name the clusters to delete (cluster NAME, cluster/NAME, -l SELECTOR or -f PATH)")
	}
	if len(names) > 0 && fl.selector != "" {
		return nil, cli.Usage("give names or a selector (-l), not both")
	}
	for _, n := range names {
		targets = append(targets, deleteTarget{g.ns(), n})
	}
	return targets, nil
}

// deleteAll marks each target for deletion, going on past failures so that
// one missing cluster does not spare the others; it returns those marked.
func (fl deleteFlags) deleteAll(ctx context.Context, g *globals, st *store.Store, targets []deleteTarget) (deleted []deleteTarget, errs []error) {
	for _, t := range targets {
		_, _, err := st.Delete(ctx, t.ns, t.name)
		if store.IsNotFound(err) {
			if !fl.ignoreNotFound {
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
	return deleted, errs
}

// waitGone waits, within --timeout for them all, until each deleted
// cluster's object is removed (its tasks killed).
func (fl deleteFlags) waitGone(ctx context.Context, g *globals, st *store.Store, deleted []deleteTarget) []error {
	wctx, cancel := context.WithTimeout(ctx, fl.timeout)
	defer cancel()
	var errs []error
	for _, t := range deleted {
		if _, err := cli.Wait(wctx, st, t.ns, t.name, cli.WaitFor{Delete: true}); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(g.out, "%s gone\n", cli.Ref(t.name))
	}
	return errs
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
