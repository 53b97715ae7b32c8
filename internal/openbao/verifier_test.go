package openbao

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iss-platform/iss-webhook/internal/openbao/openbaotest"
	"github.com/iss-platform/iss-webhook/policy"
)

const mount = "kv-dev"

// exists is Check of the current version, as a found/not found answer.
func exists(t *testing.T, v *Verifier, mount, path string) (bool, error) {
	t.Helper()
	a, err := v.Check(context.Background(), mount, path, 0)
	return a.State == policy.PathFound, err
}

// testVerifier returns a verifier of the test double, logging in with the Kubernetes auth method.
func testVerifier(t *testing.T, double *openbaotest.KVv2TestDouble, timeout time.Duration) *Verifier {
	t.Helper()
	jwt := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwt, []byte("a-service-account-jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultOpenBaoPolicy()
	cfg.Verify, cfg.Address, cfg.Timeout = true, double.Server.URL, timeout
	v, err := New(cfg, Credentials{ServiceAccountTokenFile: jwt}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifierAgainstTheTestDouble(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.test-token")
	defer double.Server.Close()
	double.Seed(mount, "artifacts/team-a/public/secrets/api-token")
	v := testVerifier(t, double, time.Second)

	t.Run("found, with or without a leading slash", func(t *testing.T) {
		for _, p := range []string{"artifacts/team-a/public/secrets/api-token", "/artifacts/team-a/public/secrets/api-token"} {
			if ok, err := exists(t, v, mount, p); !ok || err != nil {
				t.Fatalf("%s: %v, %v", p, ok, err)
			}
		}
		if n := double.Requests(mount, "artifacts/team-a/public/secrets/api-token"); n != 1 {
			t.Errorf("%d requests: the second check should come from the cache", n)
		}
		if double.Logins() != 1 {
			t.Errorf("%d Kubernetes auth logins, want 1", double.Logins())
		}
	})
	t.Run("missing", func(t *testing.T) {
		if ok, err := exists(t, v, mount, "artifacts/team-a/public/secrets/nope"); ok || err != nil {
			t.Fatalf("%v, %v", ok, err)
		}
		double.Seed(mount, "artifacts/team-a/public/secrets/nope")
		if ok, _ := exists(t, v, mount, "artifacts/team-a/public/secrets/nope"); ok {
			t.Error("a miss was not cached")
		}
		v.now = func() time.Time { return time.Now().Add(time.Minute) } // past MissTTL, within HitTTL
		defer func() { v.now = time.Now }()
		if ok, _ := exists(t, v, mount, "artifacts/team-a/public/secrets/nope"); !ok {
			t.Error("a miss outlived its TTL")
		}
	})
	t.Run("concurrent checks of one path share one request", func(t *testing.T) {
		double.SetDelay(100 * time.Millisecond)
		defer double.SetDelay(0)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := exists(t, v, mount, "artifacts/team-a/public/secrets/shared"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := double.Requests(mount, "artifacts/team-a/public/secrets/shared"); n != 1 {
			t.Errorf("%d requests for 20 concurrent checks", n)
		}
	})
}

func TestVerifierSlowAndDown(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.test-token")
	double.SetDelay(500 * time.Millisecond)
	slow := testVerifier(t, double, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := slow.Check(ctx, mount, "artifacts/team-a/public/secrets/x", 0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("slow: %v, want ErrUnavailable", err)
	}
	double.Server.Close()
	down := testVerifier(t, double, time.Second)
	if _, err := down.Check(context.Background(), mount, "artifacts/team-a/public/secrets/x", 0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("down: %v, want ErrUnavailable", err)
	}
}

func TestVerifierTokenFile(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.file-token")
	defer double.Server.Close()
	double.Seed(mount, "artifacts/a/public/secrets/x")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s.file-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultOpenBaoPolicy()
	cfg.Address, cfg.AuthMethod = double.Server.URL, policy.AuthToken
	v, err := New(cfg, Credentials{TokenFile: file}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := exists(t, v, mount, "artifacts/a/public/secrets/x"); !ok || err != nil {
		t.Fatalf("%v, %v", ok, err)
	}
	if double.Logins() != 0 {
		t.Error("the token method logged in")
	}
}

// TestAgainstRealOpenBao runs against a real OpenBao server (a dev server will do) when
// OPENBAO_ADDR and OPENBAO_TOKEN (a root token) are set. It seeds its own path in the KV v2
// mount OPENBAO_KV_MOUNT (default "secret"), checks it is found and that another is missing,
// then runs the verifier's cases on mounts, versions and a least-privilege token it sets up
// itself. The Kubernetes auth method's answers are in TestScenarios; a successful Kubernetes
// login needs a Kubernetes API for the method's TokenReview, which a dev server lacks.
func TestAgainstRealOpenBao(t *testing.T) {
	addr, token := os.Getenv("OPENBAO_ADDR"), os.Getenv("OPENBAO_TOKEN")
	if addr == "" || token == "" {
		t.Skip("skipped: set OPENBAO_ADDR and OPENBAO_TOKEN (for example of `bao server -dev`) to run the integration test against a real OpenBao")
	}
	kvMount := os.Getenv("OPENBAO_KV_MOUNT")
	if kvMount == "" {
		kvMount = "secret"
	}
	ctx := context.Background()
	conf := api.DefaultConfig()
	conf.Address = addr
	client, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	seeded := "artifacts/iss-webhook-test/public/secrets/seeded-" + time.Now().Format("20060102150405")
	if _, err := client.KVv2(kvMount).Put(ctx, seeded, map[string]any{"value": "x"}); err != nil {
		t.Fatalf("seeding %s/%s: %v", kvMount, seeded, err)
	}
	t.Cleanup(func() { _ = client.KVv2(kvMount).DeleteMetadata(ctx, seeded) })

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultOpenBaoPolicy()
	cfg.Address, cfg.AuthMethod = addr, policy.AuthToken
	v, err := New(cfg, Credentials{TokenFile: file}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := exists(t, v, kvMount, seeded); !ok || err != nil {
		t.Errorf("seeded path: %v, %v", ok, err)
	}
	if ok, err := exists(t, v, kvMount, seeded+"-missing"); ok || err != nil {
		t.Errorf("missing path: %v, %v", ok, err)
	}
	runVerifierCases(t, realOpenBao(t))
}

func TestVerifierEdgeCases(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.first")
	defer double.Server.Close()
	double.Seed(mount, "artifacts/a/public/secrets/x")
	v := testVerifier(t, double, time.Second)
	ctx := context.Background()

	t.Run("a mount that does not exist is unavailable, not missing", func(t *testing.T) {
		if _, err := exists(t, v, "kv-nope", "artifacts/a/public/secrets/x"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no handler for route") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("answers are cached per mount", func(t *testing.T) {
		if ok, _ := exists(t, v, mount, "artifacts/a/public/secrets/x"); !ok {
			t.Fatal("not found")
		}
		double.Seed("kv-prod", "artifacts/a/public/secrets/other")
		if ok, err := exists(t, v, "kv-prod", "artifacts/a/public/secrets/x"); ok || err != nil {
			t.Fatalf("kv-prod answered from kv-dev's cache: %v, %v", ok, err)
		}
	})
	t.Run("a refused token logs in again", func(t *testing.T) {
		double.RevokeTokens("s.second")
		if ok, err := exists(t, v, mount, "artifacts/a/public/secrets/y"); ok || err != nil {
			t.Fatalf("%v, %v", ok, err)
		}
		if double.Logins() != 2 {
			t.Errorf("%d logins, want 2", double.Logins())
		}
	})
	t.Run("a caller giving up does not fail the others sharing its request", func(t *testing.T) {
		double.SetDelay(200 * time.Millisecond)
		defer double.SetDelay(0)
		impatient, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		var wg sync.WaitGroup
		var patientErr error
		var patientOK bool
		wg.Go(func() { _, _ = v.Check(impatient, mount, "artifacts/a/public/secrets/x2", 0) })
		time.Sleep(time.Millisecond)
		wg.Go(func() { patientOK, patientErr = exists(t, v, mount, "artifacts/a/public/secrets/x2") })
		wg.Wait()
		if patientErr != nil || patientOK {
			t.Fatalf("patient caller: %v, %v", patientOK, patientErr)
		}
	})
}

// k8sVerifier returns a verifier of the double that logs in with the Kubernetes auth method
// and the given JWT, and its metrics.
func k8sVerifier(t *testing.T, double *openbaotest.KVv2TestDouble, jwt string) *Verifier {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultOpenBaoPolicy()
	cfg.Verify, cfg.Address = true, double.Server.URL
	v, err := New(cfg, Credentials{ServiceAccountTokenFile: file}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifierNoLoginStorm: paths the webhook's token may not read are denied without logging
// in again, the denial is remembered for MissTTL, a token OpenBao no longer knows brings one new
// login, and logins that do not help back off.
func TestVerifierNoLoginStorm(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.root")
	defer double.Server.Close()
	double.Seed(mount, "artifacts/a/public/secrets/x")
	double.AddToken("s.limited", openbaotest.TokenPolicy{Read: []string{mount + "/metadata/artifacts/a/*"}})
	double.HandOut("s.limited")
	v := k8sVerifier(t, double, "a-service-account-jwt")
	ctx := context.Background()
	now := time.Now()
	v.now = func() time.Time { return now }

	for round := range 2 {
		for i := range 7 {
			_, err := v.Check(ctx, mount, fmt.Sprintf("artifacts/b/public/secrets/%d", i), 0)
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "the webhook's OpenBao token may not read") {
				t.Fatalf("round %d, path %d: %v", round, i, err)
			}
		}
	}
	if double.Logins() != 1 || double.TokenLookups() != 1 {
		t.Errorf("14 checks of 7 denied paths: %d logins, %d token lookups; want 1 and 1", double.Logins(), double.TokenLookups())
	}
	if n := testutil.ToFloat64(v.metrics.calls.WithLabelValues("unavailable")); n != 7 {
		t.Errorf("%v unavailable requests, want 7", n)
	}
	if n := testutil.ToFloat64(v.metrics.cacheHits); n != 7 {
		t.Errorf("%v cache hits, want 7", n)
	}
	if a, err := v.Check(ctx, mount, "artifacts/a/public/secrets/x", 0); err != nil || a.State != policy.PathFound {
		t.Fatalf("a path the token may read: %+v, %v", a, err)
	}

	// A token OpenBao no longer knows: one new login, at once.
	double.RevokeTokens("s.limited-2")
	if a, err := v.Check(ctx, mount, "artifacts/a/public/secrets/y", 0); err != nil || a.State != policy.PathMissing {
		t.Fatalf("after the token was revoked: %+v, %v", a, err)
	}
	if double.Logins() != 2 {
		t.Errorf("%d logins after the token was revoked, want 2", double.Logins())
	}

	// A login that brings a token OpenBao does not know either: the next logins back off.
	double.RevokeTokens("s.limited-3")
	double.HandOut("s.ghost")
	for i := range 5 {
		_, err := v.Check(ctx, mount, fmt.Sprintf("artifacts/a/public/secrets/z%d", i), 0)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("check %d with a refused token: %v", i, err)
		}
	}
	if double.Logins() != 3 {
		t.Errorf("%d logins, want 3: the logins after the first refused token must back off", double.Logins())
	}
	now = now.Add(1100 * time.Millisecond)
	_, _ = v.Check(ctx, mount, "artifacts/a/public/secrets/z9", 0)
	if double.Logins() != 4 {
		t.Errorf("%d logins after the first backoff, want 4", double.Logins())
	}
	now = now.Add(1100 * time.Millisecond) // within the second backoff, 2s
	_, _ = v.Check(ctx, mount, "artifacts/a/public/secrets/z10", 0)
	if double.Logins() != 4 {
		t.Errorf("%d logins within the second backoff, want 4", double.Logins())
	}
	// OpenBao accepts the token again: the backoff starts over.
	double.HandOut("s.limited-3")
	now = now.Add(time.Second)
	if a, err := v.Check(ctx, mount, "artifacts/a/public/secrets/after", 0); err != nil || a.State != policy.PathMissing {
		t.Fatalf("after the backoff: %+v, %v", a, err)
	}
	if v.streak != 0 {
		t.Errorf("streak %d after an accepted token", v.streak)
	}
}

// TestVerifierLoginFailuresBackOff: a login that OpenBao refuses is not tried again for each
// check, but after 1s, 2s, 4s, ...
func TestVerifierLoginFailuresBackOff(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.root")
	defer double.Server.Close()
	double.AddKubernetesRole("another-role", "")
	v := k8sVerifier(t, double, "a-service-account-jwt")
	now := time.Now()
	v.now = func() time.Time { return now }
	failed := func() float64 { return testutil.ToFloat64(v.metrics.logins.WithLabelValues("failed")) }
	for range 5 {
		if _, err := v.Check(context.Background(), mount, "artifacts/a/public/secrets/x", 0); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `create the role`) {
			t.Fatalf("got %v", err)
		}
	}
	if failed() != 1 {
		t.Errorf("%v failed logins for 5 checks, want 1", failed())
	}
	for i, step := range []struct {
		after time.Duration
		want  float64
	}{{1100 * time.Millisecond, 2}, {1100 * time.Millisecond, 2}, {time.Second, 3}, {3 * time.Second, 3}, {time.Second, 4}} {
		now = now.Add(step.after)
		_, _ = v.Check(context.Background(), mount, "artifacts/a/public/secrets/x", 0)
		if failed() != step.want {
			t.Errorf("step %d: %v failed logins, want %v", i, failed(), step.want)
		}
	}
}

// TestVerifierMessages: each way OpenBao refuses says what to fix.
func TestVerifierMessages(t *testing.T) {
	goodJWT := openbaotest.UnsignedJWT("openbao", "iss-system", "iss-webhook", "uid")
	for _, tc := range []struct {
		name  string
		setUp func(d *openbaotest.KVv2TestDouble)
		jwt   string
		want  []string
	}{
		{"the Kubernetes auth method is not enabled", func(d *openbaotest.KVv2TestDouble) { d.EnableKubernetesAuth(false) }, goodJWT,
			[]string{"refused the webhook's Kubernetes auth login at auth/kubernetes/login", `403 "permission denied"`, "enable the Kubernetes auth method at auth/kubernetes (bao auth enable -path=kubernetes kubernetes)", "spec.openbao.auth.kubernetesMount"}},
		{"the role does not exist", func(d *openbaotest.KVv2TestDouble) { d.AddKubernetesRole("another", "") }, goodJWT,
			[]string{`400 "invalid role name \"iss-webhook\""`, "create the role (bao write auth/kubernetes/role/iss-webhook", "spec.openbao.auth.role"}},
		{"the token has another audience", func(d *openbaotest.KVv2TestDouble) { d.AddKubernetesRole("iss-webhook", "openbao") },
			openbaotest.UnsignedJWT("https://kubernetes.default.svc", "iss-system", "iss-webhook", "uid"),
			[]string{"invalid audience (aud) claim", "must be bound to the audience the role expects", "audience=openbao"}},
		{"the service account token file is empty", func(*openbaotest.KVv2TestDouble) {}, "\n",
			[]string{"is empty: mount a projected service account token"}},
		{"OpenBao is sealed", func(d *openbaotest.KVv2TestDouble) { d.Seal(true) }, goodJWT,
			[]string{"is sealed", "unseal it (bao operator unseal)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			double := openbaotest.NewKVv2TestDouble("s.root")
			defer double.Server.Close()
			double.Seed(mount, "artifacts/a/public/secrets/x")
			tc.setUp(double)
			_, err := k8sVerifier(t, double, tc.jwt).Check(context.Background(), mount, "artifacts/a/public/secrets/x", 0)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("got %v, want unavailable", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v\ndoes not say %q", err, want)
				}
			}
		})
	}
	t.Run("a sealed server, with a token", func(t *testing.T) {
		srv := newDoubleServer(t)
		srv.Write(t, mount, "artifacts/a/public/secrets/x")
		srv.d.Seal(true)
		_, err := tokenVerifier(t, srv, srv.Root()).Check(context.Background(), mount, "artifacts/a/public/secrets/x", 0)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `is sealed (it answered 503 "Vault is sealed"`) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestVerifierVersionCache: one metadata read answers for every version of a path; an answer
// that lets no value be read is asked again after MissTTL, even while the path's entry would
// serve a found version for HitTTL.
func TestVerifierVersionCache(t *testing.T) {
	double := openbaotest.NewKVv2TestDouble("s.root")
	defer double.Server.Close()
	p := "artifacts/a/public/secrets/pinned"
	double.Seed(mount, p)
	v := testVerifier(t, double, time.Second)
	now := time.Now()
	v.now = func() time.Time { return now }
	check := func(version int, want policy.PathState) {
		t.Helper()
		if a, err := v.Check(context.Background(), mount, p, version); err != nil || a.State != want {
			t.Fatalf("version %d: %+v, %v; want state %d", version, a, err, want)
		}
	}
	check(0, policy.PathFound)
	check(1, policy.PathFound)
	check(2, policy.PathNoSuchVersion)
	if n := double.Requests(mount, p); n != 1 {
		t.Errorf("%d metadata reads for three versions, want 1", n)
	}
	double.Seed(mount, p)
	check(2, policy.PathNoSuchVersion) // within MissTTL
	now = now.Add(31 * time.Second)    // past MissTTL, within HitTTL
	check(2, policy.PathFound)
	check(1, policy.PathFound)
	if n := double.Requests(mount, p); n != 2 {
		t.Errorf("%d metadata reads, want 2", n)
	}
}

// TestVerifierTLS: the CA file of --openbao-ca-file verifies OpenBao's certificate.
func TestVerifierTLS(t *testing.T) {
	double := openbaotest.NewTLSKVv2TestDouble("s.root")
	defer double.Server.Close()
	double.Seed(mount, "artifacts/a/public/secrets/x")
	dir := t.TempDir()
	ca, token := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	if err := os.WriteFile(ca, double.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("s.root"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultOpenBaoPolicy()
	cfg.Verify, cfg.Address, cfg.AuthMethod = true, double.Server.URL, policy.AuthToken
	for _, tc := range []struct {
		name  string
		creds Credentials
		ok    bool
	}{
		{"with the CA", Credentials{TokenFile: token, CACertFile: ca}, true},
		{"without it", Credentials{TokenFile: token}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(cfg, tc.creds, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			a, err := v.Check(context.Background(), mount, "artifacts/a/public/secrets/x", 0)
			if tc.ok != (err == nil && a.State == policy.PathFound) {
				t.Fatalf("%+v, %v", a, err)
			}
		})
	}
	if _, err := New(cfg, Credentials{CACertFile: filepath.Join(dir, "nope.crt")}, prometheus.NewRegistry()); err == nil {
		t.Error("a CA file that does not exist was accepted")
	}
}
