package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/connectivity"

	"github.com/converge-io/converge/store"
)

// ReportConnection tells w when the connection to etcd breaks and when it is
// back, until ctx ends. Watching commands (get -w, endpoints -w) run it beside
// their stream: store's watches resume by themselves once etcd answers again
// (re-listing what changed meanwhile), so the stream needs no restart, but a
// person looking at a quiet terminal must know it is quiet because etcd is gone.
// This is kubectl's "resume" choice rather than its "exit" one: a restarted
// `converge dev` picks the watchers up again.
//
// It reports in the background; stop ends it and returns once it wrote its
// last line.
func ReportConnection(ctx context.Context, st *store.Store, w io.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		reportConnection(ctx, st, w)
	}()
	return func() {
		cancel()
		<-done
	}
}

func reportConnection(ctx context.Context, st *store.Store, w io.Writer) {
	cli := st.Client()
	conn := cli.ActiveConnection()
	where := strings.Join(cli.Endpoints(), ",")
	lost := false
	for {
		s := conn.GetState()
		switch {
		case s == connectivity.Ready && lost:
			lost = false
			fmt.Fprintf(w, "etcd at %s is back; watching again\n", where)
		case s == connectivity.TransientFailure && !lost:
			lost = true
			reason := "connection lost"
			if err := refused(ctx, cli.Endpoints()); err != nil {
				reason = err.Error()
			}
			fmt.Fprintf(w, "warning: lost etcd at %s: %s; still watching, changes resume when it is back\n", where, reason)
		}
		if !conn.WaitForStateChange(ctx, s) {
			return // ctx ended
		}
	}
}
