package e2e

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/manifests"
)

var _ = Describe("The install manifests", func() {
	DescribeTable("render with kustomize and pass a server-side dry-run apply",
		func(ctx SpecContext, mode string, want []string) {
			objs, err := manifests.Render(mode, "")
			Expect(err).NotTo(HaveOccurred())
			// The local control plane has the webhook configurations registered already,
			// pointing at a local URL: the rendered ones are dry-run under another name, so that
			// the API server validates them whole instead of merging them into the live ones.
			var docs []string
			for _, obj := range objs {
				// On a cluster where issctl installed it, the Deployment of the other certificate
				// mode is live too, and would merge with its volumes: it gets another name as well.
				if strings.HasSuffix(obj.GetKind(), "WebhookConfiguration") || obj.GetKind() == "Deployment" {
					obj.SetName("iss-webhook-dry-run")
				}
				data, err := yaml.Marshal(obj.Object)
				Expect(err).NotTo(HaveOccurred())
				docs = append(docs, string(data))
			}
			out, err := kubectl(ctx, strings.Join(docs, "\n---\n"), "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
			for _, w := range append(want, "deployment.apps/iss-webhook-dry-run", "poddisruptionbudget.policy/iss-webhook", "isspolicy.iss.platform/default",
				"customresourcedefinition.apiextensions.k8s.io/isspolicies.iss.platform",
				"mutatingwebhookconfiguration.admissionregistration.k8s.io/iss-webhook-dry-run", "validatingwebhookconfiguration.admissionregistration.k8s.io/iss-webhook-dry-run") {
				Expect(out).To(ContainSubstring(w + " serverside-applied (server dry run)"))
			}
		},
		Entry("cert-manager", manifests.CertModeCertManager, []string{"certificate.cert-manager.io/iss-webhook"}),
		Entry("self-signed", manifests.CertModeSelfSigned, []string{"role.rbac.authorization.k8s.io/iss-webhook-self-signed"}),
	)
})
