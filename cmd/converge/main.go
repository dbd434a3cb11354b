// Command converge is the one converge binary: the kubectl-style client
// (apply, get, describe, delete, diff, wait, endpoints), the controller
// (serve), the all-in-one development cluster (dev), the local Mesos
// (local-mesos) and the custom executor Mesos agents run (executor).
//
// This package holds wiring and flags only; what the commands do lives in
// package cli and the packages it names.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/converge-io/converge/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, errOut: os.Stderr})
	stop()
	os.Exit(code)
}

// streams are a command's standard input, output and error.
type streams struct {
	in          io.Reader
	out, errOut io.Writer
}

// run executes one command line and returns the exit code: 0 success, 1 a
// failure the user can fix, 2 usage. Errors go to stderr, one clear sentence
// first.
func run(ctx context.Context, args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return cli.ExitOK
	}
	code := cli.ExitCode(err)
	if msg := strings.TrimSpace(err.Error()); msg != "" && !isSilent(err) {
		fmt.Fprintf(s.errOut, "error: %s\n", msg)
		var ee *cli.ExitError
		if code == cli.ExitUsage && cmd != nil && !(errors.As(err, &ee) && ee.NotUsage) {
			fmt.Fprintf(s.errOut, "See '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

func isSilent(err error) bool {
	ee, ok := err.(*cli.ExitError)
	return ok && ee.Err == nil
}
