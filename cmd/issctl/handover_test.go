package main

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/internal/selfsigned"
)

// authority returns the Secret data of a new self-signed authority: its CA and a serving
// certificate from it.
func authority(t *testing.T) map[string][]byte {
	t.Helper()
	data, _, err := selfsigned.Next(nil, selfsigned.Config{Hosts: []string{"iss-webhook.iss-system.svc"}, CAValidity: 3 * time.Hour, CertValidity: time.Hour}, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestIssuedBy(t *testing.T) {
	a, b := authority(t), authority(t)
	caA, err := onlyCertificate(a[selfsigned.KeyCACert])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		serving []byte
		want    bool
	}{
		{"a certificate of the CA", a[selfsigned.KeyServingCert], true},
		{"the CA itself", a[selfsigned.KeyCACert], true},
		{"a certificate of another CA (the hand-over's case)", b[selfsigned.KeyServingCert], false},
		{"no certificate", nil, false},
		{"not PEM", []byte("garbage"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := issuedBy(c.serving, caA); got != c.want {
				t.Errorf("issuedBy = %v, want %v", got, c.want)
			}
		})
	}
}

func TestMergeBundles(t *testing.T) {
	a, b := authority(t), authority(t)
	caA, caB := a[selfsigned.KeyCACert], b[selfsigned.KeyCACert]
	both := append(append([]byte{}, caA...), caB...)
	for _, c := range []struct {
		name    string
		bundles [][]byte
		want    []byte
		wantErr bool
	}{
		{"one CA", [][]byte{caA}, caA, false},
		{"two CAs, in the order met", [][]byte{caA, caB}, both, false},
		{"each CA once", [][]byte{caA, both, caB, caA}, both, false},
		{"empty bundles skipped (a configuration that trusts nothing yet)", [][]byte{nil, caA, {}}, caA, false},
		{"nothing at all", [][]byte{nil}, nil, true},
		{"a bundle that does not parse", [][]byte{caA, []byte("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := mergeBundles(c.bundles...)
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want an error: %v", err, c.wantErr)
			}
			if !bytes.Equal(got, c.want) {
				t.Errorf("merged\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestSetBundle(t *testing.T) {
	cfg := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`{apiVersion: admissionregistration.k8s.io/v1, kind: ValidatingWebhookConfiguration, metadata: {name: iss-webhook},
webhooks: [{name: a.iss.platform, clientConfig: {service: {name: iss-webhook, namespace: iss-system}}}, {name: b.iss.platform, clientConfig: {caBundle: b2xk}}]}`), &cfg.Object); err != nil {
		t.Fatal(err)
	}
	if err := setBundle(cfg, []byte("new")); err != nil {
		t.Fatal(err)
	}
	hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	for i, h := range hooks {
		got, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
		if got != base64.StdEncoding.EncodeToString([]byte("new")) {
			t.Errorf("webhooks[%d].clientConfig.caBundle = %q", i, got)
		}
	}
	if name, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "service", "name"); name != "iss-webhook" {
		t.Errorf("the rest of the client config went: %v", hooks[0])
	}

	bad := &unstructured.Unstructured{Object: map[string]any{"kind": "ValidatingWebhookConfiguration", "webhooks": []any{"not an object"}}}
	if err := setBundle(bad, []byte("new")); err == nil {
		t.Error("a webhook that is not an object was accepted")
	}
}
