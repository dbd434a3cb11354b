// Package cli holds what the converge command line does, apart from flag
// parsing: reading manifests, apply, diff, wait, delete, and printing objects
// the way kubectl users expect. cmd/converge wires it to cobra.
package cli

import (
	"errors"
	"fmt"
)

// Exit codes, as kubectl uses them.
const (
	ExitOK = 0
	// ExitFailure: something the user can fix (bad input, conflict, timeout,
	// not found, etcd unreachable).
	ExitFailure = 1
	// ExitUsage: unknown flag or command, missing required argument.
	ExitUsage = 2
)

// ExitError carries the process exit code with the error that caused it.
type ExitError struct {
	Code int
	Err  error
	// NotUsage marks an exit code 2 that is not about usage (diff's
	// errors): no "See --help" hint follows it.
	NotUsage bool
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Fail wraps err as a user-fixable failure (exit 1).
func Fail(err error) error {
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: ExitFailure, Err: err}
}

// Usage returns a usage error (exit 2).
func Usage(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// Silent is an exit code with nothing more to print (diff's "differences found").
func Silent(code int) error { return &ExitError{Code: code} }

// ExitCode maps an error to the process exit code: an ExitError's own code,
// ExitUsage for anything else (errors cobra itself returns are about usage).
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitUsage
}
