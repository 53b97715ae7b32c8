package e2e

import (
	"context"
	"fmt"

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
`, "spec.provider.vault: Forbidden: a namespaced Vault/OpenBao SecretStore in team-a-dev would bypass the platform's store"),
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
})
