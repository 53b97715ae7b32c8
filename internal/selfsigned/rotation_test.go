package selfsigned

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"testing"
	"time"
)

// The API server verifies the serving certificate against the bundle the webhook configurations
// hold, which is the Secret's bundle only once the keeper has injected it. These tests check
// every certificate a replica may serve against both bundles.

var shortConfig = Config{Hosts: testConfig.Hosts, CAValidity: 45 * time.Second, CertValidity: 15 * time.Second}

// verifies reports why the serving certificate of data does not verify against bundle for host,
// as the API server verifies it, or nil.
func verifies(t *testing.T, data map[string][]byte, bundle []byte, host string, now time.Time) error {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return fmt.Errorf("no certificate in the bundle")
	}
	_, err := certOf(t, data, KeyServingCert).Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: now})
	return err
}

// verifier verifies as verifies does, for a timeline of thousands of passes that meets few pairs
// of a serving certificate and a bundle: it keeps the chains of each pair, which depend on the
// time only through their certificates' validity periods.
type verifier struct {
	t      *testing.T
	host   string
	chains map[string][][]*x509.Certificate
}

func (v *verifier) verify(data map[string][]byte, bundle []byte, now time.Time) error {
	v.t.Helper()
	key := string(data[KeyServingCert]) + string(bundle)
	chains, ok := v.chains[key]
	if !ok {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(bundle) {
			return fmt.Errorf("no certificate in the bundle")
		}
		var err error
		chains, err = certOf(v.t, data, KeyServingCert).Verify(x509.VerifyOptions{Roots: pool, DNSName: v.host, CurrentTime: now})
		if err != nil {
			return err
		}
		v.chains[key] = chains
	}
	for _, chain := range chains {
		if !slices.ContainsFunc(chain, func(c *x509.Certificate) bool { return now.Before(c.NotBefore) || now.After(c.NotAfter) }) {
			return nil
		}
	}
	return fmt.Errorf("no chain valid at %s", now)
}

// TestCARenewalIssuesFromTheTrustedCA: when the CA's renewal falls in the same pass as a serving
// certificate that has to be issued, that certificate comes from the old CA, which the
// configurations trust; the new CA signs only once they trust the new bundle.
func TestCARenewalIssuesFromTheTrustedCA(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	// At t0+30s the CA of 45s has less than a third left. A serving certificate issued at t0+20s
	// has less than a third of its 15s left then; the one issued at t0 has expired.
	freshAt := func(t *testing.T, at time.Time) map[string][]byte {
		t.Helper()
		data, _, err := Next(nil, shortConfig, t0, false)
		if err != nil {
			t.Fatal(err)
		}
		if at.After(t0) {
			if data, _, err = Next(data, shortConfig, at, true); err != nil {
				t.Fatal(err)
			}
		}
		return data
	}
	without := func(data map[string][]byte, keys ...string) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range data {
			out[k] = v
		}
		for _, k := range keys {
			delete(out, k)
		}
		return out
	}
	moved := shortConfig
	moved.Hosts = []string{"iss-webhook.platform.svc"}

	for _, tc := range []struct {
		name string
		data func(t *testing.T) map[string][]byte
		cfg  Config
		// late delays the pass beyond t0+30s, as when the keeper was down.
		late time.Duration
	}{
		{"serving certificate due for renewal", func(t *testing.T) map[string][]byte { return freshAt(t, t0.Add(20*time.Second)) }, shortConfig, 0},
		{"serving certificate expired", func(t *testing.T) map[string][]byte { return freshAt(t, t0) }, shortConfig, 0},
		{"serving certificate missing", func(t *testing.T) map[string][]byte {
			return without(freshAt(t, t0.Add(20*time.Second)), KeyServingCert, KeyServingKey)
		}, shortConfig, 0},
		{"serving key missing", func(t *testing.T) map[string][]byte {
			return without(freshAt(t, t0.Add(20*time.Second)), KeyServingKey)
		}, shortConfig, 0},
		{"serving key of another certificate", func(t *testing.T) map[string][]byte {
			data := without(freshAt(t, t0.Add(20*time.Second)))
			data[KeyServingKey] = data[KeyCAKey]
			return data
		}, shortConfig, 0},
		{"serving certificate unparsable", func(t *testing.T) map[string][]byte {
			data := without(freshAt(t, t0.Add(20*time.Second)))
			data[KeyServingCert] = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
			return data
		}, shortConfig, 0},
		{"hosts changed", func(t *testing.T) map[string][]byte { return freshAt(t, t0.Add(20*time.Second)) }, moved, 0},
		// The old CA has 10s left, less than the serving certificate's 15s.
		{"keeper late", func(t *testing.T) map[string][]byte { return freshAt(t, t0.Add(25*time.Second)) }, shortConfig, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data(t)
			host := tc.cfg.Hosts[0]
			oldCA := certOf(t, data, KeyCACert)
			at := t0.Add(30*time.Second + tc.late)

			rotated, changed, err := Next(data, tc.cfg, at, true)
			if err != nil || !changed {
				t.Fatalf("changed %v, %v", changed, err)
			}
			newCA := certOf(t, rotated, KeyCACert)
			if bundle := bundleOf(t, rotated); newCA.Equal(oldCA) || len(bundle) != 2 || !bundle[0].Equal(newCA) || !bundle[1].Equal(oldCA) {
				t.Fatalf("no CA rotation: new CA %v, %d CAs in the bundle", !newCA.Equal(oldCA), len(bundle))
			}
			serving := certOf(t, rotated, KeyServingCert)
			if serving.CheckSignatureFrom(oldCA) != nil {
				t.Error("the serving certificate is not from the old CA")
			}
			if serving.NotAfter.After(oldCA.NotAfter) {
				t.Errorf("the serving certificate outlives its CA: %s after %s", serving.NotAfter, oldCA.NotAfter)
			}
			if err := verifies(t, rotated, data[KeyCABundle], host, at); err != nil {
				t.Errorf("the bundle the configurations trust does not verify the serving certificate: %v", err)
			}
			if err := verifies(t, rotated, rotated[KeyCABundle], host, at); err != nil {
				t.Errorf("the new bundle does not verify the serving certificate: %v", err)
			}

			// Until the configurations trust the new bundle, the serving certificate stays.
			at = at.Add(time.Second)
			if _, changed, err := Next(rotated, tc.cfg, at, false); err != nil || changed {
				t.Errorf("not trusted yet: changed %v, %v", changed, err)
			}
			// Then the new CA signs.
			reissued, changed, err := Next(rotated, tc.cfg, at, true)
			if err != nil || !changed {
				t.Fatalf("trusted: changed %v, %v", changed, err)
			}
			if certOf(t, reissued, KeyServingCert).CheckSignatureFrom(newCA) != nil {
				t.Error("trusted: the serving certificate is not from the new CA")
			}
			if !bytes.Equal(reissued[KeyCABundle], rotated[KeyCABundle]) {
				t.Error("trusted: the bundle changed with the reissue")
			}
			if err := verifies(t, reissued, rotated[KeyCABundle], host, at); err != nil {
				t.Errorf("trusted: %v", err)
			}
		})
	}
}

// TestUntrustedNewCA: after the pass that created a new CA, until the configurations trust it,
// the serving certificate from the old CA serves on, even when due for renewal; only when it can
// no longer serve does the new CA, the only one whose key is kept, issue.
func TestUntrustedNewCA(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	// A serving certificate issued at t0+21s, the CA replaced at t0+29s: the certificate is due
	// for renewal at t0+30.5s and expires at t0+36s, before the old CA.
	data, _, err := Next(nil, shortConfig, t0, false)
	if err == nil {
		data, _, err = Next(data, shortConfig, t0.Add(21*time.Second), true)
	}
	if err != nil {
		t.Fatal(err)
	}
	oldCA := certOf(t, data, KeyCACert)
	rotated, _, err := Next(data, shortConfig, t0.Add(29*time.Second), true)
	if err != nil || len(bundleOf(t, rotated)) != 2 || !bytes.Equal(rotated[KeyServingCert], data[KeyServingCert]) {
		t.Fatalf("no CA rotation with the serving certificate kept: %v", err)
	}
	newCA := certOf(t, rotated, KeyCACert)
	serving := certOf(t, rotated, KeyServingCert)
	moved := shortConfig
	moved.Hosts = []string{"iss-webhook.platform.svc"}
	for _, tc := range []struct {
		name    string
		cfg     Config
		at      time.Time
		reissue bool
	}{
		{"valid", shortConfig, t0.Add(30 * time.Second), false},
		{"due for renewal", shortConfig, serving.NotAfter.Add(-time.Second), false},
		{"expired", shortConfig, serving.NotAfter, true},
		{"hosts changed", moved, t0.Add(30 * time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, changed, err := Next(rotated, tc.cfg, tc.at, false)
			if err != nil {
				t.Fatal(err)
			}
			if reissued := !bytes.Equal(next[KeyServingCert], rotated[KeyServingCert]); reissued != tc.reissue {
				t.Fatalf("reissued %v, want %v", reissued, tc.reissue)
			}
			want := oldCA
			if tc.reissue {
				want = newCA
			}
			if certOf(t, next, KeyServingCert).CheckSignatureFrom(want) != nil {
				t.Errorf("the serving certificate is not from the %s CA", map[bool]string{false: "old", true: "new"}[tc.reissue])
			}
			if !bytes.Equal(next[KeyCABundle], rotated[KeyCABundle]) || changed != tc.reissue {
				t.Errorf("changed %v; the bundle changed %v", changed, !bytes.Equal(next[KeyCABundle], rotated[KeyCABundle]))
			}
		})
	}
}

// TestServingCertificateAlwaysVerifies runs the authority over several CA lifetimes, pass by
// pass, with the keeper's injection after each write, and checks the invariant the rotation
// exists for: whatever a replica serves verifies against what the configurations trust at that
// moment, and against the bundle they are about to trust.
func TestServingCertificateAlwaysVerifies(t *testing.T) {
	sameTime := 0
	for _, tc := range []struct {
		name string
		cfg  Config
		step time.Duration
		// lag is how many passes the injection of a new bundle fails for; 0 is the keeper that
		// injects right after writing, so that the next pass finds the bundle trusted.
		lag int
	}{
		{"45s/15s, every second", shortConfig, time.Second, 0},
		{"45s/15s, every 1.3s", shortConfig, 1300 * time.Millisecond, 0},
		{"45s/15s, every 2s", shortConfig, 2 * time.Second, 0},
		{"45s/15s, every 3s", shortConfig, 3 * time.Second, 0},
		{"45s/15s, every 4s", shortConfig, 4 * time.Second, 0},
		{"45s/15s, every 5s", shortConfig, 5 * time.Second, 0},
		{"45s/15s, every 10s", shortConfig, 10 * time.Second, 0},
		{"45s/15s, every second, injection 2 passes late", shortConfig, time.Second, 2},
		{"45s/15s, every second, injection 4 passes late", shortConfig, time.Second, 4},
		{"90m/30m, every second", testConfig, time.Second, 0},
		{"90m/30m, every minute", testConfig, time.Minute, 0},
		{"90m/30m, every 7 minutes", testConfig, 7 * time.Minute, 0},
		{"90m/30m, every minute, injection 5 passes late", testConfig, time.Minute, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.cfg.CAValidity/tc.step > 1000 {
				t.Skip("many passes")
			}
			start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			data, _, err := Next(nil, tc.cfg, start, false)
			if err != nil {
				t.Fatal(err)
			}
			v := &verifier{t: t, host: tc.cfg.Hosts[0], chains: map[string][][]*x509.Certificate{}}
			// injected is what the configurations trust; pending is a bundle that waits for its
			// injection, for age passes.
			injected, pending, age := data[KeyCABundle], []byte(nil), 0
			var rotations, settled, both int
			end := start.Add(4 * tc.cfg.CAValidity)
			for now := start.Add(tc.step); now.Before(end); now = now.Add(tc.step) {
				trusted := bytes.Equal(injected, data[KeyCABundle])
				next, changed, err := Next(data, tc.cfg, now, trusted)
				if err != nil {
					t.Fatalf("%s: %v", now.Sub(start), err)
				}
				if !changed != sameData(data, next) {
					t.Fatalf("%s: changed %v does not say whether the data changed", now.Sub(start), changed)
				}
				newCA := !bytes.Equal(next[KeyCACert], data[KeyCACert])
				newServing := !bytes.Equal(next[KeyServingCert], data[KeyServingCert])
				if newCA {
					rotations++
					if newServing {
						both++
					}
				}
				if cas(data) == 2 && cas(next) == 1 {
					settled++
				}
				if err := v.verify(next, injected, now); err != nil {
					t.Fatalf("%s (trusted %v, new CA %v, new serving %v): the configurations' bundle does not verify the serving certificate: %v",
						now.Sub(start), trusted, newCA, newServing, err)
				}
				if err := v.verify(next, next[KeyCABundle], now); err != nil {
					t.Fatalf("%s: the Secret's bundle does not verify the serving certificate: %v", now.Sub(start), err)
				}
				// A replica that has not read the Secret yet still serves the previous
				// certificate, while the configurations may already trust the new bundle.
				if prev := certOf(t, data, KeyServingCert); now.Before(prev.NotAfter) {
					if err := v.verify(data, next[KeyCABundle], now); err != nil {
						t.Fatalf("%s: the Secret's bundle does not verify the previous serving certificate: %v", now.Sub(start), err)
					}
				}
				data = next
				if !bytes.Equal(data[KeyCABundle], injected) {
					if !bytes.Equal(data[KeyCABundle], pending) {
						pending, age = data[KeyCABundle], 0
					}
					if age++; age > tc.lag {
						injected = pending
					}
				}
			}
			// Four CA lifetimes: three rotations at least, each settled.
			if rotations < 3 || settled < rotations-1 {
				t.Errorf("%d CA rotations, %d settled", rotations, settled)
			}
			t.Logf("%d CA rotations, %d with a serving certificate issued in the same pass, %d settled", rotations, both, settled)
			sameTime += both
		})
	}
	if sameTime == 0 {
		t.Error("no timeline issued a serving certificate in the pass that created a CA")
	}
}

// cas counts the CAs of data's bundle.
func cas(data map[string][]byte) int {
	return bytes.Count(data[KeyCABundle], []byte("-----BEGIN CERTIFICATE-----"))
}
