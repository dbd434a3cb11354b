package store_test

// Security of the etcd connection (issue 7): TLS with client certificates,
// etcd auth with a user whose role covers only converge's prefix, and the
// size limits that keep a huge object from reaching etcd.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

func tlsConfig(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// TestTLSClientCertificates: an etcd that requires client certificates
// signed by its CA (generated for the test with crypto/x509) serves a store
// that presents one; without a certificate, or trusting another CA, New
// fails within its dial timeout with an error naming the endpoint.
func TestTLSClientCertificates(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	ep := srv.Endpoints()[0]
	if !strings.HasPrefix(ep, "https://") {
		t.Fatalf("TLS server endpoint %q", ep)
	}
	ctx := ctxT(t)

	s, err := store.New(ctx, store.Options{
		Endpoints: srv.Endpoints(), Prefix: prefix, DialTimeout: 5 * time.Second,
		TLS: tlsConfig(t, srv.CAFile(), srv.ClientCertFile(), srv.ClientKeyFile()),
	})
	if err != nil {
		t.Fatalf("New with a client certificate: %v", err)
	}
	defer s.Close()
	if _, err := s.Create(ctx, cluster("default", "secure")); err != nil {
		t.Fatalf("Create over TLS: %v", err)
	}
	if got, err := s.Get(ctx, "default", "secure"); err != nil || got.Name != "secure" {
		t.Fatalf("Get over TLS: %v", err)
	}

	// No client certificate: the server refuses the handshake.
	start := time.Now()
	_, err = store.New(ctx, store.Options{
		Endpoints: srv.Endpoints(), Prefix: prefix, DialTimeout: 2 * time.Second,
		TLS: tlsConfig(t, srv.CAFile(), "", ""),
	})
	if err == nil {
		t.Fatal("New without a client certificate succeeded")
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("New without a client certificate took %s to fail", el)
	}
	if !strings.Contains(err.Error(), ep) {
		t.Errorf("error does not name the endpoint %s: %v", ep, err)
	}
	if !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("error does not say the certificate is missing: %v", err)
	}
	t.Logf("without a client certificate: %v", err)

	// Trusting another CA: the server's certificate is refused, and said so.
	other := etcdtest.StartTLS(t)
	_, err = store.New(ctx, store.Options{
		Endpoints: srv.Endpoints(), Prefix: prefix, DialTimeout: 2 * time.Second,
		TLS: tlsConfig(t, other.CAFile(), other.ClientCertFile(), other.ClientKeyFile()),
	})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("New trusting another CA: %v", err)
	}
	t.Logf("trusting another CA: %v", err)

	// Plain http against the TLS port: refused, not hung.
	_, err = store.New(ctx, store.Options{
		Endpoints: []string{strings.Replace(ep, "https://", "http://", 1)}, Prefix: prefix, DialTimeout: 2 * time.Second,
	})
	if err == nil {
		t.Fatal("New without TLS against a TLS etcd succeeded")
	}
	t.Logf("without TLS: %v", err)
}

// TestAuthLimitedToPrefix enables etcd auth through the client Auth API: a
// root user, and a converge user whose role may read and write only the
// range of converge's prefix. Everything the store does works for that
// user (objects, ledger, fenced batches under a lease-backed leadership
// key); keys outside the prefix are denied; a wrong password is a clear
// error that does not contain the password.
func TestAuthLimitedToPrefix(t *testing.T) {
	srv := startCheapAuthEtcd(t)
	ctx := ctxT(t)
	root := srv.Client()
	const (
		rootPass = "r00t-pass-xyz"
		userPass = "c0nverge-pass-xyz"
		pfx      = "/converge"
	)
	mustAuth := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := root.UserAdd(ctx, "root", rootPass)
	mustAuth("add root", err)
	_, err = root.UserGrantRole(ctx, "root", "root")
	mustAuth("grant root", err)
	_, err = root.RoleAdd(ctx, "converge")
	mustAuth("add role", err)
	// [pfx/, pfx0): every key under "<prefix>/".
	_, err = root.RoleGrantPermission(ctx, "converge", pfx+"/", clientv3.GetPrefixRangeEnd(pfx+"/"), clientv3.PermissionType(clientv3.PermReadWrite))
	mustAuth("grant prefix", err)
	_, err = root.UserAdd(ctx, "converge", userPass)
	mustAuth("add user", err)
	_, err = root.UserGrantRole(ctx, "converge", "converge")
	mustAuth("grant user", err)
	_, err = root.AuthEnable(ctx)
	mustAuth("enable auth", err)

	// The unauthenticated client may no longer read.
	if _, err := root.Get(ctx, pfx+"/framework"); err == nil {
		t.Fatal("an unauthenticated client could read after auth was enabled")
	}

	s, err := store.New(ctx, store.Options{Endpoints: srv.Endpoints(), Prefix: pfx, Username: "converge", Password: userPass})
	if err != nil {
		t.Fatalf("New as the converge user: %v", err)
	}
	defer s.Close()

	// Objects, status, ledger, framework.
	c, err := s.Create(ctx, cluster("default", "authz"))
	mustAuth("Create", err)
	c.Status.Replicas = 3
	_, err = s.UpdateStatus(ctx, c)
	mustAuth("UpdateStatus", err)
	if _, _, err := s.List(ctx, "", nil); err != nil {
		t.Fatalf("List: %v", err)
	}
	mustAuth("PutFramework", s.PutFramework(ctx, store.FrameworkState{FrameworkID: "fw-1"}))

	// A fenced batch, fenced on a leadership key under the prefix that a
	// lease of this user keeps alive (what converge serve's leader does).
	lease, err := s.Client().Grant(ctx, 5)
	mustAuth("lease grant", err)
	lk := s.LeaderPrefix() + "replica-a"
	put, err := s.Client().Put(ctx, lk, "replica-a", clientv3.WithLease(lease.ID))
	mustAuth("put leadership key", err)
	b := s.NewBatch()
	b.PutTask(store.TaskRecord{ID: "default.authz.0.x", Namespace: "default", Cluster: "authz", State: "TASK_STAGING"})
	_, err = s.Fenced(lk, put.Header.Revision).Commit(ctx, b)
	mustAuth("fenced Commit", err)
	tasks, err := s.ListTasks(ctx, "default", "authz")
	if err != nil || len(tasks) != 1 {
		t.Fatalf("ListTasks: %d, %v", len(tasks), err)
	}
	w := s.Watch(ctx, "default", 0)
	_, _, err = s.Delete(ctx, "default", "authz")
	mustAuth("Delete", err)
	select {
	case ev := <-w:
		if ev.Type != store.Deleted {
			t.Errorf("watch event %v, want Deleted", ev.Type)
		}
	case <-time.After(10 * time.Second):
		t.Error("no watch event for the delete")
	}
	_, err = s.Client().Revoke(ctx, lease.ID)
	mustAuth("revoke", err)

	// Outside the prefix: denied, for reads and writes alike, including a
	// sibling prefix that shares the first characters.
	for _, k := range []string{"/other", "/convergeX/a", "/", "/converge"} {
		if _, err := s.Client().Put(ctx, k, "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("Put %q: %v, want permission denied", k, err)
		}
		if _, err := s.Client().Get(ctx, k); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("Get %q: %v, want permission denied", k, err)
		}
	}
	// A store on another prefix cannot even connect: the error says why.
	_, err = store.New(ctx, store.Options{Endpoints: srv.Endpoints(), Prefix: "/elsewhere", Username: "converge", Password: userPass})
	if err == nil || !strings.Contains(err.Error(), "may not read") {
		t.Errorf("New on a prefix outside the role: %v", err)
	}

	// The CLI connects as that user too (its connection check reads only
	// under the prefix).
	cs, err := cli.Connect(ctx, cli.EtcdOptions{Endpoints: srv.Endpoints(), Prefix: pfx, Username: "converge", Password: userPass})
	if err != nil {
		t.Errorf("cli.Connect as the converge user: %v", err)
	} else {
		cli.Disconnect(cs)
	}

	// Wrong password: a clear error, without the password in it.
	_, err = store.New(ctx, store.Options{Endpoints: srv.Endpoints(), Prefix: pfx, Username: "converge", Password: "wrong-secret-pw", DialTimeout: 3 * time.Second})
	if err == nil {
		t.Fatal("New with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "rejected user") || strings.Contains(err.Error(), "wrong-secret-pw") {
		t.Errorf("wrong password error: %v", err)
	}

	// Root still sees everything converge wrote, all under the prefix.
	rc, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), Username: "root", Password: rootPass, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	all, err := rc.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		if !strings.HasPrefix(string(kv.Key), pfx+"/") {
			t.Errorf("key outside the prefix: %q", kv.Key)
		}
	}
}

// cheapAuthEtcd is a single embedded etcd with bcrypt at its minimum cost:
// every password check costs etcd's default cost (10) about 2.5 s under the
// race detector, the minimum a few milliseconds; auth behaves the same.
type cheapAuthEtcd struct {
	ep  string
	cli *clientv3.Client
}

func (e *cheapAuthEtcd) Endpoints() []string      { return []string{e.ep} }
func (e *cheapAuthEtcd) Client() *clientv3.Client { return e.cli }

func startCheapAuthEtcd(t *testing.T) *cheapAuthEtcd {
	t.Helper()
	var urls [2]url.URL
	for i := range urls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		urls[i] = url.URL{Scheme: "http", Host: l.Addr().String()}
		l.Close()
	}
	cfg := embed.NewConfig()
	cfg.Name = "auth"
	cfg.Dir = t.TempDir()
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{urls[0]}, []url.URL{urls[0]}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{urls[1]}, []url.URL{urls[1]}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.BcryptCost = uint(bcrypt.MinCost)
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("embedded etcd not ready")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{urls[0].String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return &cheapAuthEtcd{ep: urls[0].String(), cli: cli}
}

// TestSizeLimits: a document over Decode's limit is refused before anything
// is written, and an object too large for etcd's request limit fails with an
// error (never a hang) and leaves nothing behind.
func TestSizeLimits(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)

	big := "apiVersion: converge.io/v1alpha1\nkind: Cluster\nmetadata: {name: big}\nspec:\n  task:\n    command: \"" +
		strings.Repeat("x", v1alpha1.MaxDocumentBytes) + "\"\n"
	if _, err := v1alpha1.Decode([]byte(big), "big.yaml"); err == nil || !strings.Contains(err.Error(), "big.yaml") {
		t.Errorf("Decode of a %d-byte document: %v", len(big), err)
	}

	c := cluster("default", "huge")
	c.Annotations = map[string]string{"blob": strings.Repeat("y", 3<<20)}
	start := time.Now()
	if _, err := s.Create(ctx, c); err == nil {
		t.Fatal("a 3 MiB object was stored")
	} else {
		t.Logf("3 MiB object: %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("refusing a huge object took %s", el)
	}
	if _, err := s.Get(ctx, "default", "huge"); !store.IsNotFound(err) {
		t.Errorf("Get after a refused create: %v", err)
	}
}

// TestLabelValuesNeverAddressKeys: label keys and values, however hostile,
// never reach a key: they are rejected by validation, and when a caller
// skips validation the object is stored under its (validated) name only.
func TestLabelValuesNeverAddressKeys(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	hostile := map[string]string{"../../framework": "x", "a": "../../leader/x", "b": "/converge/clusters/kube-system/evil", "c": "\x00"}
	c := cluster("default", "labelled")
	c.Labels = hostile
	v1alpha1.SetDefaults(c)
	if errs := v1alpha1.Validate(c); len(errs) == 0 {
		t.Error("Validate accepted hostile labels")
	}
	if _, err := s.Create(ctx, c); err != nil {
		t.Logf("store refused unvalidated hostile labels: %v", err)
	}
	all, err := s.Client().Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		if k := string(kv.Key); k != prefix+"/clusters/default/labelled" {
			t.Errorf("unexpected key %q", k)
		}
	}
}
