package e2e

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func stack(name, backend, secretsProvider string, destroy bool) string {
	return fmt.Sprintf(`apiVersion: pulumi.com/v1
kind: Stack
metadata:
  name: %s
  namespace: %s
spec:
  stack: team-a/vpc/dev
  projectRepo: https://git.example.org/team-a/infra
  branch: main
  backend: %s
  secretsProvider: %s
  destroyOnFinalize: %t
`, name, namespace, backend, secretsProvider, destroy)
}

func terraformObject(name, backendConfig string, destroy bool) string {
	return fmt.Sprintf(`apiVersion: infra.contrib.fluxcd.io/v1alpha2
kind: Terraform
metadata:
  name: %s
  namespace: %s
spec:
  interval: 10m
  path: ./vpc
  approvePlan: auto
  sourceRef:
    kind: GitRepository
    name: infra
  destroyResourcesOnDeletion: %t
%s`, name, namespace, destroy, backendConfig)
}

var _ = Describe("Provisioning", func() {
	BeforeEach(func() {
		if localEnv != nil && !localEnv.ProvisioningCRDs {
			Skip("the Pulumi and tofu-controller CRDs were not installed: no shared/crds folder beside the checkout")
		}
	})

	It("admits a Pulumi Stack with an approved encrypted backend that destroys on delete", func(ctx SpecContext) {
		DeferCleanup(deleteIn("stacks.pulumi.com", namespace), "stack-ok")
		_, err := kubectl(ctx, stack("stack-ok", "s3://iss-platform-state/team-a", "awskms://alias/iss-team-a", true), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies a Pulumi Stack with local state, a passphrase and no deprovisioning", func(ctx SpecContext) {
		_, err := kubectl(ctx, stack("stack-bad", "file:///tmp/state", "passphrase", false), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.backend: Invalid value: "file:///tmp/state": state must live in an approved encrypted, object-locked bucket`),
			ContainSubstring(`spec.secretsProvider: Invalid value: "passphrase"`),
			ContainSubstring(`spec.destroyOnFinalize: Required value: every PROVISION needs its DEPROVISION`),
		)))
	})

	It("admits a Terraform with an encrypted, locked S3 backend in the approved bucket", func(ctx SpecContext) {
		DeferCleanup(deleteIn("terraforms.infra.contrib.fluxcd.io", namespace), "tf-ok")
		_, err := kubectl(ctx, terraformObject("tf-ok", `  backendConfig:
    customConfiguration: |
      backend "s3" {
        bucket       = "iss-platform-state"
        key          = "team-a/vpc.tfstate"
        region       = "eu-west-1"
        encrypt      = true
        use_lockfile = true
      }
`, true), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies a Terraform keeping its state in a Kubernetes Secret and not destroying on delete", func(ctx SpecContext) {
		_, err := kubectl(ctx, terraformObject("tf-bad", "", false), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.backendConfig.customConfiguration: Required value: the state must live in an approved encrypted, object-locked bucket`),
			ContainSubstring(`spec.destroyResourcesOnDeletion: Required value`),
		)))
	})
})
