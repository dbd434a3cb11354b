package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestServeHAKubeAPI runs the converge binary's `serve` as two replicas, a
// leader and a standby, on one etcd and one local Mesos, each serving the
// Kubernetes API with a serving certificate, a client CA and a token file
// (TestServeHA covers the failover itself). On both replicas a client
// certificate of the client CA and a listed token are accepted; no
// credentials, a certificate of another CA and a wrong token are 401. A
// cluster created through the standby's API is the one the leader's API
// serves, and the leader's controller brings it to Ready, as the standby's
// API reads.
func TestServeHAKubeAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs converge serve")
	}
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startLocalMesos(ctx, t, localmesos.Options{Agents: 1})
	pki := newTestPKI(t, e.dir)
	tokens := e.file("tokens.csv", "t0ken-of-bob,bob,1002,\"ops\"\n")
	start := func(id string) *serveProcess {
		return startServeProcess(t, pki.roots, "--etcd-endpoints", e.endpoint, "--prefix", e.prefix,
			"serve", "--mesos-master", m.URL(), "--identity", id, "--http", "127.0.0.1:0", "--lease-ttl", "2s",
			"--api-listen", "127.0.0.1:0", "--api-cert", pki.serverCert, "--api-key", pki.serverKey,
			"--api-client-ca", pki.clientCA, "--api-token-file", tokens)
	}
	leader := start("replica-a")
	waitUntil(t, 30*time.Second, "replica-a to lead", func() bool { return leader.leading(t) == 1 })
	standby := start("replica-b")
	if standby.leading(t) != 0 {
		t.Fatalf("replica-b leads too:\n%s", standby.out)
	}

	for _, r := range []*serveProcess{leader, standby} {
		// Serving (it starts in the background): any answer, even a 401.
		waitUntil(t, 30*time.Second, "the API of "+r.url, func() bool { return r.status(t, nil, "") != 0 })
		for _, c := range []struct {
			what  string
			cert  *tls.Certificate
			token string
			want  int
		}{
			{"a client certificate of the client CA", pki.alice, "", http.StatusOK},
			{"a listed token", nil, "t0ken-of-bob", http.StatusOK},
			{"no credentials", nil, "", http.StatusUnauthorized},
			{"a client certificate of another CA", pki.mallory, "", http.StatusUnauthorized},
			{"a wrong token", nil, "t0ken-of-eve", http.StatusUnauthorized},
		} {
			if got := r.status(t, c.cert, c.token); got != c.want {
				t.Errorf("%s, %s: %d, want %d", r.url, c.what, got, c.want)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Written through the standby, served by the leader, run by its controller.
	made := standby.create(t, pki.alice, "ha-api")
	got := leader.cluster(t, "ha-api")
	if got.UID != made.UID || got.Generation != 1 || *got.Spec.Replicas != 1 {
		t.Fatalf("the leader's API serves uid %s generation %d, the standby created uid %s", got.UID, got.Generation, made.UID)
	}
	waitUntil(t, 60*time.Second, "ha-api ready, read through the standby", func() bool {
		c := standby.cluster(t, "ha-api")
		return c.Status.ReadyReplicas == 1 && c.Status.ObservedGeneration == 1
	})

	standby.stop(t)
	leader.stop(t)
}

// testPKI is a serving CA and certificate (for 127.0.0.1), a client CA with
// alice's client certificate, and mallory's from a CA of her own.
type testPKI struct {
	roots                           *x509.CertPool
	serverCert, serverKey, clientCA string
	alice, mallory                  *tls.Certificate
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	servingCA, servingCAKey := newTestCA(t, "serving-ca")
	clientCA, clientCAKey := newTestCA(t, "client-ca")
	otherCA, otherCAKey := newTestCA(t, "other-ca")
	p := &testPKI{roots: x509.NewCertPool()}
	p.roots.AddCert(servingCA)
	server := issueTestCert(t, servingCA, servingCAKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "converge"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	client := &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	client.Subject = pkix.Name{CommonName: "alice", Organization: []string{"ops"}}
	alice := issueTestCert(t, clientCA, clientCAKey, client)
	client.Subject = pkix.Name{CommonName: "mallory", Organization: []string{"ops"}}
	mallory := issueTestCert(t, otherCA, otherCAKey, client)
	p.alice, p.mallory = &alice, &mallory

	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	p.serverCert = write("serving.pem", "CERTIFICATE", server.Certificate[0])
	p.serverKey = write("serving-key.pem", "PRIVATE KEY", keyDER)
	p.clientCA = write("client-ca.pem", "CERTIFICATE", clientCA.Raw)
	return p
}

func newTestCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// issueTestCert signs tmpl (subject, names, usages) with ca for a new key.
func issueTestCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveProcess is a `converge serve` process, its Kubernetes API's URL and
// its metrics' address.
type serveProcess struct {
	cmd         *exec.Cmd
	out, errOut *syncBuffer
	done        chan struct{} // closed when it exited, with err
	err         error
	url         string // https://127.0.0.1:PORT of its Kubernetes API
	metrics     string // http://127.0.0.1:PORT/metrics
	roots       *x509.CertPool
}

var (
	apiLine     = regexp.MustCompile(`kubernetes API (https://\S+)`)
	metricsLine = regexp.MustCompile(`metrics (http://\S+/metrics)`)
)

// startServeProcess runs the converge binary with args (global flags, then
// serve and its flags) until it campaigns; the test's end interrupts it.
func startServeProcess(t *testing.T, roots *x509.CertPool, args ...string) *serveProcess {
	t.Helper()
	bin := buildConverge(t)
	p := &serveProcess{out: &syncBuffer{}, errOut: &syncBuffer{}, done: make(chan struct{}), roots: roots}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default: // the test failed before stopping it
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(p.out.String(), "campaigning") {
		select {
		case <-p.done:
			t.Fatalf("converge serve exited (%v):\n%s%s", p.err, p.out, p.errOut)
		case <-deadline:
			t.Fatalf("converge serve did not campaign within 60s:\n%s%s", p.out, p.errOut)
		case <-time.After(20 * time.Millisecond):
		}
	}
	api, metrics := apiLine.FindStringSubmatch(p.out.String()), metricsLine.FindStringSubmatch(p.out.String())
	if api == nil || metrics == nil {
		t.Fatalf("converge serve printed no API or metrics address:\n%s", p.out)
	}
	p.url, p.metrics = api[1], metrics[1]
	return p
}

// leading is its converge_leader gauge: 1 while it leads.
func (p *serveProcess) leading(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^converge_leader (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no converge_leader in %s:\n%s", p.metrics, b)
	}
	return int(m[1][0] - '0')
}

// do sends one request to its API as cert (a client certificate, sent
// whatever CAs the server asks for) and/or with a bearer token.
func (p *serveProcess) do(t *testing.T, cert *tls.Certificate, token, method, path string, body []byte) (int, []byte) {
	t.Helper()
	tc := &tls.Config{RootCAs: p.roots}
	if cert != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, p.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error()) // not serving yet: callers poll
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

const clustersPath = "/apis/converge.io/v1alpha1/namespaces/default/clusters"

func (p *serveProcess) status(t *testing.T, cert *tls.Certificate, token string) int {
	t.Helper()
	code, _ := p.do(t, cert, token, http.MethodGet, clustersPath, nil)
	return code
}

// create POSTs a one-replica cluster as cert.
func (p *serveProcess) create(t *testing.T, cert *tls.Certificate, name string) *v1alpha1.Cluster {
	t.Helper()
	body := fmt.Sprintf(`{"apiVersion":"converge.io/v1alpha1","kind":"Cluster","metadata":{"name":%q},
"spec":{"replicas":1,"task":{"command":"sleep 1000","resources":{"cpus":"100m","mem":"64Mi"}}}}`, name)
	code, b := p.do(t, cert, "", http.MethodPost, clustersPath, []byte(body))
	return p.decode(t, "create "+name, code, http.StatusCreated, b)
}

// cluster GETs a cluster with the listed token.
func (p *serveProcess) cluster(t *testing.T, name string) *v1alpha1.Cluster {
	t.Helper()
	code, b := p.do(t, nil, "t0ken-of-bob", http.MethodGet, clustersPath+"/"+name, nil)
	return p.decode(t, "get "+name, code, http.StatusOK, b)
}

// decode fails the test unless the answer to what has code want, and
// returns the cluster it carries.
func (p *serveProcess) decode(t *testing.T, what string, code, want int, b []byte) *v1alpha1.Cluster {
	t.Helper()
	if code != want {
		t.Fatalf("%s through %s: %d %s", what, p.url, code, b)
	}
	c := &v1alpha1.Cluster{}
	if err := json.Unmarshal(b, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// stop interrupts it, as Ctrl-C or systemd does, and waits until it exits 0.
func (p *serveProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil || !strings.Contains(p.out.String(), "converge serve stopped") {
			t.Fatalf("converge serve exited (%v):\n%s%s", p.err, p.out, p.errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("converge serve did not stop within 30s:\n%s%s", p.out, p.errOut)
	}
}
