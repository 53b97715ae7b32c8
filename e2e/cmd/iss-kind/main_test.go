package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestDockerUnavailable(t *testing.T) {
	ctx := context.Background()
	found := func(string) (string, error) { return "/usr/bin/docker", nil }
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	answers := func(context.Context, string, ...string) (string, error) { return "28.2.2\n", nil }
	noDaemon := func(context.Context, string, ...string) (string, error) {
		return "", errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\nmore")
	}
	if got := dockerUnavailable(ctx, missing, answers); got != "docker is not on PATH" {
		t.Errorf("docker missing: got %q", got)
	}
	if got, want := dockerUnavailable(ctx, found, noDaemon), "docker info failed: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"; got != want {
		t.Errorf("no daemon: got %q, want %q", got, want)
	}
	if got := dockerUnavailable(ctx, found, answers); got != "" {
		t.Errorf("daemon answers: got %q, want none", got)
	}
}

// TestIssctlInstall runs the issctl of the checkout with the command line of installWebhook: it
// must accept it and install the loaded image, cert-manager's certificate, and the CRD and
// ISSPolicy that iss-kind leaves to it; and its failures must be told apart as retryInstall
// expects.
func TestIssctlInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds issctl")
	}
	dir := t.TempDir()
	issctl := filepath.Join(dir, "issctl")
	build := exec.Command("go", "build", "-o", issctl, "./cmd/issctl")
	build.Dir = filepath.Join("..", "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/issctl: %v\n%s", err, out)
	}
	// A cluster that refuses connections.
	kc := clientcmdapi.NewConfig()
	kc.Clusters["down"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	kc.AuthInfos["down"] = &clientcmdapi.AuthInfo{Token: "t"}
	kc.Contexts["down"] = &clientcmdapi.Context{Cluster: "down", AuthInfo: "down"}
	kc.CurrentContext = "down"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	runIssctl := func(t *testing.T, args ...string) (stdout, reason string, err error) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := exec.Command(issctl, args...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		return out.String(), lastLine(errOut.String()), err
	}

	t.Run("command line", func(t *testing.T) {
		args := issctlInstallArgs(kubeconfig)
		if !slices.Equal(args[:3], []string{"install", "--kubeconfig", kubeconfig}) {
			t.Errorf("args %v", args)
		}
		out, reason, err := runIssctl(t, append(args, "--dry-run", "-o", "yaml")...)
		if err != nil {
			t.Fatalf("issctl %s --dry-run -o yaml: %v: %s", strings.Join(args, " "), err, reason)
		}
		for _, want := range []string{
			"image: " + kindImage,
			"kind: CustomResourceDefinition",
			"name: isspolicies.iss.platform\n",
			"kind: ISSPolicy",
			"kind: Certificate",
			"cert-manager.io/inject-ca-from",
			"kind: ValidatingWebhookConfiguration",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the install has no %q", want)
			}
		}
		if strings.Contains(out, "image: iss-webhook:latest") {
			t.Error("a container still runs iss-webhook:latest")
		}
	})

	t.Run("an apply that fails is retried", func(t *testing.T) {
		// The self-signed mode applies without looking for cert-manager first.
		_, reason, err := runIssctl(t, "install", "--kubeconfig", kubeconfig, "--cert-mode", "self-signed", "--timeout", "20s")
		if err == nil || !retryableInstall(reason) {
			t.Errorf("got %v, %q; want a failed apply", err, reason)
		}
	})

	t.Run("a failure before any apply is not retried", func(t *testing.T) {
		_, reason, err := runIssctl(t, issctlInstallArgs(kubeconfig)...)
		if err == nil || reason == "" || retryableInstall(reason) {
			t.Errorf("got %v, %q; want a failure that is not retried", err, reason)
		}
	})
}

func TestRetryInstall(t *testing.T) {
	ctx := context.Background()
	const applyFailed = `issctl install: applying Certificate iss-system/iss-webhook: Internal error occurred: failed calling webhook "webhook.cert-manager.io": connection refused`
	const waitFailed = "issctl install: gave up waiting for deployment iss-system/iss-webhook: 0 of 2 replicas updated, 0 available"
	exit := errors.New("exit status 2")
	var progress []string
	record := func(format string, args ...any) { progress = append(progress, fmt.Sprintf(format, args...)) }

	// cert-manager's webhook answers at the third run.
	calls := 0
	err := retryInstall(ctx, time.Minute, time.Millisecond, func() (string, error) {
		if calls++; calls < 3 {
			return applyFailed, exit
		}
		return "", nil
	}, record)
	if err != nil || calls != 3 || len(progress) != 2 || !strings.HasPrefix(progress[0], applyFailed+";") {
		t.Errorf("got %v after %d runs, progress %q", err, calls, progress)
	}

	// A failed wait had its whole timeout: no second run.
	calls, progress = 0, nil
	err = retryInstall(ctx, time.Minute, time.Millisecond, func() (string, error) { calls++; return waitFailed, exit }, record)
	if err == nil || !errors.Is(err, exit) || !strings.Contains(err.Error(), waitFailed) || calls != 1 || len(progress) != 0 {
		t.Errorf("got %v after %d runs, progress %q", err, calls, progress)
	}

	// An apply that keeps failing: runs until the timeout, then its reason.
	calls = 0
	err = retryInstall(ctx, 50*time.Millisecond, 10*time.Millisecond, func() (string, error) { calls++; return applyFailed, exit }, record)
	if err == nil || !strings.Contains(err.Error(), applyFailed) || !strings.Contains(err.Error(), "still failing after 50ms") || calls < 2 {
		t.Errorf("got %v after %d runs", err, calls)
	}

	// Interrupted: no further run.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	calls = 0
	err = retryInstall(cancelled, time.Minute, time.Millisecond, func() (string, error) { calls++; return applyFailed, exit }, record)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("got %v after %d runs", err, calls)
	}
}

func TestLastLine(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "",
		"one\n":                      "one",
		"applied x\n  why  \n\n":     "why",
		"waiting\nissctl install: e": "issctl install: e",
	} {
		if got := lastLine(in); got != want {
			t.Errorf("lastLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTrustedKubeconfig(t *testing.T) {
	kind := clientcmdapi.NewConfig()
	kind.Clusters["kind-iss-e2e"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:40001", CertificateAuthorityData: []byte("ca")}
	kind.AuthInfos["kind-iss-e2e"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("admin-cert"), ClientKeyData: []byte("admin-key")}
	kind.Contexts["kind-iss-e2e"] = &clientcmdapi.Context{Cluster: "kind-iss-e2e", AuthInfo: "kind-iss-e2e"}
	kind.CurrentContext = "kind-iss-e2e"
	super := clientcmdapi.NewConfig()
	super.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: "https://iss-e2e-control-plane:6443", CertificateAuthorityData: []byte("ca")}
	super.AuthInfos["kubernetes-super-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("super-cert"), ClientKeyData: []byte("super-key")}
	super.Contexts["kubernetes-super-admin@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "kubernetes-super-admin"}
	super.CurrentContext = "kubernetes-super-admin@kubernetes"
	kindData, err := clientcmd.Write(*kind)
	if err != nil {
		t.Fatal(err)
	}
	superData, err := clientcmd.Write(*super)
	if err != nil {
		t.Fatal(err)
	}

	out, err := trustedKubeconfig(kindData, superData)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*got, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:40001" || string(cfg.CertData) != "super-cert" || string(cfg.KeyData) != "super-key" {
		t.Errorf("got host %s, cert %q, key %q", cfg.Host, cfg.CertData, cfg.KeyData)
	}
	if len(got.AuthInfos) != 1 {
		t.Errorf("the kind admin's credentials are still there: %v", got.AuthInfos)
	}

	super.AuthInfos["kubernetes-super-admin"] = &clientcmdapi.AuthInfo{Token: "t"}
	superData, _ = clientcmd.Write(*super)
	if _, err := trustedKubeconfig(kindData, superData); err == nil {
		t.Error("no error for a super-admin.conf without a client certificate")
	}
}

func TestControlPlaneNode(t *testing.T) {
	node, err := controlPlaneNode("iss-e2e-worker\niss-e2e-control-plane\niss-e2e-control-plane2\n", "iss-e2e")
	if err != nil || node != "iss-e2e-control-plane" {
		t.Errorf("got %q, %v", node, err)
	}
	if _, err := controlPlaneNode("other-control-plane\n", "iss-e2e"); err == nil {
		t.Error("no error without the cluster's control-plane node")
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	w := &prefixWriter{w: &b, prefix: "p: "}
	for _, s := range []string{"one\ntw", "o\n", "three\nfour\n"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.String(), "p: one\np: two\np: three\np: four\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
