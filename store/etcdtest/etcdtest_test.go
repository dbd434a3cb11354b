package etcdtest_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/converge-io/converge/store/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRestartKeepsDataAndEndpoints(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t, 20*time.Second)
	eps := srv.Endpoints()
	if _, err := srv.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	if fmt.Sprint(srv.Endpoints()) != fmt.Sprint(eps) {
		t.Fatalf("endpoints changed: %v -> %v", eps, srv.Endpoints())
	}
	resp, err := srv.Client().Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}

// The test servers keep etcd's default limit, as a stock etcd does.
func TestDefaultTxnOpsLimit(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t, 20*time.Second)
	ops := make([]clientv3.Op, embed.DefaultMaxTxnOps)
	for i := range ops {
		ops[i] = clientv3.OpPut(fmt.Sprintf("k%d", i), "v")
	}
	if _, err := srv.Client().Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatalf("%d ops: %v", len(ops), err)
	}
	ops = append(ops, clientv3.OpPut("one-too-many", "v"))
	if _, err := srv.Client().Txn(ctx).Then(ops...).Commit(); err == nil {
		t.Fatalf("%d ops accepted", len(ops))
	}
}

func TestPartition(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := srv.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	srv.Partition()
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := srv.Client().Get(pctx, "k")
	cancel()
	if err == nil {
		t.Fatal("read succeeded through a partition")
	}
	srv.Heal()
	deadline := time.Now().Add(10 * time.Second)
	for {
		hctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := srv.Client().Get(hctx, "k")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reachable after Heal: %v", err)
		}
	}
}

func TestStartEmbedded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	dir := filepath.Join(t.TempDir(), "etcd")
	e, err := etcdtest.StartEmbedded(dir, url)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxT(t, 20*time.Second)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	// A second server on the same URL fails instead of hanging.
	if e2, err := etcdtest.StartEmbedded(t.TempDir(), url); err == nil {
		e2.Close()
		t.Fatal("second server on the same client URL started")
	}
	if _, err := etcdtest.StartEmbedded(t.TempDir(), "not a url"); err == nil {
		t.Fatal("bad client URL accepted")
	}
}

func TestStartTLS(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := srv.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatalf("client with certificate: %v", err)
	}
	if srv.CAFile() == "" || srv.ClientCertFile() == "" || srv.ClientKeyFile() == "" {
		t.Fatal("TLS files not exposed")
	}
	good, err := srv.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	// Trusting the CA but presenting no certificate: refused.
	noCert := &tls.Config{RootCAs: good.RootCAs, MinVersion: tls.VersionTLS12}
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: time.Second, TLS: noCert, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := cli.Get(gctx, "k"); err == nil {
		t.Fatal("client without a certificate was served")
	}
}
