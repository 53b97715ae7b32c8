package selfsigned

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// Every starting replica runs Bootstrap: it writes the Secret only when a replica could not serve
// what it holds, and leaves renewals and rotations to the leader's Keeper.

// issuedAt returns the data the authority creates at at, then passes at the later times given,
// trusted.
func issuedAt(t *testing.T, cfg Config, at time.Time, passes ...time.Time) map[string][]byte {
	t.Helper()
	data, _, err := Next(nil, cfg, at, false)
	for _, p := range passes {
		if err == nil {
			data, _, err = Next(data, cfg, p, true)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func with(data map[string][]byte, key string, value []byte) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range data {
		out[k] = v
	}
	if value == nil {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}

func TestNeedsBootstrapWrite(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	valid := issuedAt(t, testConfig, now.Add(-time.Minute))
	serving := certOf(t, valid, KeyServingCert)
	garbage := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	for _, tc := range []struct {
		name string
		data map[string][]byte
		at   time.Time
		want bool
	}{
		{"no Secret", nil, now, true},
		{"empty Secret", map[string][]byte{}, now, true},
		{"serving certificate missing", with(valid, KeyServingCert, nil), now, true},
		{"serving key missing", with(valid, KeyServingKey, nil), now, true},
		{"serving certificate unparsable", with(valid, KeyServingCert, garbage), now, true},
		{"serving certificate not PEM", with(valid, KeyServingCert, []byte("tls.crt")), now, true},
		{"serving key unparsable", with(valid, KeyServingKey, []byte("tls.key")), now, true},
		{"serving key of another certificate", with(valid, KeyServingKey, valid[KeyCAKey]), now, true},
		{"two serving certificates", with(valid, KeyServingCert, append(bytes.Clone(valid[KeyServingCert]), valid[KeyServingCert]...)), now, true},
		{"serving certificate expired", valid, serving.NotAfter.Add(time.Second), true},
		{"serving certificate expiring now", valid, serving.NotAfter, true},

		{"serving certificate valid", valid, now, false},
		{"serving certificate a second before its expiry", valid, serving.NotAfter.Add(-time.Second), false},
		{"serving certificate due for renewal", valid, now.Add(25 * time.Minute), false},
		{"CA due for renewal", issuedAt(t, testConfig, now.Add(-65*time.Minute), now.Add(-10*time.Minute)), now, false},
		{"CA rotation in progress", issuedAt(t, testConfig, now.Add(-65*time.Minute), now.Add(-10*time.Minute), now.Add(-time.Minute)), now, false},
		{"CA missing", with(with(valid, KeyCACert, nil), KeyCAKey, nil), now, false},
		{"CA expired", func() map[string][]byte {
			expired := issuedAt(t, shortConfig, now.Add(-time.Minute))
			return with(with(valid, KeyCACert, expired[KeyCACert]), KeyCAKey, expired[KeyCAKey])
		}(), now, false},
		{"hosts of another configuration", issuedAt(t, Config{Hosts: []string{"iss-webhook.platform.svc"}, CAValidity: time.Hour, CertValidity: 20 * time.Minute}, now), now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := needsBootstrapWrite(tc.data, tc.at); got != tc.want {
				t.Errorf("needsBootstrapWrite = %v, want %v", got, tc.want)
			}
		})
	}
}

var testSecret = types.NamespacedName{Namespace: "iss-system", Name: "iss-webhook-tls"}

func secretWith(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testSecret.Namespace, Name: testSecret.Name}, Type: corev1.SecretTypeTLS, Data: data}
}

// bootstrap runs Bootstrap against a fake API server holding stored, when not nil, and returns
// the Secret afterwards.
func bootstrap(t *testing.T, cfg Config, stored map[string][]byte, funcs interceptor.Funcs) (*corev1.Secret, string) {
	t.Helper()
	b := fake.NewClientBuilder().WithInterceptorFuncs(funcs)
	if stored != nil {
		b = b.WithObjects(secretWith(stored))
	}
	c := b.Build()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Bootstrap(ctx, c, Options{Config: cfg, Secret: testSecret, WebhookConfiguration: "iss-webhook", CertDir: dir}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, testSecret, secret); err != nil {
		t.Fatal(err)
	}
	return secret, dir
}

// checkCertDir fails unless dir holds the Secret's serving certificate and key, usable now.
func checkCertDir(t *testing.T, dir string, secret *corev1.Secret) {
	t.Helper()
	for _, name := range []string{KeyServingCert, KeyServingKey} {
		have, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(have, secret.Data[name]) {
			t.Errorf("the cert directory's %s is not the Secret's: %v", name, err)
		}
	}
	if needsBootstrapWrite(secret.Data, time.Now()) {
		t.Error("the Secret holds no usable serving certificate")
	}
}

func TestBootstrapWritesOnlyWhenItCannotServe(t *testing.T) {
	now := time.Now()
	moved := testConfig
	moved.Hosts = []string{"iss-webhook.platform.svc"}
	for _, tc := range []struct {
		name   string
		cfg    Config
		stored map[string][]byte
		write  bool
	}{
		{"no Secret", testConfig, nil, true},
		{"serving certificate expired", testConfig, issuedAt(t, testConfig, now.Add(-40*time.Minute)), true},
		{"serving certificate missing", testConfig, with(issuedAt(t, testConfig, now.Add(-time.Minute)), KeyServingCert, nil), true},
		{"serving key of another certificate", testConfig, func() map[string][]byte {
			data := issuedAt(t, testConfig, now.Add(-time.Minute))
			return with(data, KeyServingKey, data[KeyCAKey])
		}(), true},

		{"serving certificate valid", testConfig, issuedAt(t, testConfig, now.Add(-time.Minute)), false},
		{"serving certificate due for renewal", testConfig, issuedAt(t, testConfig, now.Add(-25*time.Minute)), false},
		{"CA due for renewal", testConfig, issuedAt(t, testConfig, now.Add(-65*time.Minute), now.Add(-10*time.Minute)), false},
		{"CA rotation in progress", testConfig, issuedAt(t, testConfig, now.Add(-65*time.Minute), now.Add(-10*time.Minute), now.Add(-time.Minute)), false},
		{"hosts changed", moved, issuedAt(t, testConfig, now.Add(-time.Minute)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret, dir := bootstrap(t, tc.cfg, tc.stored, interceptor.Funcs{})
			wrote := tc.stored == nil || !sameData(tc.stored, secret.Data)
			if wrote != tc.write {
				t.Errorf("wrote the Secret %v, want %v", wrote, tc.write)
			}
			checkCertDir(t, dir, secret)
		})
	}
}

// TestBootstrapRace: when another replica writes the Secret between this one's read and write,
// this one reads it again and serves what the other wrote.
func TestBootstrapRace(t *testing.T) {
	now := time.Now()
	winner := issuedAt(t, testConfig, now.Add(-time.Minute))
	for _, tc := range []struct {
		name   string
		stored map[string][]byte
		funcs  interceptor.Funcs
	}{
		{"create: AlreadyExists", nil, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if err := c.Create(ctx, secretWith(winner)); err != nil {
					return err
				}
				err := c.Create(ctx, obj, opts...)
				if !apierrors.IsAlreadyExists(err) {
					t.Errorf("create after the other replica's: %v", err)
				}
				return err
			},
		}},
		{"update: Conflict", issuedAt(t, testConfig, now.Add(-40*time.Minute)), interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				other := &corev1.Secret{}
				if err := c.Get(ctx, testSecret, other); err != nil {
					return err
				}
				other.Data = winner
				if err := c.Update(ctx, other); err != nil {
					return err
				}
				err := c.Update(ctx, obj, opts...)
				if !apierrors.IsConflict(err) {
					t.Errorf("update after the other replica's: %v", err)
				}
				return err
			},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret, dir := bootstrap(t, testConfig, tc.stored, tc.funcs)
			if !sameData(secret.Data, winner) {
				t.Error("the Secret is not the other replica's")
			}
			checkCertDir(t, dir, secret)
		})
	}
}
