package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/iss-platform/iss-webhook/e2e/suiterun"
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

// TestIssctlInstall runs the issctl of the checkout with the command line that iss-kind passes
// to suiterun's InstallWebhook: it must accept it and install the loaded image, cert-manager's
// certificate, and the CRD and ISSPolicy that iss-kind leaves to it.
func TestIssctlInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds issctl")
	}
	dir := t.TempDir()
	repo, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	issctl := filepath.Join(dir, "issctl")
	if err := (&suiterun.Target{Repo: repo, Issctl: issctl, Out: io.Discard}).BuildIssctl(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A dry run reads no kubeconfig.
	kubeconfig := filepath.Join(dir, "kind.kubeconfig")
	args := issctlInstallArgs(kubeconfig)
	if !slices.Equal(args[:3], []string{"install", "--kubeconfig", kubeconfig}) {
		t.Errorf("args %v", args)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(issctl, append(args, "--dry-run", "-o", "yaml")...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("issctl %s --dry-run -o yaml: %v: %s", strings.Join(args, " "), err, errOut.String())
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
		if !strings.Contains(out.String(), want) {
			t.Errorf("the install has no %q", want)
		}
	}
	if strings.Contains(out.String(), "image: iss-webhook:latest") {
		t.Error("a container still runs iss-webhook:latest")
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
