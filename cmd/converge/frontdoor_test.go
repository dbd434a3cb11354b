package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/converge-io/converge/store"
)

// dev is one in-process `converge dev` on free ports.
type dev struct {
	t       *testing.T
	etcdURL string
	out     *syncBuffer
	errOut  *syncBuffer
	cancel  context.CancelFunc
	done    chan int
}

// startDev runs `converge dev` on data and etcdURL (Mesos and metrics on free
// ports) until stop.
func startDev(t *testing.T, data, etcdURL string) *dev {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &dev{t: t, etcdURL: etcdURL, out: &syncBuffer{}, errOut: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		d.done <- run(ctx, []string{"dev", "--data-dir", data, "--etcd-client-url", etcdURL,
			"--mesos-listen", "127.0.0.1:0", "--http", "", "--agents", "1"},
			streams{in: strings.NewReader(""), out: d.out, errOut: d.errOut})
	}()
	t.Cleanup(func() { d.stop() })
	return d
}

// ready waits until dev says it runs.
func (d *dev) ready() {
	d.t.Helper()
	waitFor(d.t, func() bool {
		select {
		case code := <-d.done:
			d.done <- code
			d.t.Fatalf("dev exited %d:\n%s%s", code, d.out, d.errOut)
		default:
		}
		return strings.Contains(d.out.String(), "Press Ctrl-C")
	})
}

// stop interrupts dev as Ctrl-C does and returns how long it took to exit
// and its exit code.
func (d *dev) stop() (time.Duration, int) {
	d.t.Helper()
	start := time.Now()
	d.cancel()
	select {
	case code := <-d.done:
		d.done <- code
		return time.Since(start), code
	case <-time.After(30 * time.Second):
		d.t.Fatal("dev did not stop in 30s")
		return 0, -1
	}
}

// stopOK stops dev and checks that it exited 0.
func (d *dev) stopOK() time.Duration {
	d.t.Helper()
	took, code := d.stop()
	if code != 0 {
		d.t.Fatalf("dev exited %d:\n%s%s", code, d.out, d.errOut)
	}
	return took
}

// TestDevDataDirInUse: a second dev on a data dir in use fails at once,
// naming the process that holds it, instead of hanging in etcd's file lock.
func TestDevDataDirInUse(t *testing.T) {
	data := t.TempDir()
	first := startDev(t, data, freeURL(t))
	first.ready()

	second := startDev(t, data, freeURL(t))
	select {
	case code := <-second.done:
		second.done <- code
		want := fmt.Sprintf("error: data dir %s is in use by another converge dev (pid %d); stop it, or give another --data-dir\n", data, os.Getpid())
		if code != 1 || second.errOut.String() != want {
			t.Fatalf("second dev: exit %d, stderr %q, want exit 1 and %q", code, second.errOut, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("second dev on a data dir in use still runs after 20s:\n%s%s", second.out, second.errOut)
	}
	// The first one is untouched, and once it stops the dir is free again.
	first.stopOK()
	third := startDev(t, data, first.etcdURL)
	third.ready()
	third.stopOK()
}

// TestDevStopsWithWatcherConnected: Ctrl-C stops dev at once even while a
// client watches (etcd used to wait 7 s for the watch stream: its request
// timeout), and the watcher says on stderr that etcd is gone, then that it is
// back, and streams the changes made after the restart.
func TestDevStopsWithWatcherConnected(t *testing.T) {
	data := t.TempDir()
	d := startDev(t, data, freeURL(t))
	d.ready()

	e := &env{t: t, endpoint: d.etcdURL, prefix: store.DefaultPrefix, dir: t.TempDir()}
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	wout, werr := &syncBuffer{}, &syncBuffer{}
	wdone := make(chan int, 1)
	before := etcdWatchers(t)
	go func() {
		wdone <- run(wctx, []string{"--etcd-endpoints", d.etcdURL, "get", "clusters", "-w"},
			streams{in: strings.NewReader(""), out: wout, errOut: werr})
	}()
	// It listed, and a watch stream more is open in dev's etcd (embedded
	// in this process).
	waitFor(t, func() bool { return strings.Contains(wout.String(), "NAME") && etcdWatchers(t) > before })

	// Not machine speed: etcd's forced close comes only after 7 s (5 s
	// request timeout plus two 1 s election timeouts); dev without a
	// watcher stops in well under a second.
	if took := d.stopOK(); took > 5*time.Second {
		t.Fatalf("dev took %v to stop with a watcher connected", took)
	}
	lost := "warning: lost etcd at " + d.etcdURL + ": connection refused; still watching, changes resume when it is back\n"
	waitFor(t, func() bool { return strings.Contains(werr.String(), lost) })

	d = startDev(t, data, d.etcdURL)
	d.ready()
	waitFor(t, func() bool { return strings.Contains(werr.String(), "etcd at "+d.etcdURL+" is back; watching again\n") })
	expect(t, e.run("", "apply", "-f", e.file("after.yaml", manifest("after-restart", 1, ""))), 0, "created")
	waitFor(t, func() bool { return strings.Contains(wout.String(), "after-restart") })
	stopWatch()
	if code := <-wdone; code != 0 {
		t.Fatalf("watcher exited %d: %s", code, werr)
	}
	d.stopOK()
}

// TestEndpointsWatchSaysEtcdIsGone: endpoints -w, too, tells on stderr when
// etcd is gone and when it is back, and streams the record published
// meanwhile.
func TestEndpointsWatchSaysEtcdIsGone(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("ep.yaml", manifest("published", 1, ""))), 0, "created")
	publish := func(epoch int64) {
		t.Helper()
		b := e.st.NewBatch()
		b.PutEndpoints(store.Endpoints{Namespace: "default", Cluster: "published", Epoch: epoch})
		if _, err := e.st.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	publish(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--etcd-endpoints", e.endpoint, "--prefix", e.prefix, "endpoints", "cluster/published", "-w"},
			streams{in: strings.NewReader(""), out: out, errOut: errOut})
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "epoch 1") })

	e.srv.Stop()
	waitFor(t, func() bool { return strings.Contains(errOut.String(), "warning: lost etcd at "+e.endpoint+": ") })
	e.srv.Restart(t)
	waitFor(t, func() bool {
		return strings.Contains(errOut.String(), "etcd at "+e.endpoint+" is back; watching again\n")
	})
	publish(2)
	waitFor(t, func() bool { return strings.Contains(out.String(), "epoch 2") })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("endpoints -w exited %d: %s", code, errOut)
	}
}

// TestWaitSaysEtcdIsGone: a wait, which watches, says on stderr when etcd is
// gone and when it is back, and still sees the deletion made after that.
func TestWaitSaysEtcdIsGone(t *testing.T) {
	e := newEnv(t)
	expect(t, e.run("", "apply", "-f", e.file("w.yaml", manifest("awaited-delete", 1, ""))), 0, "created")
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	before := etcdWatchers(t)
	go func() {
		done <- run(context.Background(), []string{"--etcd-endpoints", e.endpoint, "--prefix", e.prefix,
			"wait", "cluster/awaited-delete", "--for=delete", "--timeout", "60s"},
			streams{in: strings.NewReader(""), out: out, errOut: errOut})
	}()
	// Stop etcd only once the wait watches (its reporter runs by then).
	waitFor(t, func() bool { return etcdWatchers(t) > before })
	e.srv.Stop()
	waitFor(t, func() bool { return strings.Contains(errOut.String(), "warning: lost etcd at "+e.endpoint+": ") })
	e.srv.Restart(t)
	waitFor(t, func() bool {
		return strings.Contains(errOut.String(), "etcd at "+e.endpoint+" is back; watching again\n")
	})
	expect(t, e.run("", "delete", "cluster", "awaited-delete"), 0)
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "cluster/awaited-delete deleted") {
			t.Fatalf("wait: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("wait did not see the deletion: stderr %q", errOut)
	}
}

// etcdWatchers is the number of watchers of the etcd servers embedded in this
// test process (etcd's etcd_debugging_mvcc_watcher_total gauge).
func etcdWatchers(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "etcd_debugging_mvcc_watcher_total" && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
