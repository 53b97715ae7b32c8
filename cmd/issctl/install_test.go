package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
	"github.com/iss-platform/iss-webhook/manifests"
)

// TestInstallAndUninstallOnAnAPIServer runs issctl install and uninstall against a real API
// server. It has no nodes, so the Deployment never becomes available: install must apply every
// object in order, report its progress and give up with a clear message; uninstall must delete
// the webhook configurations first. The namespace stays terminating, since this control plane
// runs no namespace controller.
func TestInstallAndUninstallOnAnAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	cp, err := devenv.StartControlPlane("../..", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg, err := cp.WriteKubeconfig(kubeconfig, "admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runIssctl(t, "", "install", "--kubeconfig", kubeconfig, "--cert-mode", "self-signed",
		"--image", "registry.example.com/iss-webhook:v1.2.3", "--timeout", "10s")
	if code != exitUsage || !strings.Contains(stderr, "gave up waiting for deployment iss-system/iss-webhook: 0 of 2 replicas updated, 0 available") {
		t.Fatalf("install: exit %d, stderr %q\n%s", code, stderr, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"applied namespace iss-system",
		"applied customresourcedefinition isspolicies.iss.platform",
		"applied deployment iss-system/iss-webhook",
		"waiting for deployment iss-system/iss-webhook: 0 of 2 replicas updated, 0 available",
	}
	last := -1
	for _, w := range want {
		i := indexOf(lines, w)
		if i <= last {
			t.Fatalf("%q missing or out of order in:\n%s", w, out)
		}
		last = i
	}
	// Until the webhook serves, the API server is not told to call it.
	if strings.Contains(out, "webhookconfiguration") {
		t.Errorf("install registered the webhook before it was available:\n%s", out)
	}

	// As a finished install would have them: the webhook configurations, for uninstall to delete first.
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.Render(manifests.CertModeSelfSigned, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if strings.HasSuffix(obj.GetKind(), "WebhookConfiguration") {
			if err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("test")); err != nil {
				t.Fatal(err)
			}
		}
	}

	code, out, stderr = runIssctl(t, "", "uninstall", "--kubeconfig", kubeconfig, "--timeout", "5s")
	if code != exitUsage || !strings.Contains(stderr, "gave up waiting for namespace iss-system to be gone") {
		t.Fatalf("uninstall: exit %d, stderr %q\n%s", code, stderr, out)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || lines[0] != "deleted validatingwebhookconfiguration iss-webhook" && lines[0] != "deleted mutatingwebhookconfiguration iss-webhook" ||
		!strings.HasSuffix(lines[1], "webhookconfiguration iss-webhook") {
		t.Errorf("uninstall does not start with the webhook configurations:\n%s", out)
	}
	for _, w := range []string{"deleted deployment iss-system/iss-webhook", "deleted customresourcedefinition isspolicies.iss.platform", "deleted namespace iss-system"} {
		if indexOf(lines, w) < 0 {
			t.Errorf("uninstall did not say %q:\n%s", w, out)
		}
	}
}

func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}
