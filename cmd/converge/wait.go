package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

func newWaitCmd(g *globals) *cobra.Command {
	var (
		forFlag  string
		timeout  time.Duration
		selector string
	)
	cmd := &cobra.Command{
		Use:   "wait cluster/NAME... --for=condition=Ready|--for=delete",
		Short: "Wait for a condition on clusters, or for their deletion",
		Long: `Wait blocks until each cluster has the condition (Ready, Reconciling, Stalled,
with =True by default, or =False / =Unknown), or is gone (--for=delete).

A condition counts only when it is about the cluster's current generation (its
observedGeneration equals metadata.generation), so "apply, then wait" never
returns on the status of the previous spec. A cluster Stalled for its current
generation (ProgressDeadlineExceeded, NoOfferFits, InvalidSpec) ends the wait
at once with exit 1 and the Stalled reason and message, as kstatus reads
Failed. Changes are followed through an etcd watch.`,
		Example: `  converge wait cluster/orders-db --for=condition=Ready --timeout 2m
  converge wait cluster orders-db --for=condition=Stalled=False
  converge wait cl/orders-db --for=delete`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, f, err := parseWaitArgs(args, forFlag, timeout, selector)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			// A wait is a watch: say so when etcd goes away meanwhile.
			defer cli.ReportConnection(ctx, st, g.errOut)()
			ns := g.ns()
			if selector != "" {
				items, err := listSelected(ctx, st, ns, selector)
				if err != nil {
					return err
				}
				if len(items) == 0 {
					return fmt.Errorf("no clusters match %q in namespace %s", selector, ns)
				}
				for _, c := range items {
					names = append(names, c.Name)
				}
			}
			return waitEach(ctx, g, st, ns, names, f)
		},
	}
	f := cmd.Flags()
	f.StringVar(&forFlag, "for", "", "condition=TYPE[=True|False|Unknown] or delete")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long (exit 1)")
	f.StringVarP(&selector, "selector", "l", "", "wait for every cluster matching this label selector")
	return cmd
}

// parseWaitArgs checks the arguments and flags together, so that a bad
// combination is a usage error before etcd is dialled.
func parseWaitArgs(args []string, forFlag string, timeout time.Duration, selector string) ([]string, cli.WaitFor, error) {
	names, err := cli.ParseNames(args)
	if err != nil {
		return nil, cli.WaitFor{}, err
	}
	if forFlag == "" {
		return nil, cli.WaitFor{}, cli.Usage("--for is required: --for=condition=Ready or --for=delete")
	}
	f, err := cli.ParseWaitFor(forFlag)
	if err != nil {
		return nil, cli.WaitFor{}, err
	}
	if timeout <= 0 {
		return nil, cli.WaitFor{}, cli.Usage("--timeout must be positive")
	}
	if len(names) == 0 && selector == "" {
		return nil, cli.WaitFor{}, cli.Usage("name the clusters to wait for (cluster/NAME or -l SELECTOR)")
	}
	if len(names) > 0 && selector != "" {
		return nil, cli.WaitFor{}, cli.Usage("give names or a selector (-l), not both")
	}
	return names, f, nil
}

// waitEach waits for each cluster in turn (one deadline for them all),
// going on past failures so that every cluster's outcome is printed.
func waitEach(ctx context.Context, g *globals, st *store.Store, ns string, names []string, f cli.WaitFor) error {
	var errs []error
	for _, n := range names {
		if _, err := cli.Wait(ctx, st, ns, n, f); err != nil {
			errs = append(errs, err)
			continue
		}
		if f.Delete {
			fmt.Fprintf(g.out, "%s deleted\n", cli.Ref(n))
		} else {
			fmt.Fprintf(g.out, "%s condition met\n", cli.Ref(n))
		}
	}
	return errors.Join(errs...)
}
