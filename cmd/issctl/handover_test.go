package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
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

func TestHandoverReason(t *testing.T) {
	cm, other := authority(t), authority(t)
	ca, err := onlyCertificate(cm[selfsigned.KeyCACert])
	if err != nil {
		t.Fatal(err)
	}
	both := append(append([]byte{}, cm[selfsigned.KeyCACert]...), other[selfsigned.KeyCACert]...)
	for _, c := range []struct {
		name    string
		serving []byte
		trusted [][]byte
		want    string // a word of the reason, or "" when no hand-over is needed
	}{
		{"a switch from the self-signed mode", other[selfsigned.KeyServingCert], [][]byte{other[selfsigned.KeyCACert]}, "not from cert-manager's CA"},
		{"a switch before any configuration exists", other[selfsigned.KeyServingCert], nil, "not from cert-manager's CA"},
		{"interrupted after the issuance, before the restart: configurations trust both", cm[selfsigned.KeyServingCert], [][]byte{both, both}, "did not finish"},
		{"interrupted with one configuration done", cm[selfsigned.KeyServingCert], [][]byte{cm[selfsigned.KeyCACert], both}, "did not finish"},
		{"a bundle that does not parse", cm[selfsigned.KeyServingCert], [][]byte{[]byte("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")}, "did not finish"},
		{"settled: cert-manager's certificate and CA alone", cm[selfsigned.KeyServingCert], [][]byte{cm[selfsigned.KeyCACert], cm[selfsigned.KeyCACert]}, ""},
		{"configurations that trust nothing yet (an install before they were applied)", cm[selfsigned.KeyServingCert], [][]byte{nil}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := handoverReason(c.serving, c.trusted, ca)
			if (got == "") != (c.want == "") || !strings.Contains(got, c.want) {
				t.Errorf("handoverReason = %q, want one with %q", got, c.want)
			}
		})
	}
}

// handoverClient is a fake API server holding objs, with cert-manager's kinds.
func handoverClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, certmanagerv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&certmanagerv1.Certificate{}).Build()
}

func TestIssuancePending(t *testing.T) {
	cond := func(typ certmanagerv1.CertificateConditionType, status cmmeta.ConditionStatus, gen int64) certmanagerv1.CertificateCondition {
		return certmanagerv1.CertificateCondition{Type: typ, Status: status, Reason: "Test", ObservedGeneration: gen}
	}
	for _, c := range []struct {
		name       string
		conditions []certmanagerv1.CertificateCondition
		want       bool
	}{
		{"issued and Ready", []certmanagerv1.CertificateCondition{cond(certmanagerv1.CertificateConditionReady, cmmeta.ConditionTrue, 1)}, false},
		{"Ready, and an issuance asked for (the renewal, or a second one cert-manager started)", []certmanagerv1.CertificateCondition{cond(certmanagerv1.CertificateConditionReady, cmmeta.ConditionTrue, 1), cond(certmanagerv1.CertificateConditionIssuing, cmmeta.ConditionTrue, 1)}, true},
		{"Issuing false", []certmanagerv1.CertificateCondition{cond(certmanagerv1.CertificateConditionReady, cmmeta.ConditionTrue, 1), cond(certmanagerv1.CertificateConditionIssuing, cmmeta.ConditionFalse, 1)}, false},
		{"Ready for an older generation", []certmanagerv1.CertificateCondition{cond(certmanagerv1.CertificateConditionReady, cmmeta.ConditionTrue, 0)}, true},
		{"not Ready", []certmanagerv1.CertificateCondition{cond(certmanagerv1.CertificateConditionReady, cmmeta.ConditionFalse, 1)}, true},
		{"no status yet", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cert := &certmanagerv1.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: installNamespace, Name: servingCertificate, Generation: 1},
				Status: certmanagerv1.CertificateStatus{Conditions: c.conditions}}
			got, why := issuancePending(context.Background(), handoverClient(t, cert), servingCertificate)
			if got != c.want {
				t.Errorf("issuancePending = %v (%s), want %v", got, why, c.want)
			}
		})
	}
	if pending, why := issuancePending(context.Background(), handoverClient(t), servingCertificate); !pending || why == "" {
		t.Errorf("a Certificate that is not there: pending %v, %q", pending, why)
	}
}

func TestDropSelfSignedKeys(t *testing.T) {
	data := authority(t) // the self-signed mode's keys, cert-manager's three among them
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: installNamespace, Name: servingSecret}, Data: data}
	c := handoverClient(t, secret)
	var out bytes.Buffer
	if err := dropSelfSignedKeys(context.Background(), c, &out); err != nil {
		t.Fatal(err)
	}
	got, err := secretData(context.Background(), c, servingSecret)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{selfsigned.KeyCACert, selfsigned.KeyServingCert, selfsigned.KeyServingKey}; !slices.Equal(keys, want) {
		t.Errorf("keys left %v, want %v", keys, want)
	}
	if !strings.Contains(out.String(), "removed ca.key and ca-bundle.crt") {
		t.Errorf("output %q", out.String())
	}
	// Again: nothing to remove, nothing said.
	out.Reset()
	if err := dropSelfSignedKeys(context.Background(), c, &out); err != nil || out.Len() != 0 {
		t.Errorf("second run: %v, %q", err, out.String())
	}
}
