package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tlsFiles are the PEM files of a test certificate authority, a server
// certificate for 127.0.0.1 and a client certificate, all signed by the CA.
type tlsFiles struct {
	caCert, serverCert, serverKey, clientCert, clientKey string
}

// StartTLS is Start with client TLS: the server presents a certificate for
// 127.0.0.1 signed by a CA generated for this test, and requires client
// certificates signed by the same CA. Client() and NewClient() are
// configured with a valid client certificate; CAFile, ClientCertFile and
// ClientKeyFile give the PEM files for code that takes paths (CLI flags).
func StartTLS(t testing.TB) *Server {
	t.Helper()
	tf, err := writeTLSFiles(t.TempDir())
	if err != nil {
		t.Fatalf("etcdtest: generate certificates: %v", err)
	}
	return start(t, tf)
}

// CAFile is the PEM file of the CA that signed the server and client
// certificates ("" for a plain server).
func (s *Server) CAFile() string { return s.tlsField(func(f *tlsFiles) string { return f.caCert }) }

// ClientCertFile is the PEM client certificate ("" for a plain server).
func (s *Server) ClientCertFile() string {
	return s.tlsField(func(f *tlsFiles) string { return f.clientCert })
}

// ClientKeyFile is the PEM key of the client certificate ("" for a plain server).
func (s *Server) ClientKeyFile() string {
	return s.tlsField(func(f *tlsFiles) string { return f.clientKey })
}

func (s *Server) tlsField(get func(*tlsFiles) string) string {
	if s.tls == nil {
		return ""
	}
	return get(s.tls)
}

// ClientTLS returns a client TLS configuration trusting the test CA and
// presenting the client certificate, or nil for a plain server.
func (s *Server) ClientTLS() (*tls.Config, error) {
	if s.tls == nil {
		return nil, nil
	}
	return s.tls.ClientConfig()
}

// ClientConfig builds a client tls.Config from the files.
func (f *tlsFiles) ClientConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(f.caCert)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", f.caCert)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func writeTLSFiles(dir string) (*tlsFiles, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcdtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	f := &tlsFiles{
		caCert:     filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"),
		serverKey:  filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"),
		clientKey:  filepath.Join(dir, "client-key.pem"),
	}
	if err := writePEM(f.caCert, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyPath, "EC PRIVATE KEY", kder)
	}
	if err := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, f.serverCert, f.serverKey); err != nil {
		return nil, err
	}
	if err := leaf(3, "converge", x509.ExtKeyUsageClientAuth, f.clientCert, f.clientKey); err != nil {
		return nil, err
	}
	return f, nil
}

func writePEM(path, typ string, der []byte) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
