package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/policy"
)

// alicesSecret is the Secret that alice's ExternalSecret syncs from her private path.
const alicesSecret = "alice-db"

// podUsing renders a plain pod of team-a-dev that uses a Secret through volumes (YAML of the
// spec's volumes and the container's volumeMounts) or env (YAML of the container's env or
// envFrom), with extra metadata YAML (already indented).
func podUsing(name, metadata, volumes, container string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
%s
spec:
  containers:
    - name: app
      image: busybox
      command: ["sleep", "3600"]
%s
%s`, name, namespace, metadata, container, volumes)
}

// mountsSecret is the volume and mount of a pod that mounts a Secret.
func mountsSecret(secret string) (volumes, container string) {
	return "  volumes:\n    - name: s\n      secret: {secretName: " + secret + "}",
		"      volumeMounts:\n        - {name: s, mountPath: /s}"
}

// deploymentUsing renders a Deployment of team-a-dev whose template mounts a Secret.
func deploymentUsing(name, secret, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: %s
spec:
  replicas: 0
  selector: {matchLabels: {app: %s}}
  template:
    metadata:
      labels: {app: %s}
    spec:
      containers:
        - name: app
          image: %s
          volumeMounts:
            - {name: s, mountPath: /s}
      volumes:
        - name: s
          secret: {secretName: %s}
`, name, namespace, name, name, image, secret)
}

// denial is what the webhook says of a pod that uses alice's Secret without being hers.
const denial = `Secret "alice-db" is private to "alice" (an ExternalSecret syncs it from users/alice/...)`

var _ = Describe("User-private Secrets", Ordered, func() {
	BeforeAll(func(ctx SpecContext) {
		// Named after the Secret it writes (spec.target.name).
		DeferCleanup(deleteIn("externalsecret", namespace), alicesSecret)
		_, err := kubectl(ctx, externalSecret("v1", alicesSecret, namespace, "openbao-dev",
			[]string{"artifacts/team-a/users/alice/secrets/db-password"}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		// The ExternalSecret is the index's once its informer has seen it.
		volumes, container := mountsSecret(alicesSecret)
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, podUsing("bob-probe", "", volumes, container), "--as", "bob", "apply", "--dry-run=server", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(MatchError(ContainSubstring(denial)))

		// alice's own pod, for the connect and debug specs.
		DeferCleanup(deleteIn("pod", namespace), "alice-app")
		_, err = kubectl(ctx, podUsing("alice-app", "", volumes, container), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "alice's own pod mounts her Secret")
	})

	It("records the owner of a pod that uses a Secret", func(ctx SpecContext) {
		out, err := kubectl(ctx, "", "get", "pod", "alice-app", "-n", namespace, "-o", "jsonpath={.metadata.annotations.iss\\.platform/initiator-id}")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal("alice"))
	})

	DescribeTable("denies bob's pods that use alice's Secret",
		func(ctx SpecContext, volumes, container, field string) {
			_, err := kubectl(ctx, podUsing("bob-reads", "", volumes, container), "--as", "bob", "apply", "--dry-run=server", "-f", "-")
			Expect(err).To(MatchError(And(ContainSubstring(field+": Forbidden"), ContainSubstring(denial), ContainSubstring(`its owner (iss.platform/initiator-id at metadata.annotations[iss.platform/initiator-id]) is "bob"`))))
		},
		Entry("a secret volume", "  volumes:\n    - name: s\n      secret: {secretName: alice-db}", "      volumeMounts:\n        - {name: s, mountPath: /s}",
			"spec.volumes[0].secret.secretName"),
		Entry("a projected volume", "  volumes:\n    - name: s\n      projected:\n        sources:\n          - secret: {name: alice-db}", "      volumeMounts:\n        - {name: s, mountPath: /s}",
			"spec.volumes[0].projected.sources[0].secret.name"),
		Entry("an env var", "", "      env:\n        - name: DB\n          valueFrom: {secretKeyRef: {name: alice-db, key: k0}}",
			"spec.containers[0].env[0].valueFrom.secretKeyRef.name"),
		Entry("envFrom", "", "      envFrom:\n        - secretRef: {name: alice-db}",
			"spec.containers[0].envFrom[0].secretRef.name"),
	)

	It("denies bob's Deployment whose template mounts alice's Secret", func(ctx SpecContext) {
		_, err := kubectl(ctx, deploymentUsing("bob-deploy", alicesSecret, "busybox"), "--as", "bob", "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("spec.template.spec.volumes[0].secret.secretName: Forbidden"), ContainSubstring(denial))))
	})

	It("denies bob changing alice's Deployment that mounts her Secret, which alice may", func(ctx SpecContext) {
		DeferCleanup(deleteIn("deployment", namespace), "alice-deploy")
		_, err := kubectl(ctx, deploymentUsing("alice-deploy", alicesSecret, "busybox"), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		out, err := kubectl(ctx, "", "get", "deployment", "alice-deploy", "-n", namespace, "-o", "jsonpath={.spec.template.metadata.annotations.iss\\.platform/initiator-id}")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal("alice"), "the template's owner is recorded")
		_, err = kubectl(ctx, "", "--as", "bob", "set", "image", "deployment/alice-deploy", "app=busybox:evil", "-n", namespace)
		Expect(err).To(MatchError(ContainSubstring(`only "alice" (or a trusted identity) may change this pod template, which could make it reveal the Secret, and you are "bob"`)))
		// Removing the owner (as a server-side apply that does not name it would) gives it back.
		_, err = kubectl(ctx, "", "--as", "bob", "patch", "deployment", "alice-deploy", "-n", namespace, "--type", "json",
			"-p", `[{"op":"remove","path":"/spec/template/metadata/annotations"}]`)
		Expect(err).NotTo(HaveOccurred())
		out, err = kubectl(ctx, "", "get", "deployment", "alice-deploy", "-n", namespace, "-o", "jsonpath={.spec.template.metadata.annotations.iss\\.platform/initiator-id}")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal("alice"), "the owner stays")
		_, err = kubectl(ctx, "", "--as", "alice", "set", "image", "deployment/alice-deploy", "app=busybox:1.37", "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies bob exec, attach and port-forward into alice's pod, by the webhook", func(ctx SpecContext) {
		webhookSays := "uses Secrets synced from private paths of other users"
		_, err := kubectl(ctx, "", "--as", "bob", "exec", "alice-app", "-n", namespace, "--", "cat", "/s/k0")
		Expect(err).To(MatchError(And(ContainSubstring(webhookSays), ContainSubstring(`may exec into it`))))
		_, err = kubectl(ctx, "", "--as", "bob", "attach", "alice-app", "-n", namespace)
		Expect(err).To(MatchError(And(ContainSubstring(webhookSays), ContainSubstring(`may attach to it`))))
		// kubectl port-forward refuses a pod that is not running before it asks the API server
		// (this control plane has no nodes): the same connect, asked directly.
		_, err = kubectl(ctx, "", "--as", "bob", "get", "--raw", "/api/v1/namespaces/"+namespace+"/pods/alice-app/portforward?ports=8080")
		Expect(err).To(MatchError(And(ContainSubstring(webhookSays), ContainSubstring(`may port-forward to it`))))
		_, err = kubectl(ctx, "", "--as", "bob", "get", "--raw", "/api/v1/namespaces/"+namespace+"/pods/alice-app:8080/proxy/")
		Expect(err).To(MatchError(And(ContainSubstring(webhookSays), ContainSubstring(`may proxy to it`))))

		// alice passes the webhook; without a node the connection fails later, otherwise.
		_, err = kubectl(ctx, "", "--as", "alice", "exec", "alice-app", "-n", namespace, "--", "cat", "/s/k0")
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).NotTo(ContainSubstring(webhookSays))
	})

	It("denies bob a debug container in alice's pod", func(ctx SpecContext) {
		// The edit role grants no debug containers; a cluster that lets developers debug does.
		rbac := `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-debuggers, namespace: team-a-dev}
rules:
  - apiGroups: [""]
    resources: ["pods/ephemeralcontainers"]
    verbs: ["get", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-debuggers, namespace: team-a-dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-debuggers}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
`
		_, err := kubectl(ctx, rbac, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, rbac, "delete", "-f", "-", "--ignore-not-found")
			Expect(err).NotTo(HaveOccurred())
		})
		_, err = kubectl(ctx, "", "--as", "bob", "debug", "alice-app", "-n", namespace, "--image", "busybox:1.37", "--container", "bob-debug", "--attach=false", "--profile=general")
		Expect(err).To(MatchError(ContainSubstring(`only "alice" (or a trusted identity) may add debug containers to this pod`)))
	})

	It("denies bob's PushSecret of alice's Secret and his ExternalSecret writing into it", func(ctx SpecContext) {
		_, err := kubectl(ctx, pushSecret("bob-push", "alice-db", "artifacts/team-a/public/secrets/leaked"), "--as", "bob", "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("spec.selector.secret.name: Forbidden"), ContainSubstring(`Secret "alice-db" is private to "alice"`))))
		intoAlices := strings.Replace(externalSecret("v1", "bob-into-alice", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/x"}, ""),
			"  target:\n    name: bob-into-alice", "  target:\n    name: alice-db\n    creationPolicy: Merge", 1)
		_, err = kubectl(ctx, intoAlices, "--as", "bob", "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("spec.target.name: Forbidden"), ContainSubstring("it may not write into it"))))
	})

	It("denies alice's private ExternalSecret into a Secret that bob's pod already waits for", func(ctx SpecContext) {
		DeferCleanup(deleteIn("pod", namespace), "bob-waits")
		volumes, container := mountsSecret("alice-next")
		_, err := kubectl(ctx, podUsing("bob-waits", "", volumes, container), "--as", "bob", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "nothing is private yet")
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, externalSecret("v1", "alice-next", namespace, "openbao-dev", []string{"artifacts/team-a/users/alice/secrets/next"}, ""),
				"--as", "alice", "apply", "--dry-run=server", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(MatchError(ContainSubstring(`which others already read: pod bob-waits (owner bob)`)))
	})

	It("denies alice's private ExternalSecret into a Secret that bob's PushSecret already pushes, or his ExternalSecret templates from", func(ctx SpecContext) {
		// Nothing is private yet: bob may push and render the Secret alice-later, which nobody writes.
		push := pushSecret("bob-waits-to-push", "alice-later", "artifacts/team-a/public/secrets/leaked")
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, push, "--as", "bob", "apply", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(), "nothing is private yet")
		DeferCleanup(deleteIn("pushsecret", namespace), "bob-waits-to-push")
		alices := externalSecret("v1", "alice-later", namespace, "openbao-dev", []string{"artifacts/team-a/users/alice/secrets/later"}, "")
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, alices, "--as", "alice", "apply", "--dry-run=server", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(MatchError(And(
			ContainSubstring("spec.target.name: Forbidden"),
			ContainSubstring(`which others already read: PushSecret bob-waits-to-push (initiator bob), which pushes it`))))

		_, err := kubectl(ctx, "", "--as", "bob", "delete", "pushsecret", "bob-waits-to-push", "-n", namespace, "--wait=true")
		Expect(err).NotTo(HaveOccurred())
		render := strings.Replace(externalSecret("v1", "bob-renders", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/x"}, ""),
			"  target:\n    name: bob-renders", "  target:\n    name: bob-renders\n    template:\n      templateFrom:\n        - secret:\n            name: alice-later\n            items: [{key: k0}]", 1)
		Expect(render).To(ContainSubstring("templateFrom"))
		_, err = kubectl(ctx, render, "--as", "bob", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "nothing is private yet")
		DeferCleanup(deleteIn("externalsecret", namespace), "bob-renders")
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, alices, "--as", "alice", "apply", "--dry-run=server", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(MatchError(
			ContainSubstring(`ExternalSecret bob-renders (initiator bob), which templates it into Secret "bob-renders"`)))

		_, err = kubectl(ctx, "", "--as", "bob", "delete", "externalsecret", "bob-renders", "-n", namespace, "--wait=true")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, alices, "--as", "alice", "apply", "--dry-run=server", "-f", "-")
			return err
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(), "once nobody else reads it")
	})

	It("denies deleting alice's private ExternalSecret so that it orphans her Secret, and admits a plain deletion", func(ctx SpecContext) {
		_, err := kubectl(ctx, externalSecret("v1", "alice-gone", namespace, "openbao-dev", []string{"artifacts/team-a/users/alice/secrets/gone"}, ""),
			"--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(deleteIn("externalsecret", namespace), "alice-gone")
		for _, user := range []string{"bob", "alice"} {
			_, err = kubectl(ctx, "", "--as", user, "delete", "externalsecret", "alice-gone", "-n", namespace, "--cascade=orphan")
			Expect(err).To(MatchError(ContainSubstring(`with propagationPolicy Orphan would leave Secret "alice-gone"`)), user)
		}
		_, err = kubectl(ctx, "", "--as", "alice", "delete", "externalsecret", "alice-gone", "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies a shared engine DaemonSet that carries alice's Secret", func(ctx SpecContext) {
		ds := chartWorkload("DaemonSet", "shared-engine", "          volumeMounts:\n            - {name: s, mountPath: /s}",
			"      volumes:\n        - name: s\n          secret: {secretName: alice-db}\n")
		_, err := kubectl(ctx, ds, "--as", "alice", "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("spec.template.spec.volumes[0].secret.secretName: Forbidden"), ContainSubstring("shared engines may carry no private Secret"))))
	})

	It("denies a pod whose owner bob forges", func(ctx SpecContext) {
		volumes, container := mountsSecret(alicesSecret)
		_, err := kubectl(ctx, podUsing("bob-forged", "  annotations:\n    "+policy.AnnotationInitiatorID+": alice", volumes, container),
			"--as", "bob", "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`metadata.annotations[iss.platform/initiator-id]: Forbidden: is "alice", but you are "bob"`)))
	})

	It("ships a developer role under which users cannot read the namespace's Secrets", func(ctx SpecContext) {
		role := filepath.Join(repoRoot, "manifests", "rbac", "examples", "app-developer.yaml")
		_, err := os.Stat(role)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "apply", "-f", role)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, "", "delete", "-f", role, "--ignore-not-found")
			Expect(err).NotTo(HaveOccurred())
		})
		_, err = kubectl(ctx, "", "create", "rolebinding", "carol-develops", "--clusterrole", "iss-app-developer", "--user", "carol", "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(deleteIn("rolebinding", namespace), "carol-develops")
		can := func(ctx context.Context, user, verb, resource string) string {
			out, _ := kubectl(ctx, "", "auth", "can-i", verb, resource, "-n", namespace, "--as", user)
			return out
		}
		for _, verb := range []string{"get", "list", "watch", "update", "patch"} {
			Expect(can(ctx, "carol", verb, "secrets")).To(HavePrefix("no"), verb)
			Expect(can(ctx, "alice", verb, "secrets")).To(HavePrefix("yes"), "the edit role reads Secrets: "+verb)
		}
		for _, grant := range [][2]string{{"create", "pods"}, {"create", "deployments.apps"}, {"create", "externalsecrets.external-secrets.io"}, {"create", "pods/exec"}, {"create", "secrets"}} {
			Expect(can(ctx, "carol", grant[0], grant[1])).To(HavePrefix("yes"), grant[1])
		}
		Expect(can(ctx, "carol", "impersonate", "serviceaccounts")).To(HavePrefix("no"))
		_, err = kubectl(ctx, "", "--as", "carol", "get", "secret", alicesSecret, "-n", namespace)
		Expect(err).To(MatchError(ContainSubstring("Forbidden")))
	})
})
