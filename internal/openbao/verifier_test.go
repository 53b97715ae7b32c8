package openbao

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
	"github.com/prometheus/client_golang/prometheus"

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
// OPENBAO_ADDR and OPENBAO_TOKEN are set. It seeds its own path in the KV v2 mount
// OPENBAO_KV_MOUNT (default "secret"), checks it is found and that another is missing.
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
