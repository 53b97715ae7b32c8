package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/iss-platform/iss-webhook/webhook"
)

// writeServingCert writes a self-signed serving certificate for 127.0.0.1 with the given common
// name into dir, replacing the files by rename as a mounted Secret update does.
func writeServingCert(t *testing.T, dir, commonName string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"tls.crt": {Type: "CERTIFICATE", Bytes: der},
		"tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// servedCommonName connects to addr and returns the common name of the certificate it serves.
func servedCommonName(addr string) (string, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads the certificate, it does not trust it
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// eventually polls cond every 100ms until it returns nil or the deadline passes. The deadline
// is generous (the certificate watcher also polls every 10s); nothing here times the server.
func eventually(t *testing.T, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServesTLSAndReloadsRotatedCertificates starts the real binary's run function, sends it a
// review over TLS, rotates the serving certificate on disk and checks that the new one is served
// without a restart, then stops it as SIGTERM would.
func TestServesTLSAndReloadsRotatedCertificates(t *testing.T) {
	dir := t.TempDir()
	writeServingCert(t, dir, "first")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	// The webhook makes no API calls while serving reviews; the manager only needs a config.
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	webhookAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	healthAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	_, port, _ := net.SplitHostPort(webhookAddr)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--kubeconfig", kubeconfig, "--cert-dir", dir, "--webhook-host", "127.0.0.1", "--webhook-port", port,
			"--metrics-bind-address", "0", "--health-probe-bind-address", healthAddr, "--log-level", "error",
		}, io.Discard)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after cancel", err)
			}
		case <-time.After(45 * time.Second):
			t.Error("run did not return after cancel")
		}
	}()

	eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	if cn, err := servedCommonName(webhookAddr); err != nil || cn != "first" {
		t.Fatalf("served %q, %v; want the first certificate", cn, err)
	}

	review := postReview(t, webhookAddr)
	if review.Response == nil || review.Response.UID != "tls-review" || !review.Response.Allowed {
		t.Fatalf("unexpected review response %+v", review.Response)
	}

	writeServingCert(t, dir, "second")
	eventually(t, 30*time.Second, func() error {
		cn, err := servedCommonName(webhookAddr)
		if err != nil {
			return err
		}
		if cn != "second" {
			return fmt.Errorf("still serving %q", cn)
		}
		return nil
	})
}

// postReview sends an AdmissionReview for a plain pod to the validating endpoint over TLS.
func postReview(t *testing.T, addr string) admissionv1.AdmissionReview {
	t.Helper()
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "tls-review", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Operation: admissionv1.Create, Namespace: "default",
			Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // see servedCommonName
	resp, err := client.Post("https://"+addr+webhook.ValidateEnginePodsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		t.Fatal(err)
	}
	return review
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: []string{"--webhook-port", "0"}, wantErr: "not a TCP port"},
		{args: []string{"stray"}, wantErr: "unexpected arguments"},
		{args: []string{"--no-such-flag"}, wantErr: "flag provided but not defined"},
	} {
		var out bytes.Buffer
		_, err := parseFlags(tc.args, &out)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("parseFlags(%q) = %v, want error containing %q", tc.args, err, tc.wantErr)
		}
	}
	var help bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "--cert-dir") && !strings.Contains(help.String(), "-cert-dir") {
		t.Errorf("--help: %v\n%s", err, help.String())
	}
	if _, err := newLogger("loud"); err == nil {
		t.Error("newLogger accepted an unknown level")
	}
}
