package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
)

// defaultApplyWait bounds apply --wait and delete --wait: members are real
// processes that take a while to fetch and start.
const defaultApplyWait = 5 * time.Minute

func newApplyCmd(g *globals) *cobra.Command {
	var (
		files    []string
		dryRun   string
		prune    bool
		selector string
		wait     bool
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply -f PATH...",
		Short: "Create or update clusters from files, a directory or stdin",
		Long: `Apply makes the stored clusters what the files say. Every document of every file
is read and validated first; if one is bad, nothing is written.

For each cluster it prints one line: created, configured (spec, labels or
annotations changed; generation goes up by one when the spec changed) or
unchanged (nothing written).`,
		Example: `  converge apply -f orders.yaml
  converge apply -f manifests/examples/
  converge get cluster orders-db -o yaml | converge apply -f -
  converge apply -f team/ --prune -l team=payments
  converge apply -f orders.yaml --wait --timeout 2m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return cli.Usage("must give at least one file with -f (a file, a directory or - for stdin)")
			}
			dry, sel, err := applyMode(dryRun, selector, prune, wait)
			if err != nil {
				return err
			}
			ms, err := g.readManifests(files)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			applied, err := cli.Apply(ctx, st, ms, cli.ApplyOptions{
				DryRun: dry, Prune: prune, Selector: sel, PruneNamespace: g.ns(), Out: g.out,
			})
			if err != nil {
				return err
			}
			if !wait {
				return nil
			}
			return waitReady(ctx, st, g, applied, timeout)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&files, "filename", "f", nil, "file, directory (*.yaml, *.yml, *.json) or - for stdin; may repeat")
	f.StringVar(&dryRun, "dry-run", "none", `"server": validate against the stored objects and print what would change, writing nothing`)
	f.Lookup("dry-run").NoOptDefVal = "server"
	f.BoolVar(&prune, "prune", false, "delete clusters that match -l in the applied namespaces but are not in the files")
	f.StringVarP(&selector, "selector", "l", "", "label selector of the clusters --prune may delete (e.g. team=payments)")
	f.BoolVar(&wait, "wait", false, "wait until every applied cluster is Ready for its new generation")
	f.DurationVar(&timeout, "timeout", defaultApplyWait, "how long --wait waits")
	return cmd
}

// applyMode reads --dry-run and the prune selector, checking the flags
// together so that a bad combination is a usage error before any file is
// read.
func applyMode(dryRun, selector string, prune, wait bool) (dry bool, sel labels.Selector, err error) {
	switch dryRun {
	case "", "none":
	case "server":
		dry = true
	default:
		return false, nil, cli.Usage(`--dry-run must be "server" or "none", not %q`, dryRun)
	}
	if selector != "" {
		s, err := labels.Parse(selector)
		if err != nil {
			return false, nil, fmt.Errorf("selector %q: %w", selector, err)
		}
		sel = s
	}
	if prune && sel == nil {
		return false, nil, cli.Usage("--prune needs a label selector (-l) naming the set of clusters these files own")
	}
	if !prune && sel != nil {
		return false, nil, cli.Usage("-l only selects what --prune may delete; add --prune")
	}
	if wait && dry {
		return false, nil, cli.Usage("--wait cannot be used with --dry-run")
	}
	return dry, sel, nil
}

// waitReady waits for each applied cluster's Ready condition (about the
// generation apply produced), printing "cluster/NAME ready". A cluster
// Stalled for that generation fails at once (cli.ErrStalled).
func waitReady(ctx context.Context, st *store.Store, g *globals, applied []cli.Applied, timeout time.Duration) error {
	if timeout <= 0 {
		return cli.Usage("--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	for _, a := range applied {
		c, err := cli.Wait(ctx, st, a.Object.Namespace, a.Object.Name, cli.WaitFor{Condition: "Ready", Status: "True"})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(g.out, "%s ready (generation %d, %d/%d)\n", cli.Ref(c.Name), c.Generation, c.Status.ReadyReplicas, cli.Desired(c))
	}
	return errors.Join(errs...)
}
