package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func stack(name, backend, secretsProvider string, destroy bool) string {
	return stackWith("pulumi.com/v1", name, backend, secretsProvider, destroy, "")
}

// stackWith renders a Stack of the API version with extra spec YAML (indented by two spaces).
func stackWith(apiVersion, name, backend, secretsProvider string, destroy bool, extra string) string {
	return fmt.Sprintf(`apiVersion: %s
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
%s`, apiVersion, name, namespace, backend, secretsProvider, destroy, extra)
}

func terraformObject(name, backendConfig string, destroy bool) string {
	return terraformWith("infra.contrib.fluxcd.io/v1alpha2", name, backendConfig, destroy)
}

// terraformWith renders a Terraform of the API version with extra spec YAML (indented by two
// spaces), such as its backendConfig.
func terraformWith(apiVersion, name, extra string, destroy bool) string {
	return fmt.Sprintf(`apiVersion: %s
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
%s`, apiVersion, name, namespace, destroy, extra)
}

// approvedS3 is a backendConfig that keeps the state in the approved bucket, encrypted and
// locked.
const approvedS3 = `  backendConfig:
    customConfiguration: |
      backend "s3" {
        bucket       = "iss-platform-state"
        key          = "team-a/vpc.tfstate"
        region       = "eu-west-1"
        encrypt      = true
        use_lockfile = true
      }
`

// provisioningEditRole is what the Pulumi operator's and tofu-controller's charts aggregate into
// the edit role; the local control plane has no controller manager to aggregate it, so the
// developers are bound to it directly.
const provisioningEditRole = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: provisioning-edit
  namespace: ` + namespace + `
rules:
- apiGroups: [pulumi.com, infra.contrib.fluxcd.io]
  resources: [stacks, terraforms]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: provisioning-edit
  namespace: ` + namespace + `
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: provisioning-edit}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
`

// asAlice runs kubectl as the ordinary developer alice.
func asAlice(ctx context.Context, stdin string, args ...string) (string, error) {
	return kubectl(ctx, stdin, append([]string{"--as", "alice"}, args...)...)
}

var _ = Describe("Provisioning", func() {
	BeforeEach(func(ctx SpecContext) {
		if localEnv != nil && !localEnv.ProvisioningCRDs {
			Skip("the Pulumi and tofu-controller CRDs were not installed: no shared/crds folder beside the checkout")
		}
		_, err := kubectl(ctx, provisioningEditRole, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("admits a Pulumi Stack with an approved encrypted backend that destroys on delete", func(ctx SpecContext) {
		DeferCleanup(deleteIn("stacks.pulumi.com", namespace), "stack-ok")
		_, err := asAlice(ctx, stack("stack-ok", "s3://iss-platform-state/team-a", "awskms://alias/iss-team-a", true), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies a Pulumi Stack with local state, a passphrase and no deprovisioning", func(ctx SpecContext) {
		_, err := asAlice(ctx, stack("stack-bad", "file:///tmp/state", "passphrase", false), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.backend: Invalid value: "file:///tmp/state": state must live in an approved encrypted, object-locked bucket`),
			ContainSubstring(`spec.secretsProvider: Invalid value: "passphrase"`),
			ContainSubstring(`spec.destroyOnFinalize: Required value: every PROVISION needs its DEPROVISION`),
		)))
	})

	It("admits a Stack whose workspace sets only allowed variables and images, as an ordinary user", func(ctx SpecContext) {
		DeferCleanup(deleteIn("stacks.pulumi.com", namespace), "stack-env-ok")
		_, err := asAlice(ctx, stackWith("pulumi.com/v1", "stack-env-ok", "s3://iss-platform-state/team-a", "awskms://alias/iss-team-a", true, `  envRefs:
    AWS_REGION: {type: Literal, literal: {value: eu-west-1}}
    AWS_ACCESS_KEY_ID: {type: Secret, secret: {name: aws, key: id}}
  workspaceTemplate:
    spec:
      image: pulumi/pulumi-python:3.150.0-nonroot
      env: [{name: TZ, value: UTC}]
      podTemplate:
        spec:
          containers: [{name: pulumi, env: [{name: NO_COLOR, value: "1"}]}]
`), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies every source of a Stack's environment that could redirect its state, as an ordinary user", func(ctx SpecContext) {
		_, err := asAlice(ctx, stackWith("pulumi.com/v1", "stack-redirected", "s3://iss-platform-state/team-a", "awskms://alias/iss-team-a", true, `  envRefs:
    AWS_ENDPOINT_URL_S3: {type: Literal, literal: {value: https://evil.example.org}}
  envs: [team-env]
  envSecrets: [team-secrets]
  workspaceTemplate:
    spec:
      image: docker.io/evil/pulumi:3
      env: [{name: PULUMI_BACKEND_URL, value: "file:///tmp/state"}]
      podTemplate:
        spec:
          initContainers: [{name: extra, image: busybox, command: [sh, -c, "echo PULUMI_BACKEND_URL=file:///tmp >> $PULUMI_ENV"]}]
          containers:
          - name: pulumi
            env: [{name: AWS_ENDPOINT_URL, value: https://evil.example.org}]
            envFrom: [{secretRef: {name: everything}}]
`), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.envRefs[AWS_ENDPOINT_URL_S3]: Forbidden: AWS_ENDPOINT_URL_S3 is not a variable a provisioning run may set`),
			ContainSubstring(`spec.envs: Forbidden: loads every key of each ConfigMap as a variable`),
			ContainSubstring(`spec.envSecrets: Forbidden: loads every key of each Secret as a variable`),
			ContainSubstring(`spec.workspaceTemplate.spec.image: Forbidden: the repository docker.io/evil/pulumi is not one`),
			ContainSubstring(`spec.workspaceTemplate.spec.env[0].name: Forbidden: PULUMI_BACKEND_URL is not a variable a provisioning run may set`),
			ContainSubstring(`spec.workspaceTemplate.spec.podTemplate.spec.initContainers: Forbidden:`),
			ContainSubstring(`spec.workspaceTemplate.spec.podTemplate.spec.containers[0].env[0].name: Forbidden: AWS_ENDPOINT_URL is not`),
			ContainSubstring(`spec.workspaceTemplate.spec.podTemplate.spec.containers[0].envFrom: Forbidden:`),
		)))
	})

	It("admits a Terraform with an encrypted, locked S3 backend in the approved bucket", func(ctx SpecContext) {
		DeferCleanup(deleteIn("terraforms.infra.contrib.fluxcd.io", namespace), "tf-ok")
		_, err := asAlice(ctx, terraformObject("tf-ok", approvedS3+`  runnerPodTemplate:
    spec:
      image: ghcr.io/flux-iac/tf-runner:v0.16.0-rc.5
      env: [{name: AWS_REGION, value: eu-west-1}, {name: TF_VAR_size, value: "3"}]
`, true), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies a Terraform keeping its state in a Kubernetes Secret, saying which, and not destroying on delete", func(ctx SpecContext) {
		_, err := asAlice(ctx, terraformObject("tf-bad", "", false), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.backendConfig.customConfiguration: Required value: without it, tofu-controller keeps the state with the "kubernetes" backend, in the Secret tfstate-default-tf-bad of namespace team-a-dev`),
			ContainSubstring(`spec.destroyResourcesOnDeletion: Required value`),
		)))
		_, err = asAlice(ctx, terraformObject("tf-kubernetes", `  backendConfig:
    customConfiguration: |
      backend "kubernetes" {
        secret_suffix = "vpc"
      }
`, true), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`the "kubernetes" backend keeps the state in the Secret tfstate-default-vpc (secret_suffix "vpc")`)))
	})

	It("denies a Terraform whose runner or backend block would redirect its state, as an ordinary user", func(ctx SpecContext) {
		_, err := asAlice(ctx, terraformObject("tf-redirected", `  backendConfig:
    customConfiguration: |
      backend "s3" {
        key = <<EOT
        bucket = "iss-platform-state"
      EOT
        bucket       = "evil"
        encrypt      = true
        use_lockfile = true
        endpoints    = { s3 = "https://evil.example.org" }
        region       = var.region
      }
  runnerPodTemplate:
    spec:
      env: [{name: AWS_ENDPOINT_URL_S3, value: https://evil.example.org}]
      envFrom: [{secretRef: {name: everything}}]
      volumes: [{name: aws, secret: {secretName: aws-config}}]
      volumeMounts: [{name: aws, mountPath: /home/runner/.aws}]
  fileMappings: [{location: workspace, path: backend_override.tf, secretRef: {name: evil}}]
`, true), "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`endpoints is not admitted in a backend "s3" block`),
			ContainSubstring(`region must be a literal`),
			ContainSubstring(`stores state in s3://evil (bucket "evil")`),
			ContainSubstring(`spec.runnerPodTemplate.spec.env[0].name: Forbidden: AWS_ENDPOINT_URL_S3 is not`),
			ContainSubstring(`spec.runnerPodTemplate.spec.envFrom: Forbidden:`),
			ContainSubstring(`spec.runnerPodTemplate.spec.volumes: Forbidden:`),
			ContainSubstring(`spec.runnerPodTemplate.spec.volumeMounts: Forbidden:`),
			ContainSubstring(`spec.fileMappings: Forbidden:`),
		)))
		_, err = asAlice(ctx, terraformObject("tf-two-blocks", `  backendConfig:
    customConfiguration: |
      backend "s3" {
        bucket       = "iss-platform-state"
        encrypt      = true
        use_lockfile = true
      }
      }
      terraform {
        backend "local" {}
`, true), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`line 7: is outside the terraform block that customConfiguration is the body of`)))
	})

	It("judges the other served API versions the same", func(ctx SpecContext) {
		_, err := asAlice(ctx, stackWith("pulumi.com/v1alpha1", "stack-v1alpha1", "s3://iss-platform-state/team-a", "awskms://alias/iss-team-a", true, `  envRefs:
    AWS_ENDPOINT_URL_S3: {type: Literal, literal: {value: https://evil.example.org}}
`), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.envRefs[AWS_ENDPOINT_URL_S3]: Forbidden`)))
		_, err = asAlice(ctx, terraformWith("infra.contrib.fluxcd.io/v1alpha1", "tf-v1alpha1", approvedS3+`  runnerPodTemplate:
    spec:
      env: [{name: AWS_ENDPOINT_URL_S3, value: https://evil.example.org}]
`, true), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.runnerPodTemplate.spec.env[0].name: Forbidden: AWS_ENDPOINT_URL_S3 is not`)))
	})

	It("denies an update or patch that adds a redirecting variable, and a re-created object with one", func(ctx SpecContext) {
		DeferCleanup(deleteIn("stacks.pulumi.com", namespace), "stack-patched")
		DeferCleanup(deleteIn("terraforms.infra.contrib.fluxcd.io", namespace), "tf-patched")
		good := stack("stack-patched", "s3://iss-platform-state/team-a", "awskms://alias/iss-team-a", true)
		_, err := asAlice(ctx, good, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = asAlice(ctx, "", "patch", "stack", "stack-patched", "-n", namespace, "--type", "merge",
			"-p", `{"spec":{"envRefs":{"PULUMI_BACKEND_URL":{"type":"Literal","literal":{"value":"file:///tmp"}}}}}`)
		Expect(err).To(MatchError(ContainSubstring(`spec.envRefs[PULUMI_BACKEND_URL]: Forbidden: PULUMI_BACKEND_URL is not a variable a provisioning run may set`)))
		_, err = asAlice(ctx, "", "patch", "stack", "stack-patched", "-n", namespace, "--type", "json",
			"-p", `[{"op":"add","path":"/spec/workspaceTemplate","value":{"spec":{"env":[{"name":"AWS_ENDPOINT_URL_S3","value":"https://evil.example.org"}]}}}]`)
		Expect(err).To(MatchError(ContainSubstring(`spec.workspaceTemplate.spec.env[0].name: Forbidden`)))

		_, err = asAlice(ctx, terraformObject("tf-patched", approvedS3, true), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = asAlice(ctx, "", "patch", "terraform", "tf-patched", "-n", namespace, "--type", "merge",
			"-p", `{"spec":{"runnerPodTemplate":{"spec":{"env":[{"name":"AWS_ENDPOINT_URL_S3","value":"https://evil.example.org"}]}}}}`)
		Expect(err).To(MatchError(ContainSubstring(`spec.runnerPodTemplate.spec.env[0].name: Forbidden`)))

		// Deleted and created again, the object is judged as any new one.
		_, err = asAlice(ctx, "", "delete", "stack", "stack-patched", "-n", namespace, "--wait=true")
		Expect(err).NotTo(HaveOccurred())
		_, err = asAlice(ctx, strings.Replace(good, "  destroyOnFinalize: true\n", "  destroyOnFinalize: true\n  envSecrets: [everything]\n", 1), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.envSecrets: Forbidden`)))
	})

	It("refuses a policy whose allowedEnv would let the state leave the approved backends", func(ctx SpecContext) {
		// A server-side dry run: the API server runs the CRD's CEL rules, and nothing changes.
		_, err := kubectl(ctx, policyManifest(suitePolicy()+"provisioning:\n  allowedEnv: [AWS_REGION, AWS_*, PULUMI_BACKEND_URL]\n"), "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.provisioning.allowedEnv: Invalid value: may not allow PULUMI_BACKEND_URL")))
		_, err = kubectl(ctx, policyManifest(suitePolicy()+"provisioning:\n  allowedEnv: [AWS_REGION, TF_VAR_*, ACME_*]\n"), "apply", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("keeps the spec of a Stack and a Terraform held by a finalizer while they are being deleted", func(ctx SpecContext) {
		for _, tc := range []struct{ resource, name, manifest, patch, moved string }{
			{"stack", "stack-held", stack("stack-held", "s3://iss-platform-state/team-a", "awskms://alias/iss-team-a", true), `{"spec":{"destroyOnFinalize":false}}`,
				`{"spec":{"envRefs":{"AWS_ENDPOINT_URL_S3":{"type":"Literal","literal":{"value":"https://evil.example.org"}}}}}`},
			{"terraform", "tf-held", terraformObject("tf-held", approvedS3, true), `{"spec":{"destroyResourcesOnDeletion":false}}`,
				`{"spec":{"runnerPodTemplate":{"spec":{"env":[{"name":"AWS_ENDPOINT_URL_S3","value":"https://evil.example.org"}]}}}}`},
		} {
			held := strings.Replace(tc.manifest, "metadata:\n", "metadata:\n  finalizers: [example.org/hold]\n", 1)
			_, err := asAlice(ctx, held, "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
			_, err = asAlice(ctx, "", "delete", tc.resource, tc.name, "-n", namespace, "--wait=false")
			Expect(err).NotTo(HaveOccurred())
			Eventually(func(ctx context.Context) (string, error) {
				return kubectl(ctx, "", "get", tc.resource, tc.name, "-n", namespace, "-o", "jsonpath={.metadata.deletionTimestamp}")
			}).WithContext(ctx).WithTimeout(2 * time.Minute).ShouldNot(BeEmpty())

			_, err = asAlice(ctx, "", "patch", tc.resource, tc.name, "-n", namespace, "--type", "merge", "-p", tc.patch)
			Expect(err).To(MatchError(ContainSubstring("spec: Forbidden: the object is being deleted")), tc.resource)
			_, err = asAlice(ctx, "", "patch", tc.resource, tc.name, "-n", namespace, "--type", "merge", "-p", tc.moved)
			Expect(err).To(MatchError(ContainSubstring("spec: Forbidden: the object is being deleted")), tc.resource)
			// Its finalizer may go, and the object with it.
			_, err = asAlice(ctx, "", "patch", tc.resource, tc.name, "-n", namespace, "--type", "merge", "-p", `{"metadata":{"finalizers":null}}`)
			Expect(err).NotTo(HaveOccurred(), tc.resource)
			Eventually(func(ctx context.Context) (string, error) {
				return kubectl(ctx, "", "get", tc.resource, tc.name, "-n", namespace, "--ignore-not-found", "-o", "name")
			}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(BeEmpty())
		}
	})
})
