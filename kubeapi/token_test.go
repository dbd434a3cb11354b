package kubeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/converge-io/converge/store"
	"github.com/converge-io/converge/store/etcdtest"
)

// TestTokenFile: converge serve's --api-token-file (kube-apiserver's
// --token-auth-file format): a listed token authenticates, a wrong one and
// none are 401 Unauthorized.
func TestTokenFile(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.New(ctx, store.Options{Endpoints: etcd.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	pki, err := EnsureDevPKI(filepath.Join(dir, "pki"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(`s3cret-token,alice,1001,"ops,dev"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	running, err := Start(actx, Config{Store: st, Listen: "127.0.0.1:0", CertFile: pki.CertFile, KeyFile: pki.KeyFile,
		TokenFile: tokens, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); running.Wait() }()

	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	get := func(token string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, running.URL+"/apis/converge.io/v1alpha1/namespaces/default/clusters", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET: %v", err)
			}
			time.Sleep(20 * time.Millisecond) // the server starts in the background
		}
	}
	if code := get("s3cret-token"); code != http.StatusOK {
		t.Fatalf("listed token: %d, want 200", code)
	}
	for _, tok := range []string{"wrong-token", ""} {
		if code := get(tok); code != http.StatusUnauthorized {
			t.Fatalf("token %q: %d, want 401", tok, code)
		}
	}
}
