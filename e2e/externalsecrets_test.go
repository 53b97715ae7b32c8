package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/policy"
)

// externalSecret renders an ExternalSecret of the given API version reading the given keys
// through the store, with extra spec YAML (already indented) appended.
func externalSecret(version, name, ns, store string, keys []string, extra string) string {
	data := ""
	for i, k := range keys {
		data += fmt.Sprintf("    - secretKey: k%d\n      remoteRef:\n        key: %s\n", i, k)
	}
	return fmt.Sprintf(`apiVersion: external-secrets.io/%s
kind: ExternalSecret
metadata:
  name: %s
  namespace: %s
spec:
  secretStoreRef:
    kind: ClusterSecretStore
    name: %s
  target:
    name: %s
  data:
%s%s`, version, name, ns, store, name, data, extra)
}

// pushSecret renders a PushSecret of namespace that pushes key k0 of a Secret to an OpenBao path
// through the dev store.
func pushSecret(name, secret, remoteKey string) string {
	return fmt.Sprintf(`apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: %s
  namespace: %s
spec:
  secretStoreRefs:
    - kind: ClusterSecretStore
      name: openbao-dev
  selector:
    secret: {name: %s}
  data:
    - match:
        secretKey: k0
        remoteRef: {remoteKey: %s}
`, name, namespace, secret, remoteKey)
}

func deleteIn(kind, ns string) func(ctx context.Context, name string) {
	return func(ctx context.Context, name string) {
		_, err := kubectl(ctx, "", "delete", kind, name, "-n", ns, "--ignore-not-found", "--wait=false")
		Expect(err).NotTo(HaveOccurred())
	}
}

var _ = Describe("ExternalSecrets and PushSecrets", func() {
	It("admits the own app's public path and the user's own private path, and records the initiator", func(ctx SpecContext) {
		for _, version := range []string{"v1", "v1beta1"} {
			name := "es-own-" + version
			DeferCleanup(deleteIn("externalsecret", namespace), name)
			_, err := kubectl(ctx, externalSecret(version, name, namespace, "openbao-dev",
				[]string{"artifacts/team-a/public/secrets/api-token", "/artifacts/team-a/users/alice/secrets/db-password"}, ""),
				"--as", "alice", "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), version)
			out, err := kubectl(ctx, "", "get", "externalsecret", name, "-n", namespace, "-o", "jsonpath={.metadata.annotations.iss\\.platform/initiator-id}")
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(Equal("alice"))
		}
	})

	DescribeTable("denies, with a clear message",
		func(ctx SpecContext, manifest, want string) {
			_, err := kubectl(ctx, manifest, "--as", "alice", "apply", "-f", "-")
			Expect(err).To(MatchError(ContainSubstring(want)))
		},
		Entry("another app's path", externalSecret("v1", "es-other-app", namespace, "openbao-dev", []string{"artifacts/team-b/public/secrets/api-token"}, ""),
			`spec.data[0].remoteRef.key: Forbidden: path "artifacts/team-b/public/secrets/api-token" belongs to the app "team-b", but namespace team-a-dev belongs to "team-a"`),
		Entry("another user's path", externalSecret("v1", "es-other-user", namespace, "openbao-dev", []string{"artifacts/team-a/users/bob/secrets/token"}, ""),
			`is the private path of user "bob", but this object's iss.platform/initiator-id is "alice"`),
		Entry("a .. segment", externalSecret("v1", "es-dotdot", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/.."}, ""),
			`secretName (last segment) ".." is a relative path element`),
		Entry("percent-encoding", externalSecret("v1", "es-percent", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/a%2Fb"}, ""),
			"percent-encoding is not allowed"),
		Entry("a path off the hierarchy", externalSecret("v1", "es-off", namespace, "openbao-dev", []string{"secret/data/prod/db"}, ""),
			`must start with "artifacts/"`),
		Entry("find across paths", externalSecret("v1", "es-find", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/x"},
			"  dataFrom:\n    - find:\n        path: artifacts\n        name:\n          regexp: .*\n"),
			"spec.dataFrom[0].find: Forbidden: find searches across OpenBao paths"),
		Entry("the store of another environment", externalSecret("v1", "es-prod-store", namespace, "openbao-prod", []string{"artifacts/team-a/public/secrets/x"}, ""),
			`spec.secretStoreRef: Forbidden: store ClusterSecretStore/openbao-prod is not the store of environment "dev": use ClusterSecretStore/openbao-dev`),
		Entry("a spoofed initiator", `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: es-spoofed
  namespace: team-a-dev
  annotations:
    iss.platform/initiator-id: bob
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: openbao-dev}
  data:
    - secretKey: t
      remoteRef: {key: artifacts/team-a/users/bob/secrets/token}
`, `metadata.annotations[iss.platform/initiator-id]: Forbidden: is "bob", but you are "alice"`),
		Entry("a namespaced Vault store", `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: my-vault
  namespace: team-a-dev
spec:
  provider:
    vault:
      server: https://openbao.example.org:8200
      path: kv
      auth:
        tokenSecretRef: {name: bao-token, key: token}
`, `spec.provider.vault: Forbidden: a namespaced SecretStore in team-a-dev reads with credentials of its own, past the platform's stores and the ISS-001 path rules, and the policy allows no "vault" stores`),
		Entry("a namespaced store with the webhook provider pointed at OpenBao's HTTP API", `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: bao-over-http
  namespace: team-a-dev
spec:
  provider:
    webhook:
      url: "https://openbao.example.org:8200/v1/kv-prod/data/{{ .remoteRef.key }}"
      headers: {X-Vault-Token: "{{ .auth.token }}"}
      secrets:
        - name: auth
          secretRef: {name: bao-token}
      result: {jsonPath: "$.data.data"}
`, `spec.provider.webhook: Forbidden: a namespaced SecretStore in team-a-dev reads with credentials of its own`),
		Entry("a namespaced store of another provider", `apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: aws
  namespace: team-a-dev
spec:
  provider:
    aws: {service: SecretsManager, region: eu-west-1}
`, `spec.provider.aws: Forbidden: a namespaced SecretStore in team-a-dev reads with credentials of its own, past the platform's stores and the ISS-001 path rules, and the policy allows no "aws" stores in the apps' namespaces (spec.secrets.allowedStoreProviders)`),
		Entry("a PushSecret of a VaultDynamicSecret's values", `apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push-dynamic
  namespace: team-a-dev
spec:
  secretStoreRefs:
    - {kind: ClusterSecretStore, name: openbao-dev}
  selector:
    generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: VaultDynamicSecret, name: root}
  data:
    - match:
        secretKey: token
        remoteRef: {remoteKey: artifacts/team-a/public/secrets/token}
`, `spec.selector.generatorRef.kind: Forbidden: generator kind "VaultDynamicSecret" reads any Vault or OpenBao path, with credentials of its own`),
		Entry("a PushSecret of a ClusterGenerator's values", `apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push-cluster-generator
  namespace: team-a-dev
spec:
  secretStoreRefs:
    - {kind: ClusterSecretStore, name: openbao-dev}
  selector:
    generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: ClusterGenerator, name: anything}
  data:
    - match:
        secretKey: token
        remoteRef: {remoteKey: artifacts/team-a/public/secrets/token}
`, `spec.selector.generatorRef.kind: Forbidden: a ClusterGenerator wraps a generator of any kind`),
		Entry("a PushSecret of the Secrets a label selector matches, in every namespace", `apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push-by-labels
  namespace: team-a-dev
spec:
  secretStoreRefs:
    - {kind: ClusterSecretStore, name: openbao-dev}
  selector:
    secret:
      selector: {matchLabels: {app.kubernetes.io/part-of: team-b}}
  data:
    - match:
        secretKey: token
        remoteRef: {remoteKey: artifacts/team-a/public/secrets/token}
`, `spec.selector.secret.selector: Forbidden: External Secrets lists the Secrets a label selector matches in every namespace of the cluster`),
		Entry("an ExternalSecret from a dynamic generator of v1beta1", `apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: es-dynamic
  namespace: team-a-dev
spec:
  dataFrom:
    - sourceRef:
        generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: Webhook, name: bao}
`, `spec.dataFrom[0].sourceRef.generatorRef.kind: Forbidden: generator kind "Webhook" reads any HTTP endpoint, OpenBao's API among them`),
		Entry("a VaultDynamicSecret generator", `apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata:
  name: root
  namespace: team-a-dev
spec:
  path: kv-prod/data/artifacts/team-b/public/secrets/db
  method: GET
  provider:
    server: https://openbao.example.org:8200
    auth:
      tokenSecretRef: {name: bao-token, key: token}
`, `kind: Forbidden: generator kind "VaultDynamicSecret" reads any Vault or OpenBao path, with credentials of its own, which the ISS-001 path rules cannot check; the policy allows only "Password", "UUID"`),
		Entry("a Webhook generator pointed at OpenBao", `apiVersion: generators.external-secrets.io/v1alpha1
kind: Webhook
metadata:
  name: bao
  namespace: team-a-dev
spec:
  url: https://openbao.example.org:8200/v1/kv-prod/data/artifacts/team-b/public/secrets/db
  result: {jsonPath: "$.data.data"}
`, `kind: Forbidden: generator kind "Webhook" reads any HTTP endpoint`),
		Entry("a PushSecret into another app", `apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push-other-app
  namespace: team-a-dev
spec:
  secretStoreRefs:
    - kind: ClusterSecretStore
      name: openbao-dev
  selector:
    secret: {name: build-output}
  data:
    - match:
        secretKey: token
        remoteRef: {remoteKey: artifacts/team-b/public/secrets/token}
`, `spec.data[0].match.remoteRef.remoteKey: Forbidden: path "artifacts/team-b/public/secrets/token" belongs to the app "team-b"`),
	)

	It("denies another member of the namespace pointing alice's ExternalSecret at her private paths", func(ctx SpecContext) {
		DeferCleanup(deleteIn("externalsecret", namespace), "es-alices")
		_, err := kubectl(ctx, externalSecret("v1", "es-alices", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/x"}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "bob", "--as-group", "system:authenticated", "patch", "externalsecret", "es-alices", "-n", namespace, "--type", "json",
			"-p", `[{"op":"replace","path":"/spec/data/0/remoteRef/key","value":"artifacts/team-a/users/alice/secrets/db-password"}]`)
		Expect(err).To(MatchError(ContainSubstring(`spec: Forbidden: only its initiator "alice" (or a trusted identity) may change what this object reads or writes, and you are "bob"`)))
	})

	It("denies changing the initiator of an existing ExternalSecret", func(ctx SpecContext) {
		DeferCleanup(deleteIn("externalsecret", namespace), "es-keep-initiator")
		_, err := kubectl(ctx, externalSecret("v1", "es-keep-initiator", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/x"}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "annotate", "externalsecret", "es-keep-initiator", "-n", namespace, policy.AnnotationInitiatorID+"=bob", "--overwrite")
		Expect(err).To(MatchError(ContainSubstring(`the initiator "alice" may not be changed or removed`)))
	})

	It("denies relabelling a namespace to another app, even with RBAC to edit namespaces, but lets the platform do it", func(ctx SpecContext) {
		rbac := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: e2e-namespace-labeller
rules:
  - apiGroups: [""]
    resources: ["namespaces"]
    verbs: ["get", "list", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: e2e-namespace-labeller
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-namespace-labeller}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: mallory}
`
		_, err := kubectl(ctx, rbac, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, rbac, "delete", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
		})
		_, err = kubectl(ctx, "", "--as", "mallory", "label", "namespace", "team-b-staging", policy.LabelAppID+"=team-a", "--overwrite")
		Expect(err).To(MatchError(ContainSubstring(`metadata.labels[iss.platform/app-id]: Forbidden: only the platform (trusted identities) may set or change iss.platform/app-id (from "team-b" to "team-a")`)))
		_, err = kubectl(ctx, "", "--as", "mallory", "label", "namespace", "team-b-staging", policy.LabelEnvironment+"-")
		Expect(err).To(MatchError(ContainSubstring(`metadata.labels[iss.platform/environment]: Forbidden`)))
		_, err = kubectl(ctx, "", "--as", "mallory", "label", "namespace", "team-b-staging", "owner=platform", "--overwrite")
		Expect(err).NotTo(HaveOccurred(), "other labels are free")
		_, err = kubectl(ctx, "", "label", "namespace", "team-b-staging", policy.LabelEnvironment+"=staging", "--overwrite")
		Expect(err).NotTo(HaveOccurred(), "the cluster admin is trusted")
	})

	It("admits the generators the policy allows", func(ctx SpecContext) {
		DeferCleanup(deleteIn("passwords.generators.external-secrets.io", namespace), "pw")
		_, err := kubectl(ctx, `apiVersion: generators.external-secrets.io/v1alpha1
kind: Password
metadata:
  name: pw
  namespace: team-a-dev
spec: {length: 32}
`, "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("keeps the spec of an ExternalSecret and a PushSecret held by a finalizer, and lets the finalizer go", func(ctx SpecContext) {
		held := map[string]string{
			"externalsecret": `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: es-held
  namespace: team-a-dev
  finalizers: [example.org/hold]
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: openbao-dev}
  data:
    - secretKey: token
      remoteRef: {key: artifacts/team-a/public/secrets/token}
`,
			"pushsecret": `apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push-held
  namespace: team-a-dev
  finalizers: [example.org/hold]
spec:
  deletionPolicy: None
  secretStoreRefs:
    - {kind: ClusterSecretStore, name: openbao-dev}
  selector:
    secret: {name: build-output}
  data:
    - match:
        secretKey: token
        remoteRef: {remoteKey: artifacts/team-a/public/secrets/token}
`,
		}
		retarget := map[string]string{
			"externalsecret": `[{"op":"replace","path":"/spec/data/0/remoteRef/key","value":"artifacts/team-b/public/secrets/prod-db"}]`,
			"pushsecret":     `[{"op":"replace","path":"/spec/data/0/match/remoteRef/remoteKey","value":"artifacts/team-b/public/secrets/prod-db"}]`,
		}
		names := map[string]string{"externalsecret": "es-held", "pushsecret": "push-held"}
		for _, kind := range []string{"externalsecret", "pushsecret"} {
			name := names[kind]
			DeferCleanup(func(ctx context.Context) {
				_, _ = kubectl(ctx, "", "patch", kind, name, "-n", namespace, "--type", "json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
				deleteIn(kind, namespace)(ctx, name)
			})
			_, err := kubectl(ctx, held[kind], "--as", "alice", "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), kind)
			_, err = kubectl(ctx, "", "--as", "alice", "delete", kind, name, "-n", namespace, "--wait=false")
			Expect(err).NotTo(HaveOccurred(), kind)

			_, err = kubectl(ctx, "", "--as", "alice", "patch", kind, name, "-n", namespace, "--type", "json", "-p", retarget[kind])
			Expect(err).To(MatchError(ContainSubstring("spec: Forbidden: the object is being deleted")), kind)
			_, err = kubectl(ctx, "", "--as", "alice", "patch", kind, name, "-n", namespace, "--type", "merge", "-p", `{"spec":{"refreshInterval":"1s"}}`)
			Expect(err).To(MatchError(ContainSubstring("is being deleted")), kind+": any spec change")
			// A cluster admin is trusted, yet the path rules hold for it too.
			_, err = kubectl(ctx, "", "patch", kind, name, "-n", namespace, "--type", "json", "-p", retarget[kind])
			Expect(err).To(MatchError(ContainSubstring(`belongs to the app "team-b"`)), kind+": the cluster admin")

			_, err = kubectl(ctx, "", "--as", "alice", "patch", kind, name, "-n", namespace, "--type", "json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
			Expect(err).NotTo(HaveOccurred(), kind+": the finalizer removed")
			Eventually(func(ctx context.Context) (string, error) {
				return kubectl(ctx, "", "get", kind, "-n", namespace, "--ignore-not-found", "-o", "name", name)
			}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(time.Second).Should(BeEmpty(), kind)
		}
	})

	It("lets only trusted identities write ClusterExternalSecrets, ClusterPushSecrets and ClusterSecretStores, and checks what the former write into each namespace", func(ctx SpecContext) {
		rbac := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: e2e-cluster-secrets
rules:
  - apiGroups: ["external-secrets.io"]
    resources: ["clusterexternalsecrets", "clusterpushsecrets", "clustersecretstores"]
    verbs: ["get", "list", "create", "update", "patch", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: e2e-cluster-secrets
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-cluster-secrets}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: mallory}
`
		_, err := kubectl(ctx, rbac, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, rbac, "delete", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
		})
		ces := func(name, selection, key string) string {
			return fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata:
  name: %s
spec:
  %s
  externalSecretSpec:
    secretStoreRef: {kind: ClusterSecretStore, name: openbao-dev}
    data:
      - secretKey: token
        remoteRef: {key: %s}
`, name, selection, key)
		}
		DeferCleanup(func(ctx context.Context) {
			_, _ = kubectl(ctx, "", "delete", "clusterexternalsecret", "ces-team-a", "--ignore-not-found")
		})
		_, err = kubectl(ctx, ces("ces-team-a", "namespaces: [team-a-dev]", "artifacts/team-a/public/secrets/shared"), "--as", "mallory", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec: Forbidden: a ClusterExternalSecret writes into every namespace it selects, so only trusted identities (spec.trustedIdentities of the ISSPolicy) may create it or change its spec, and you are "mallory"`)))
		_, stderr, err := kubectlWithStderr(ctx, ces("ces-team-a", "namespaceSelectors: [{matchLabels: {kubernetes.io/metadata.name: team-a-dev}}]", "artifacts/team-a/public/secrets/shared"), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "the cluster admin, for the app's own namespace")
		Expect(stderr).To(ContainSubstring("Warning: ClusterExternalSecret ces-team-a: its namespace selectors match 1 namespaces now"))
		_, err = kubectl(ctx, ces("ces-other-app", "namespaces: [team-a-dev, team-b-staging]", "artifacts/team-a/public/secrets/shared"), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.externalSecretSpec.data[0].remoteRef.key: Forbidden: in namespace team-b-staging, which spec.namespaces[1] selects: path "artifacts/team-a/public/secrets/shared" belongs to the app "team-a", but namespace team-b-staging belongs to "team-b"`)))
		_, err = kubectl(ctx, ces("ces-everywhere", "namespaceSelectors: [{}]", "artifacts/team-a/public/secrets/shared"), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.namespaceSelectors[0]: Forbidden: in namespace kube-system, which spec.namespaceSelectors[0] selects: namespace kube-system has no iss.platform/app-id label`)),
			"every namespace, the control plane's (which no webhook sees) among them")
		_, err = kubectl(ctx, `apiVersion: external-secrets.io/v1alpha1
kind: ClusterPushSecret
metadata:
  name: cps-other-app
spec:
  namespaceSelectors:
    - matchLabels: {iss.platform/app-id: team-a}
  pushSecretSpec:
    secretStoreRefs:
      - {kind: ClusterSecretStore, name: openbao-dev}
    selector:
      secret: {name: build-output}
    data:
      - match:
          secretKey: token
          remoteRef: {remoteKey: artifacts/team-b/public/secrets/token}
`, "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.pushSecretSpec.data[0].match.remoteRef.remoteKey: Forbidden: in namespace team-a-dev, which spec.namespaceSelectors[0] selects: path "artifacts/team-b/public/secrets/token" belongs to the app "team-b"`)))
		_, err = kubectl(ctx, `apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata:
  name: mallorys-bao
spec:
  provider:
    vault:
      server: https://openbao.example.org:8200
      path: kv-prod
      auth:
        tokenSecretRef: {name: bao-token, key: token, namespace: team-a-dev}
`, "--as", "mallory", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec: Forbidden: a ClusterSecretStore serves every namespace its conditions admit`)))
	})

	It("issctl audit lists the stores, generators and cluster-scoped objects that exist from before the rules", func(ctx SpecContext) {
		before := `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: audit-aws
  namespace: team-a-dev
spec:
  provider:
    aws: {service: SecretsManager, region: eu-west-1}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata:
  name: audit-dynamic
  namespace: team-a-dev
spec:
  path: kv-prod/data/artifacts/team-b/public/secrets/db
  provider: {server: "https://openbao.example.org:8200"}
---
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata:
  name: audit-everywhere
spec:
  namespaceSelectors: [{}]
  externalSecretSpec:
    secretStoreRef: {kind: ClusterSecretStore, name: openbao-dev}
    data:
      - secretKey: token
        remoteRef: {key: artifacts/team-a/public/secrets/shared}
`
		restore := removeWebhook(ctx, "validatingwebhookconfiguration", "external-secrets.validate.iss.platform")
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, before, "apply", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed(), "created while the webhook was away")
		restore(ctx)
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, before, "delete", "--ignore-not-found", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
		})

		out, err := exec.CommandContext(ctx, buildIssctl(ctx), "audit", "--kubeconfig", kubeconfig, "--write-reports").Output()
		GinkgoWriter.Printf("%s\n", out)
		var exit *exec.ExitError
		Expect(errors.As(err, &exit)).To(BeTrue(), "issctl audit exits 1 on violations: %v", err)
		Expect(string(out)).To(And(
			ContainSubstring("secretstore/audit-aws (namespace team-a-dev): denied"),
			ContainSubstring(`* spec.provider.aws: Forbidden: a namespaced SecretStore in team-a-dev reads with credentials of its own`),
			ContainSubstring("vaultdynamicsecret/audit-dynamic (namespace team-a-dev): denied"),
			ContainSubstring("clusterexternalsecret/audit-everywhere (cluster-scoped): denied"),
			ContainSubstring("in namespace kube-system, which spec.namespaceSelectors[0] selects"),
		))
		Expect(string(out)).NotTo(ContainSubstring("only trusted identities"), "cluster-scoped objects are audited for what they do, not who wrote them")
	})
})
