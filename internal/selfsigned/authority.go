// Package selfsigned is the webhook's certificate authority for clusters without cert-manager:
// it keeps a CA and a serving certificate in a Secret, puts the CA bundle into the webhook
// configurations, and rotates both before they expire. A new CA is trusted beside the old one
// first, and the old one issues whatever serving certificate is due until the configurations
// trust the new bundle; then the new CA reissues it, and the old one stays trusted until that
// certificate is served everywhere. The elected leader's Keeper alone renews and rotates; a
// starting replica writes the Secret only when it holds no serving certificate it could serve.
// Writes go through the API server with resourceVersion preconditions, so that replicas agree on
// one content whoever writes.
package selfsigned

import (
	"bytes"
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
	"slices"
	"time"
)

// The keys of the Secret.
const (
	// KeyServingCert and KeyServingKey are the serving certificate and key, as cert-manager and
	// kubernetes.io/tls Secrets name them.
	KeyServingCert = "tls.crt"
	KeyServingKey  = "tls.key"
	// KeyCACert and KeyCAKey are the current CA.
	KeyCACert = "ca.crt"
	KeyCAKey  = "ca.key"
	// KeyCABundle is what the API server trusts: the current CA, and during a rotation the
	// previous one.
	KeyCABundle = "ca-bundle.crt"
)

// Config says what the authority issues.
type Config struct {
	// Hosts are the DNS names and IP addresses of the serving certificate: the Service's names
	// in a cluster (iss-webhook.iss-system.svc).
	Hosts []string
	// CAValidity and CertValidity are the lifetimes of the CA and of the serving certificate.
	// Each is renewed when a third of it is left; CertValidity must be at most a third of
	// CAValidity, so that the serving certificate is reissued from a new CA while the old one
	// is still trusted.
	CAValidity, CertValidity time.Duration
}

// settle is how long the old CA stays trusted after the serving certificate from the new one was
// issued, for every replica to read it: a fifth of the certificate's validity, from 2s to 2m.
func (c Config) settle() time.Duration {
	return min(max(c.CertValidity/5, 2*time.Second), 2*time.Minute)
}

// Validate reports a configuration that cannot rotate safely.
func (c Config) Validate() error {
	switch {
	case len(c.Hosts) == 0:
		return errors.New("the serving certificate needs at least one DNS name or IP address")
	case c.CertValidity <= 0 || c.CAValidity <= 0:
		return errors.New("validities must be positive")
	case c.CertValidity*3 > c.CAValidity:
		return fmt.Errorf("the serving certificate's validity %s must be at most a third of the CA's %s, so that it is reissued while the old CA is still trusted", c.CertValidity, c.CAValidity)
	}
	return nil
}

// Next returns the Secret data the authority wants at now, given the current data, and whether
// it differs. trusted tells whether the webhook configurations already trust the data's CA
// bundle: a serving certificate from a new CA is issued only then, so that the API server never
// meets a certificate it does not trust. In the pass that creates a new CA, the configurations
// trust only the old one, so a serving certificate due then (renewal, expiry, new hosts) is
// issued from the old CA, and the new CA reissues it in a later pass, once it is trusted.
func Next(data map[string][]byte, cfg Config, now time.Time, trusted bool) (map[string][]byte, bool, error) {
	ca, caKey, caErr := parsePair(data[KeyCACert], data[KeyCAKey])
	if caErr != nil || !now.Before(ca.NotAfter) {
		// Bootstrap, or a CA that is unusable or gone: start over. The API server cannot reach
		// the webhook until the new bundle is injected, as it could not before.
		return fresh(cfg, now)
	}
	bundle := parseBundle(data[KeyCABundle], now)
	if !containsCert(bundle, ca) {
		bundle = append([]*x509.Certificate{ca}, bundle...)
	}
	out := map[string][]byte{KeyCACert: data[KeyCACert], KeyCAKey: data[KeyCAKey]}

	// issuer signs the serving certificate of this pass, if one is due: the current CA, or the
	// old one in the pass that replaces it.
	issuer, issuerKey, replacing := ca, caKey, false
	if renewDue(ca, now) && bundle[0].Equal(ca) && len(bundle) == 1 {
		// A new CA, trusted beside the old one. It signs from the next pass on, once the
		// configurations trust the new bundle; until then the old CA, which they trust, issues
		// whatever serving certificate is due.
		newCA, newKey, err := newCA(cfg.CAValidity, now)
		if err != nil {
			return nil, false, err
		}
		ca, caKey, replacing = newCA, newKey, true
		out[KeyCACert], out[KeyCAKey] = encodeCert(newCA), encodeKey(newKey)
		bundle = append([]*x509.Certificate{newCA}, bundle...)
		trusted = false
	}
	serving, servingKey, servingErr := parsePair(data[KeyServingCert], data[KeyServingKey])
	usable := servingErr == nil && now.Before(serving.NotAfter) && coversHosts(serving, cfg.Hosts)
	signedByCurrent := servingErr == nil && serving.CheckSignatureFrom(ca) == nil
	var reissue bool
	switch {
	case replacing, signedByCurrent:
		reissue = !usable || renewDue(serving, now)
	case trusted:
		// From the old CA, and the configurations trust the new one: the new one reissues.
		reissue = true
	default:
		// From the old CA, and the configurations may trust only that one: it serves on, even
		// when due for renewal, until they trust the new CA, as long as it is usable and its CA
		// still in the bundle. Only the current CA's key is kept, so that is the CA that issues
		// when it is not.
		reissue = !usable || !slices.ContainsFunc(bundle, func(c *x509.Certificate) bool { return serving.CheckSignatureFrom(c) == nil })
	}
	if reissue {
		cert, key, err := issue(issuer, issuerKey, cfg, now)
		if err != nil {
			return nil, false, err
		}
		out[KeyServingCert], out[KeyServingKey] = encodeCert(cert), encodeKey(key)
	} else {
		out[KeyServingCert], out[KeyServingKey] = encodeCert(serving), encodeKey(servingKey)
		// The old CA leaves the bundle once the serving certificate no longer needs it: signed
		// by the current CA, and the configurations trust that. Every replica must have read the
		// new serving certificate before the API server stops trusting the old one: the old CA
		// stays for a settling time after the issue.
		issued := serving.NotBefore.Add(backdate(cfg.CertValidity))
		if signedByCurrent && trusted && now.Sub(issued) >= cfg.settle() {
			bundle = bundle[:1]
		}
	}
	out[KeyCABundle] = encodeBundle(bundle)
	return out, !sameData(data, out), nil
}

// fresh returns a new CA and serving certificate.
func fresh(cfg Config, now time.Time) (map[string][]byte, bool, error) {
	ca, caKey, err := newCA(cfg.CAValidity, now)
	if err != nil {
		return nil, false, err
	}
	cert, key, err := issue(ca, caKey, cfg, now)
	if err != nil {
		return nil, false, err
	}
	return map[string][]byte{
		KeyCACert: encodeCert(ca), KeyCAKey: encodeKey(caKey), KeyCABundle: encodeCert(ca),
		KeyServingCert: encodeCert(cert), KeyServingKey: encodeKey(key),
	}, true, nil
}

// backdate is how far before its issue a certificate is valid, for clocks that are a little
// behind: a minute, or a tenth of a short validity.
func backdate(validity time.Duration) time.Duration {
	return min(time.Minute, validity/10)
}

// renewDue tells whether a third or less of a certificate's lifetime is left.
func renewDue(c *x509.Certificate, now time.Time) bool {
	return c.NotAfter.Sub(now) <= c.NotAfter.Sub(c.NotBefore)/3
}

func newCA(validity time.Duration, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("iss-webhook CA %s", now.UTC().Format(time.RFC3339))},
		NotBefore:    now.Add(-backdate(validity)), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func issue(ca *x509.Certificate, caKey crypto.Signer, cfg Config, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	// Never beyond the CA: an old CA that issues in the pass that replaces it may have less than
	// CertValidity left.
	notAfter := now.Add(cfg.CertValidity)
	if ca.NotAfter.Before(notAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cfg.Hosts[0]},
		NotBefore:    now.Add(-backdate(cfg.CertValidity)), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range cfg.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// coversHosts tells whether a certificate names exactly the configured hosts.
func coversHosts(c *x509.Certificate, hosts []string) bool {
	var have []string
	have = append(have, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	want := slices.Clone(hosts)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	certs, err := parseCerts(certPEM)
	if err != nil || len(certs) != 1 {
		return nil, nil, fmt.Errorf("want one certificate: %v", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, nil, errors.New("no PEM key")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		return nil, nil, errors.New("the key does not belong to the certificate")
	}
	return certs[0], key, nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs, nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
}

// parseBundle returns the CAs of a bundle that have not expired.
func parseBundle(data []byte, now time.Time) []*x509.Certificate {
	certs, _ := parseCerts(data)
	return slices.DeleteFunc(certs, func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	return slices.ContainsFunc(list, func(x *x509.Certificate) bool { return x.Equal(c) })
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func encodeBundle(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(encodeCert(c))
	}
	return b.Bytes()
}

func encodeKey(k crypto.Signer) []byte {
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		panic(err) // a key this package generated
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func sameData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// ParseBundle returns the certificates of a PEM bundle, for callers that compare bundles.
func ParseBundle(data []byte) ([]*x509.Certificate, error) { return parseCerts(data) }

// EncodeBundle returns certs as a PEM bundle, in their order.
func EncodeBundle(certs []*x509.Certificate) []byte { return encodeBundle(certs) }
