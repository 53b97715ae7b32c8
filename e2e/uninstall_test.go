package e2e

import (
	"os"
	"os/exec"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The uninstall spec removes the product, so it runs alone, after the rest of the suite: `make
// e2e-cluster` runs the suite a second time with ISS_E2E_UNINSTALL=1 and the label filter
// uninstall. Elsewhere it is skipped.
var _ = Describe("issctl uninstall", Label("uninstall"), Serial, func() {
	It("leaves nothing that still intercepts requests", func(ctx SpecContext) {
		if os.Getenv("ISS_E2E_UNINSTALL") != "1" {
			Skip("removes the product: runs alone, last, on a cluster that issctl install set up (make e2e-cluster)")
		}
		issctl := buildIssctl(ctx)
		uninstall, err := exec.CommandContext(ctx, issctl, "uninstall", "--kubeconfig", kubeconfig).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(uninstall))

		By("no webhook configuration calls the webhook's Service, and its namespace is gone")
		for _, kind := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
			out, err := kubectl(ctx, "", "get", kind, "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{range .webhooks[*]}{.clientConfig.service.namespace}{" "}{end}{"\n"}{end}`)
			Expect(err).NotTo(HaveOccurred())
			Expect(out).NotTo(ContainSubstring("iss-system"), kind)
			Expect(out).NotTo(ContainSubstring("iss-webhook"), kind)
		}
		_, err = kubectl(ctx, "", "get", "namespace", "iss-system")
		Expect(err).To(MatchError(ContainSubstring("NotFound")))

		By("what the webhook denied is admitted, and nothing is mutated")
		out, err := kubectl(ctx, offProfileEngine("engine-after-uninstall", namespace), "--as", "alice", "create", "--dry-run=server", "-o", "jsonpath={.metadata.labels}", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).NotTo(ContainSubstring("iss.platform/egress-policy"))
		_, err = kubectl(ctx, "", "label", "namespace", namespace, "iss.platform/app-id=someone-else", "--overwrite", "--dry-run=server")
		Expect(err).NotTo(HaveOccurred())
	})
})
