package e2e

import (
	"os/exec"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("The install manifests", func() {
	It("render with kustomize and pass a server-side dry-run apply", func(ctx SpecContext) {
		rendered, err := exec.CommandContext(ctx, "kubectl", "kustomize", repoRoot+"/manifests").Output()
		Expect(err).NotTo(HaveOccurred())
		Expect(string(rendered)).To(ContainSubstring("cert-manager.io/inject-ca-from: iss-system/iss-webhook"))
		// The local control plane has the webhook configurations registered already, pointing at
		// a local URL: the rendered ones are dry-run under another name, so that the API server
		// validates them whole instead of merging them into the live ones.
		docs := strings.Split(string(rendered), "\n---\n")
		for i, doc := range docs {
			if strings.Contains(doc, "kind: MutatingWebhookConfiguration") || strings.Contains(doc, "kind: ValidatingWebhookConfiguration") {
				docs[i] = strings.Replace(doc, "\n  name: iss-webhook\n", "\n  name: iss-webhook-dry-run\n", 1)
			}
		}
		out, err := kubectl(ctx, strings.Join(docs, "\n---\n"), "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		for _, want := range []string{"deployment.apps/iss-webhook", "certificate.cert-manager.io/iss-webhook", "poddisruptionbudget.policy/iss-webhook",
			"mutatingwebhookconfiguration.admissionregistration.k8s.io/iss-webhook-dry-run", "validatingwebhookconfiguration.admissionregistration.k8s.io/iss-webhook-dry-run"} {
			Expect(out).To(ContainSubstring(want + " serverside-applied (server dry run)"))
		}
	})
})
