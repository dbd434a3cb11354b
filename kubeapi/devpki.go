package kubeapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// DevUser is the user of the client certificate converge dev writes.
const DevUser = "converge-admin"

// DevPKI is what converge dev serves the API with: its own certificate
// authority, a serving certificate for the listen address and a client
// certificate for DevUser, all under Dir.
type DevPKI struct {
	Dir                           string
	CAFile                        string // signs the serving and the client certificate
	CertFile, KeyFile             string // serving
	ClientCertFile, ClientKeyFile string
}

// EnsureDevPKI creates (or reuses, so that a kubeconfig written before stays
// good) the CA and the client certificate in dir, and issues a serving
// certificate for host (an IP or a name), localhost and 127.0.0.1.
func EnsureDevPKI(dir, host string) (DevPKI, error) {
	p := DevPKI{
		Dir: dir, CAFile: filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "apiserver.crt"), KeyFile: filepath.Join(dir, "apiserver.key"),
		ClientCertFile: filepath.Join(dir, "admin.crt"), ClientKeyFile: filepath.Join(dir, "admin.key"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, fmt.Errorf("api certificates: %w", err)
	}
	caKeyFile := filepath.Join(dir, "ca.key")
	ca, caKey, fresh, err := ensureCA(p.CAFile, caKeyFile)
	if err != nil {
		return p, err
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "converge-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		serving.IPAddresses = append(serving.IPAddresses, ip)
	} else if host != "" {
		serving.DNSNames = append(serving.DNSNames, host)
	}
	if err := issue(serving, ca, caKey, p.CertFile, p.KeyFile); err != nil {
		return p, err
	}
	if _, err := os.Stat(p.ClientCertFile); fresh || errors.Is(err, os.ErrNotExist) {
		client := &x509.Certificate{
			Subject:     pkix.Name{CommonName: DevUser, Organization: []string{"system:masters"}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if err := issue(client, ca, caKey, p.ClientCertFile, p.ClientKeyFile); err != nil {
			return p, err
		}
	}
	return p, nil
}

// ensureCA loads the CA, or makes one (fresh is then true).
func ensureCA(certFile, keyFile string) (*x509.Certificate, crypto.Signer, bool, error) {
	certs, cerr := cert.CertsFromFile(certFile)
	key, kerr := keyutil.PrivateKeyFromFile(keyFile)
	if cerr == nil && kerr == nil {
		signer, ok := key.(crypto.Signer)
		if ok && len(certs) > 0 {
			return certs[0], signer, false, nil
		}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("api CA key: %w", err)
	}
	ca, err := cert.NewSelfSignedCACert(cert.Config{CommonName: "converge-dev-ca"}, k)
	if err != nil {
		return nil, nil, false, fmt.Errorf("api CA: %w", err)
	}
	if err := writePEM(certFile, "CERTIFICATE", ca.Raw, 0o644); err != nil {
		return nil, nil, false, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, false, fmt.Errorf("api CA key: %w", err)
	}
	if err := writePEM(keyFile, keyutil.ECPrivateKeyBlockType, der, 0o600); err != nil {
		return nil, nil, false, err
	}
	return ca, k, true, nil
}

// issue signs tmpl with the CA for a year and writes it and its new key.
func issue(tmpl, ca *x509.Certificate, caKey crypto.Signer, certFile, keyFile string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("key for %s: %w", certFile, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
	if err != nil {
		return fmt.Errorf("sign %s: %w", certFile, err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	if err := writePEM(keyFile, keyutil.ECPrivateKeyBlockType, kder, 0o600); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Kubeconfig is a kubeconfig for server (https://host:port) with the CA
// and the client credentials embedded, so the file works from anywhere.
func (p DevPKI) Kubeconfig(server string) ([]byte, error) {
	ca, err := os.ReadFile(p.CAFile)
	if err != nil {
		return nil, err
	}
	crt, err := os.ReadFile(p.ClientCertFile)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(p.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	const name = "converge-dev"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[DevUser] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: DevUser, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}
