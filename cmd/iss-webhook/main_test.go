package main

import (
	"bufio"
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
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
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
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
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

// servingWebhook is run() started by a test, with the addresses it serves.
type servingWebhook struct {
	certDir, webhookAddr, healthAddr string
	cancel                           context.CancelFunc
	done                             chan error
}

// adminKubeconfig is the kubeconfig of the control plane that TestMain starts: the webhook
// asks the API server who it is and watches pods, so its tests need a real one.
var adminKubeconfig string

func TestMain(m *testing.M) {
	flag.Parse()
	if run := flag.Lookup("test.run").Value.String(); strings.HasPrefix(run, "^TestGenerated") {
		// make generate and make check render the flags reference, which needs no cluster.
		os.Exit(m.Run())
	}
	os.Exit(func() int {
		cp, err := devenv.StartControlPlane("../..", devenv.OwnCRDs("../.."), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cp.Stop()
		dir, err := os.MkdirTemp("", "iss-webhook-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		adminKubeconfig = filepath.Join(dir, "kubeconfig")
		if _, err := cp.WriteKubeconfig(adminKubeconfig, "test-admin", "system:masters"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// startWebhook starts the real binary's run function on loopback with a self-signed serving
// certificate and waits until it is ready. It is stopped, as SIGTERM would, at the end of the test.
func startWebhook(t *testing.T, extraArgs ...string) *servingWebhook {
	t.Helper()
	dir := t.TempDir()
	writeServingCert(t, dir, "first")
	port := strconv.Itoa(freePort(t))
	healthAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	ctx, cancel := context.WithCancel(context.Background())
	w := &servingWebhook{certDir: dir, webhookAddr: net.JoinHostPort("127.0.0.1", port), healthAddr: healthAddr, cancel: cancel, done: make(chan error, 1)}
	args := append([]string{
		"--kubeconfig", adminKubeconfig, "--cert-dir", dir, "--webhook-host", "127.0.0.1", "--webhook-port", port,
		"--metrics-bind-address", "0", "--health-probe-bind-address", healthAddr, "--log-level", "error",
		"--shutdown-delay", "0s", "--leader-elect=false",
	}, extraArgs...)
	go func() { w.done <- run(ctx, args, io.Discard) }()
	t.Cleanup(func() { w.stop(t) })

	eventually(t, 30*time.Second, func() error { return w.ready(http.StatusOK) })
	return w
}

// stop cancels the context, as SIGTERM does, and waits for run to return.
func (w *servingWebhook) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case err, ok := <-w.done:
		if ok && err != nil {
			t.Errorf("run returned %v after cancel", err)
		}
		close(w.done)
	case <-time.After(45 * time.Second):
		t.Error("run did not return after cancel")
	}
}

// TestServesTLSAndReloadsRotatedCertificates sends a review over TLS, rotates the serving
// certificate on disk and checks that the new one is served without a restart.
func TestServesTLSAndReloadsRotatedCertificates(t *testing.T) {
	w := startWebhook(t)
	if cn, err := servedCommonName(w.webhookAddr); err != nil || cn != "first" {
		t.Fatalf("served %q, %v; want the first certificate", cn, err)
	}

	review := postReview(t, w.webhookAddr)
	if review.Response == nil || review.Response.UID != "tls-review" || !review.Response.Allowed {
		t.Fatalf("unexpected review response %+v", review.Response)
	}

	writeServingCert(t, w.certDir, "second")
	eventually(t, 30*time.Second, func() error {
		cn, err := servedCommonName(w.webhookAddr)
		if err != nil {
			return err
		}
		if cn != "second" {
			return fmt.Errorf("still serving %q", cn)
		}
		return nil
	})
}

// TestShutdownFinishesInFlightReviews starts a review, stops the webhook while the review is in
// flight, and checks that the review still gets its answer before run returns.
func TestShutdownFinishesInFlightReviews(t *testing.T) {
	w := startWebhook(t)
	body := reviewBody(t)
	conn, err := tls.Dial("tcp", w.webhookAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // see servedCommonName
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		webhook.ValidateEnginePodsPath, w.webhookAddr, len(body))
	if _, err := conn.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	// The review is in flight once the handler has started reading it.
	eventually(t, 30*time.Second, func() error {
		if n := inFlight(t, webhook.ValidateEnginePodsPath); n != 1 {
			return fmt.Errorf("%v reviews in flight", n)
		}
		return nil
	})

	w.cancel() // SIGTERM
	if _, err := conn.Write(body[half:]); err != nil {
		t.Fatalf("the connection of an in-flight review was closed on shutdown: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the in-flight review: %v", err)
	}
	defer resp.Body.Close()
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil || review.Response == nil || !review.Response.Allowed {
		t.Fatalf("in-flight review answered %d, %v, %+v", resp.StatusCode, err, review.Response)
	}
}

// inFlight reads controller-runtime's gauge of reviews in flight for one webhook path.
func inFlight(t *testing.T, path string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_in_flight" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" && l.GetValue() == path {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// reviewBody is an AdmissionReview for creating a plain pod.
func reviewBody(t *testing.T) []byte {
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
	return body
}

// postReview sends an AdmissionReview for a plain pod to the validating endpoint over TLS.
func postReview(t *testing.T, addr string) admissionv1.AdmissionReview {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // see servedCommonName
	resp, err := client.Post("https://"+addr+webhook.ValidateEnginePodsPath, "application/json", bytes.NewReader(reviewBody(t)))
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
		{args: []string{"--fqdn-backend", "cilium"}, wantErr: "flag provided but not defined"}, // the ISSPolicy's
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

// ready checks that /readyz answers want.
func (w *servingWebhook) ready(want int) error {
	resp, err := http.Get("http://" + w.healthAddr + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("readyz %d, want %d", resp.StatusCode, want)
	}
	return nil
}

// TestShutdownDrainsBeforeClosing checks that after SIGTERM the webhook reports not ready while
// it still serves reviews, so that the Service stops sending them before the listener closes.
func TestShutdownDrainsBeforeClosing(t *testing.T) {
	w := startWebhook(t, "--shutdown-delay", "10s")
	// A connection the API server opened before SIGTERM: it stays with this replica, so the
	// drain must make the API server close it after an answer.
	conn, err := tls.Dial("tcp", w.webhookAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // see servedCommonName
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	answers := bufio.NewReader(conn)
	if resp := reviewOn(t, conn, answers, w.webhookAddr); resp.Close {
		t.Fatal("before SIGTERM, an answer asked to close its connection")
	}

	w.cancel() // SIGTERM
	eventually(t, 30*time.Second, func() error { return w.ready(http.StatusInternalServerError) })
	if review := postReview(t, w.webhookAddr); review.Response == nil || !review.Response.Allowed {
		t.Fatalf("review while draining: %+v", review.Response)
	}
	if resp := reviewOn(t, conn, answers, w.webhookAddr); !resp.Close {
		t.Errorf("while draining, an answer on a kept-alive connection has Connection %q, want close", resp.Header.Get("Connection"))
	}
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := answers.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("after an answer while draining, reading the connection gave %d bytes, %v; want the server to close it (EOF)", n, err)
	}
}

// reviewOn sends a review on conn, reads its allowing answer from answers (conn's reader) and
// returns the answer with its body read.
func reviewOn(t *testing.T, conn net.Conn, answers *bufio.Reader, addr string) *http.Response {
	t.Helper()
	body := reviewBody(t)
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		webhook.ValidateEnginePodsPath, addr, len(body), body)
	resp, err := http.ReadResponse(answers, nil)
	if err != nil {
		t.Fatalf("no answer to a review: %v", err)
	}
	defer resp.Body.Close()
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil || review.Response == nil || !review.Response.Allowed {
		t.Fatalf("review answered %d, %v, %+v", resp.StatusCode, err, review.Response)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp
}
