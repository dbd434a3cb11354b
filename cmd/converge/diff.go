package main

import (
	"errors"
	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
)

func newDiffCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "diff -f PATH...",
		Short: "Show what apply would change, as a unified diff of live vs file",
		Long: `Diff prints a unified diff of each cluster as stored against what apply would
make of it (apiVersion, kind, name, namespace, labels, annotations, spec).

Exit status, as kubectl's: 0 no differences, 1 differences found, 2 error.`,
		Example: `  converge diff -f orders.yaml`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := func() error {
				if len(files) == 0 {
					return cli.Usage("must give at least one file with -f (a file, a directory or - for stdin)")
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
				differ, err := cli.Diff(ctx, st, ms, g.out)
				if err != nil {
					return err
				}
				if differ {
					return cli.Silent(cli.ExitFailure)
				}
				return nil
			}()
			var ee *cli.ExitError
			if err != nil && !isSilent(err) && !(errors.As(err, &ee) && ee.Code == cli.ExitUsage) {
				// Every error is exit 2 for diff: 1 means "differences found".
				return &cli.ExitError{Code: cli.ExitUsage, Err: err, NotUsage: true}
			}
			return err
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "file, directory or - for stdin; may repeat")
	return cmd
}
