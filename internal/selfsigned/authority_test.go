package selfsigned

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

// The authority's decisions, pass by pass, through a whole CA rotation: the API server must
// trust every serving certificate that any replica may serve at any moment.

var testConfig = Config{Hosts: []string{"iss-webhook.iss-system.svc", "127.0.0.1"}, CAValidity: 90 * time.Minute, CertValidity: 30 * time.Minute}

func certOf(t *testing.T, data map[string][]byte, key string) *x509.Certificate {
	t.Helper()
	certs, err := ParseBundle(data[key])
	if err != nil || len(certs) != 1 {
		t.Fatalf("%s: %d certificates, %v", key, len(certs), err)
	}
	return certs[0]
}

func bundleOf(t *testing.T, data map[string][]byte) []*x509.Certificate {
	t.Helper()
	certs, err := ParseBundle(data[KeyCABundle])
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// trustedBy tells whether the serving certificate verifies against the bundle, as the API
// server verifies it.
func trustedBy(t *testing.T, data map[string][]byte, bundle []byte, now time.Time) bool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return false
	}
	_, err := certOf(t, data, KeyServingCert).Verify(x509.VerifyOptions{Roots: pool, DNSName: testConfig.Hosts[0], CurrentTime: now})
	return err == nil
}

func TestBootstrapAndSteadyState(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	data, changed, err := Next(nil, testConfig, now, false)
	if err != nil || !changed {
		t.Fatalf("bootstrap: changed %v, %v", changed, err)
	}
	serving := certOf(t, data, KeyServingCert)
	if len(bundleOf(t, data)) != 1 || !trustedBy(t, data, data[KeyCABundle], now) {
		t.Fatal("the bootstrap bundle does not trust the serving certificate")
	}
	if len(serving.DNSNames) != 1 || len(serving.IPAddresses) != 1 || serving.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("hosts: %v %v", serving.DNSNames, serving.IPAddresses)
	}
	for _, trusted := range []bool{false, true} {
		if _, changed, err := Next(data, testConfig, now.Add(5*time.Minute), trusted); err != nil || changed {
			t.Errorf("steady state (trusted %v) changed: %v, %v", trusted, changed, err)
		}
	}
}

func TestServingCertificateRenewal(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	data, _, _ := Next(nil, testConfig, now, false)
	later := now.Add(21 * time.Minute) // less than a third of 30m left
	next, changed, err := Next(data, testConfig, later, true)
	if err != nil || !changed {
		t.Fatalf("renewal: changed %v, %v", changed, err)
	}
	if string(next[KeyCACert]) != string(data[KeyCACert]) || string(next[KeyCABundle]) != string(data[KeyCABundle]) {
		t.Error("a serving renewal changed the CA or the bundle")
	}
	if certOf(t, next, KeyServingCert).Equal(certOf(t, data, KeyServingCert)) || !trustedBy(t, next, next[KeyCABundle], later) {
		t.Error("the serving certificate was not renewed under the same CA")
	}
}

func TestCARotationKeepsTrust(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	data, _, _ := Next(nil, testConfig, now, false)
	// Keep the serving certificate fresh up to the CA's rotation, as the keeper would.
	at := now.Add(25 * time.Minute)
	data, _, _ = Next(data, testConfig, at, true)
	at = now.Add(50 * time.Minute)
	data, _, _ = Next(data, testConfig, at, true)
	oldCA := certOf(t, data, KeyCACert)

	// A third of the CA's 90m left: a new CA, trusted beside the old one; the serving
	// certificate stays, since the configurations do not trust the new bundle yet.
	at = now.Add(61 * time.Minute)
	rotated, changed, err := Next(data, testConfig, at, true)
	if err != nil || !changed {
		t.Fatalf("CA rotation: changed %v, %v", changed, err)
	}
	bundle := bundleOf(t, rotated)
	if len(bundle) != 2 || bundle[0].Equal(oldCA) || !bundle[1].Equal(oldCA) {
		t.Fatalf("bundle after rotation: %d certificates", len(bundle))
	}
	if string(rotated[KeyServingCert]) != string(data[KeyServingCert]) {
		t.Error("the serving certificate changed before the configurations trusted the new CA")
	}
	// Whatever a replica serves now, the old bundle or the new one trusts it.
	if !trustedBy(t, rotated, rotated[KeyCABundle], at) || !trustedBy(t, rotated, data[KeyCABundle], at) {
		t.Error("the rotation left the serving certificate untrusted")
	}
	// Until the configurations trust the new bundle, nothing more happens.
	if _, changed, _ := Next(rotated, testConfig, at.Add(time.Second), false); changed {
		t.Error("changed before the new bundle was trusted")
	}

	// Trusted: a serving certificate from the new CA; the old CA stays for the settling time.
	at = at.Add(2 * time.Second)
	reissued, changed, err := Next(rotated, testConfig, at, true)
	if err != nil || !changed {
		t.Fatalf("reissue: changed %v, %v", changed, err)
	}
	if certOf(t, reissued, KeyServingCert).CheckSignatureFrom(certOf(t, reissued, KeyCACert)) != nil {
		t.Error("the serving certificate is not from the new CA")
	}
	if len(bundleOf(t, reissued)) != 2 || !trustedBy(t, reissued, rotated[KeyCABundle], at) {
		t.Error("the old CA left the bundle with the reissue")
	}
	if _, changed, _ := Next(reissued, testConfig, at.Add(time.Minute), true); changed {
		t.Error("the old CA left before the settling time")
	}

	// After it, the old CA goes.
	at = at.Add(time.Minute + testConfig.settle())
	settled, changed, err := Next(reissued, testConfig, at, true)
	if err != nil || !changed || len(bundleOf(t, settled)) != 1 || !trustedBy(t, settled, settled[KeyCABundle], at) {
		t.Fatalf("settled: changed %v, %d CAs, %v", changed, len(bundleOf(t, settled)), err)
	}
}

func TestStartsOverFromUnusableState(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	data, _, _ := Next(nil, testConfig, now, false)
	for name, broken := range map[string]map[string][]byte{
		"expired CA":            data,
		"a key of another cert": {KeyCACert: data[KeyCACert], KeyCAKey: data[KeyServingKey]},
		"garbage":               {KeyCACert: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
	} {
		at := now
		if name == "expired CA" {
			at = now.Add(2 * time.Hour)
		}
		next, changed, err := Next(broken, testConfig, at, true)
		if err != nil || !changed || !trustedBy(t, next, next[KeyCABundle], at) {
			t.Errorf("%s: changed %v, %v", name, changed, err)
		}
	}
}

func TestNewHostsReissue(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	data, _, _ := Next(nil, testConfig, now, false)
	moved := testConfig
	moved.Hosts = []string{"iss-webhook.platform.svc"}
	next, changed, err := Next(data, moved, now.Add(time.Minute), true)
	if err != nil || !changed || certOf(t, next, KeyServingCert).DNSNames[0] != "iss-webhook.platform.svc" {
		t.Fatalf("changed %v, %v", changed, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{testConfig, ""},
		{Config{CAValidity: time.Hour, CertValidity: time.Minute}, "at least one DNS name"},
		{Config{Hosts: []string{"x"}, CAValidity: time.Hour, CertValidity: 30 * time.Minute}, "at most a third"},
		{Config{Hosts: []string{"x"}, CAValidity: time.Hour}, "positive"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
