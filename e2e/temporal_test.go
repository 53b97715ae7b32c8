package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/policy"
)

// The images of two builds' code, pinned by digest.
const (
	workerImageV7 = "registry.example.org/orders-worker@sha256:7777777777777777777777777777777777777777777777777777777777777777"
	workerImageV8 = "registry.example.org/orders-worker@sha256:8888888888888888888888888888888888888888888888888888888888888888"
)

// The identities of the controllers that make the ReplicaSets and pods of workers: the suite's
// control plane runs no controller manager, so an admin impersonates them.
const (
	deploymentController = "system:serviceaccount:kube-system:deployment-controller"
	replicaSetController = "system:serviceaccount:kube-system:replicaset-controller"
)

func temporalWorker(name, build, tmplBuild string) string {
	return temporalWorkerIn(namespace, name, build, tmplBuild, workerImageV7)
}

// temporalWorkerIn is a worker Deployment that selects its pods by app and the template's build
// id.
func temporalWorkerIn(ns, name, build, tmplBuild, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: %s
  labels:
    iss.platform/component: temporal-worker
    iss.platform/build-id: "%s"
spec:
  replicas: 2
  selector:
    matchLabels:
      app: orders-worker
      iss.platform/build-id: "%s"
  template:
    metadata:
      labels:
        app: orders-worker
        iss.platform/build-id: "%s"
    spec:
      containers:
        - name: worker
          image: %s
          args: ["--task-queue", "orders"]
          env:
            - name: TEMPORAL_ADDRESS
              value: temporal-frontend.temporal:7233
`, name, ns, build, tmplBuild, tmplBuild, image)
}

// workerReplicaSet is a ReplicaSet of build v7 as the Deployment controller makes them, owned by
// the Deployment of uid when it is set, at a revision.
func workerReplicaSet(name, image, ownerUID, revision string) string {
	owner := ""
	if ownerUID != "" {
		owner = fmt.Sprintf(`
  ownerReferences:
    - apiVersion: apps/v1
      kind: Deployment
      name: orders-worker-v7
      uid: %s
      controller: true
      blockOwnerDeletion: true`, ownerUID)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: %s
  namespace: %s
  labels: {app: orders-worker, iss.platform/build-id: "v7", pod-template-hash: %s}
  annotations: {deployment.kubernetes.io/revision: "%s"}%s
spec:
  replicas: 0
  selector:
    matchLabels: {app: orders-worker, iss.platform/build-id: "v7", pod-template-hash: %s}
  template:
    metadata:
      labels: {app: orders-worker, iss.platform/build-id: "v7", pod-template-hash: %s}
    spec:
      containers:
        - name: worker
          image: %s
          args: ["--task-queue", "orders"]
          env:
            - name: TEMPORAL_ADDRESS
              value: temporal-frontend.temporal:7233
`, name, namespace, name[len(name)-5:], revision, owner, name[len(name)-5:], name[len(name)-5:], image)
}

// workerPodOf is a pod of build v7.
func workerPodOf(name, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {app: orders-worker, iss.platform/build-id: "v7"}
spec:
  containers:
    - name: worker
      image: %s
`, name, namespace, image)
}

// buildRecord returns the record of a build as the admin reads it, or nil when there is none.
func buildRecord(ctx context.Context, ns, build string) map[string]any {
	GinkgoHelper()
	out, err := kubectl(ctx, "", "get", "configmap", policy.BuildRecordName(ns, build), "-n", "iss-system", "-o", "json", "--ignore-not-found")
	Expect(err).NotTo(HaveOccurred())
	if strings.TrimSpace(out) == "" {
		return nil
	}
	obj := map[string]any{}
	Expect(json.Unmarshal([]byte(out), &obj)).To(Succeed())
	return obj
}

var _ = Describe("Temporal workers", Ordered, func() {
	const name = "orders-worker-v7"
	var uid string
	BeforeAll(func(ctx SpecContext) {
		_, err := kubectl(ctx, temporalWorker(name, "v7", "v7"), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(deleteIn("deployment", namespace), name)
		uid, err = kubectl(ctx, "", "get", "deployment", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}")
		Expect(err).NotTo(HaveOccurred())
	})

	It("records the code of the build before admitting it, in iss-system", func(ctx SpecContext) {
		rec := buildRecord(ctx, namespace, "v7")
		Expect(rec).NotTo(BeNil())
		meta := rec["metadata"].(map[string]any)
		Expect(meta["labels"]).To(HaveKeyWithValue(policy.LabelBuildNamespace, namespace))
		Expect(meta["labels"]).To(HaveKeyWithValue(policy.LabelBuildID, "v7"))
		data := rec["data"].(map[string]any)
		Expect(data).To(HaveKeyWithValue("deployment", name))
		Expect(data["codeHash"]).To(HavePrefix("sha256:"))
		Expect(data["code"]).To(ContainSubstring(workerImageV7))
	})

	It("denies a worker whose pod template serves another build", func(ctx SpecContext) {
		_, err := kubectl(ctx, temporalWorker("orders-worker-bad", "v7", "v6"), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.metadata.labels[iss.platform/build-id]: Invalid value: "v6": must equal the Deployment's iss.platform/build-id "v7"`)))
	})

	It("denies images by tag and selectors without the build id", func(ctx SpecContext) {
		tagged := temporalWorkerIn(namespace, "orders-worker-tagged", "tagged", "tagged", "registry.example.org/orders-worker:v7")
		_, err := kubectl(ctx, tagged, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.spec.containers[0].image: Invalid value: "registry.example.org/orders-worker:v7": a Temporal worker's image is pinned by digest`)))
		loose := strings.Replace(temporalWorkerIn(namespace, "orders-worker-loose", "loose", "loose", workerImageV7), "      iss.platform/build-id: \"loose\"\n  template:", "  template:", 1)
		_, err = kubectl(ctx, loose, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.selector.matchLabels[iss.platform/build-id]: Required value: a Temporal worker selects its pods by its build id`)))
		Expect(buildRecord(ctx, namespace, "tagged")).To(BeNil())
	})

	It("denies kubectl set image, explaining blue/green", func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "--as", "alice", "set", "image", "deployment/"+name, "-n", namespace, "worker="+workerImageV8)
		Expect(err).To(MatchError(ContainSubstring(`spec.template.spec.containers[0].image: Forbidden: changed from "` + workerImageV7 + `" to "` + workerImageV8 + `": Temporal workers are deployed blue/green (ISS-001 section 5): deploy the new build as a new Deployment`)))
	})

	It("denies code swapped through volumes, workingDir, lifecycle hooks, init containers and the service account (kubectl patch)", func(ctx SpecContext) {
		for _, tc := range []struct{ patch, field string }{
			{`[{"op":"add","path":"/spec/template/spec/volumes","value":[{"name":"code","configMap":{"name":"code"}}]},{"op":"add","path":"/spec/template/spec/containers/0/volumeMounts","value":[{"name":"code","mountPath":"/app"}]}]`, "spec.template.spec.containers[0].volumeMounts"},
			{`[{"op":"add","path":"/spec/template/spec/containers/0/workingDir","value":"/other"}]`, "spec.template.spec.containers[0].workingDir"},
			{`[{"op":"add","path":"/spec/template/spec/containers/0/lifecycle","value":{"postStart":{"exec":{"command":["sh","-c","fetch-other-code"]}}}}]`, "spec.template.spec.containers[0].lifecycle.postStart.exec.command"},
			{`[{"op":"add","path":"/spec/template/spec/initContainers","value":[{"name":"patch","image":"` + workerImageV8 + `"}]}]`, "spec.template.spec.initContainers"},
			{`[{"op":"add","path":"/spec/template/spec/serviceAccountName","value":"admin"}]`, "spec.template.spec.serviceAccountName"},
			{`[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"other:7233"}]`, "spec.template.spec.containers[0].env[0].value"},
		} {
			_, err := kubectl(ctx, "", "--as", "alice", "patch", "deployment", name, "-n", namespace, "--type", "json", "-p", tc.patch)
			Expect(err).To(MatchError(ContainSubstring(tc.field+": Forbidden:")), tc.patch)
		}
	})

	It("denies changing or removing the build id with kubectl label", func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "--as", "alice", "label", "deployment", name, "-n", namespace, "iss.platform/build-id=v8", "--overwrite")
		Expect(err).To(MatchError(ContainSubstring(`metadata.labels[iss.platform/build-id]: Forbidden: changed from "v7" to "v8"`)))
		_, err = kubectl(ctx, "", "--as", "alice", "label", "deployment", name, "-n", namespace, "iss.platform/build-id-", "iss.platform/component-")
		Expect(err).To(MatchError(ContainSubstring(`metadata.labels[iss.platform/build-id]: Required value`)))
	})

	It("allows kubectl scale, rollout restart, resources, scheduling and other labels", func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "--as", "alice", "scale", "deployment", name, "-n", namespace, "--replicas", "5")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "rollout", "restart", "deployment/"+name, "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "set", "resources", "deployment/"+name, "-n", namespace, "--limits", "cpu=2,memory=1Gi")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "patch", "deployment", name, "-n", namespace, "--type", "merge", "-p",
			`{"spec":{"template":{"spec":{"nodeSelector":{"pool":"workers"},"tolerations":[{"key":"workers","operator":"Exists"}],"priorityClassName":"workers"}}}}`)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "label", "deployment", name, "-n", namespace, "team=orders")
		Expect(err).NotTo(HaveOccurred())
	})

	It("is judged against the records on dry run, and writes none", func(ctx SpecContext) {
		_, err := kubectl(ctx, temporalWorkerIn(namespace, "orders-worker-dry", "dry", "dry", workerImageV7), "--as", "alice", "apply", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(buildRecord(ctx, namespace, "dry")).To(BeNil())
		_, err = kubectl(ctx, temporalWorkerIn(namespace, "orders-worker-copy", "v7", "v7", workerImageV8), "--as", "alice", "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("recorded code of build iss.platform/build-id=v7 in namespace team-a-dev is that of Deployment orders-worker-v7")))
	})

	It("denies a second Deployment of the build with other code, and admits the build id in another namespace", func(ctx SpecContext) {
		_, err := kubectl(ctx, temporalWorkerIn(namespace, "orders-worker-copy", "v7", "v7", workerImageV8), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.spec.containers[0].image: Forbidden: changed from "` + workerImageV7 + `" to "` + workerImageV8 + `": the recorded code of build iss.platform/build-id=v7`)))
		// The same code under another name is the same build.
		DeferCleanup(deleteIn("deployment", namespace), "orders-worker-same")
		_, err = kubectl(ctx, temporalWorkerIn(namespace, "orders-worker-same", "v7", "v7", workerImageV7), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(deleteIn("deployment", "team-a-prod"), "orders-worker-v7")
		_, err = kubectl(ctx, temporalWorkerIn("team-a-prod", "orders-worker-v7", "v7", "v7", workerImageV8), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	})

	It("admits only one of two concurrent creates of a new build with other code", func(ctx SpecContext) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, image := range []string{workerImageV7, workerImageV8} {
			n := fmt.Sprintf("orders-worker-race-%d", i)
			DeferCleanup(deleteIn("deployment", namespace), n)
			wg.Go(func() {
				defer GinkgoRecover()
				_, errs[i] = kubectl(ctx, temporalWorkerIn(namespace, n, "race", "race", image), "--as", "alice", "apply", "-f", "-")
			})
		}
		wg.Wait()
		failed := 0
		for _, err := range errs {
			if err != nil {
				Expect(err).To(MatchError(ContainSubstring("recorded code of build iss.platform/build-id=race")))
				failed++
			}
		}
		Expect(failed).To(Equal(1))
	})

	It("denies ReplicaSets of the build made by hand and changes of their code; the Deployment controller makes them", func(ctx SpecContext) {
		_, err := kubectl(ctx, workerReplicaSet("orders-worker-v7-hand1", workerImageV8, "", "1"), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("metadata.labels[iss.platform/build-id]: Forbidden: a ReplicaSet of a Temporal build is not created by hand")))
		DeferCleanup(deleteIn("replicaset", namespace), "orders-worker-v7-5d4f8")
		_, err = kubectl(ctx, workerReplicaSet("orders-worker-v7-5d4f8", workerImageV7, uid, "2"), "--as", deploymentController, "create", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "set", "image", "replicaset/orders-worker-v7-5d4f8", "-n", namespace, "worker="+workerImageV8)
		Expect(err).To(MatchError(ContainSubstring("spec.template.spec.containers[0].image: Forbidden: changed from")))
		_, err = kubectl(ctx, "", "--as", "alice", "scale", "replicaset", "orders-worker-v7-5d4f8", "-n", namespace, "--replicas", "1")
		Expect(err).NotTo(HaveOccurred())
	})

	It("denies kubectl rollout undo to another revision's code", func(ctx SpecContext) {
		// The current revision, and one of other code, as it was before the webhook was installed.
		// High revisions, named in the undo: on a cluster whose Deployment controller has made
		// revisions of its own (and renumbers its current one above these), "the previous one"
		// would be another.
		for _, rs := range []struct{ name, image, revision string }{{"orders-worker-v7-cur02", workerImageV7, "101"}, {"orders-worker-v7-0ld01", workerImageV8, "100"}} {
			DeferCleanup(deleteIn("replicaset", namespace), rs.name)
			_, err := kubectl(ctx, workerReplicaSet(rs.name, rs.image, uid, rs.revision), "--as", deploymentController, "create", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
		}
		_, err := kubectl(ctx, "", "--as", "alice", "rollout", "undo", "deployment/"+name, "-n", namespace, "--to-revision", "100")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.spec.containers[0].image: Forbidden: changed from "` + workerImageV7 + `" to "` + workerImageV8 + `"`)))
	})

	It("denies pods of the build made by hand, changes of their code and debug containers; the ReplicaSet controller makes them", func(ctx SpecContext) {
		_, err := kubectl(ctx, workerPodOf("orders-worker-v7-hand", workerImageV8), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("metadata.labels[iss.platform/build-id]: Forbidden: a pod of a Temporal build is not created by hand")))
		DeferCleanup(deletePod, "orders-worker-v7-5d4f8-x2x4q")
		_, err = kubectl(ctx, workerPodOf("orders-worker-v7-5d4f8-x2x4q", workerImageV7), "--as", replicaSetController, "create", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "set", "image", "pod/orders-worker-v7-5d4f8-x2x4q", "-n", namespace, "worker="+workerImageV8)
		Expect(err).To(MatchError(ContainSubstring("spec.containers[0].image: Forbidden: changed from")))
		// The edit role does not grant debug containers; clusters that let developers debug
		// grant them as this Role does.
		DeferCleanup(func(ctx context.Context) {
			_, err := kubectl(ctx, "", "delete", "role,rolebinding", "debugger", "-n", namespace, "--ignore-not-found")
			Expect(err).NotTo(HaveOccurred())
		})
		_, err = kubectl(ctx, "", "create", "role", "debugger", "-n", namespace, "--verb", "get,update,patch", "--resource", "pods/ephemeralcontainers")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "create", "rolebinding", "debugger", "-n", namespace, "--role", "debugger", "--user", "alice")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "debug", "orders-worker-v7-5d4f8-x2x4q", "-n", namespace, "--image", "busybox:1.37", "--container", "debugger", "--attach=false", "--profile=general")
		Expect(err).To(MatchError(ContainSubstring(`spec.ephemeralContainers[0]: Forbidden: ephemeral container "debugger" would run other code inside a pod of Temporal build "v7"`)))
		// A copy without the pod's labels is outside the build.
		DeferCleanup(deletePod, "orders-worker-debug-copy")
		_, err = kubectl(ctx, "", "--as", "alice", "debug", "orders-worker-v7-5d4f8-x2x4q", "-n", namespace, "--image", "busybox:1.37", "--copy-to", "orders-worker-debug-copy", "--container", "debugger", "--attach=false", "--profile=general")
		Expect(err).NotTo(HaveOccurred())
	})

	It("guards the records: nobody else may change them, and a cluster admin may delete one only once the build is gone", func(ctx SpecContext) {
		record := policy.BuildRecordName(namespace, "v7")
		_, err := kubectl(ctx, "", "--as", "alice", "get", "configmap", record, "-n", "iss-system")
		Expect(err).To(MatchError(ContainSubstring("forbidden")))
		_, err = kubectl(ctx, "", "label", "configmap", record, "-n", "iss-system", "x=y")
		Expect(err).To(MatchError(ContainSubstring("only iss-webhook may change it")))
		_, err = kubectl(ctx, "", "patch", "configmap", record, "-n", "iss-system", "--type", "merge", "-p", `{"data":{"codeHash":"sha256:0"}}`)
		Expect(err).To(MatchError(ContainSubstring("only iss-webhook may change it")))
		_, err = kubectl(ctx, "", "delete", "configmap", record, "-n", "iss-system")
		Expect(err).To(MatchError(ContainSubstring("Deployment(s) and ReplicaSet(s) of the build are still in team-a-dev")))
		forged := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: iss-system\n  labels: {%s: %s, %s: v9}\ndata: {codeHash: x}\n",
			policy.BuildRecordName(namespace, "v9"), policy.LabelBuildNamespace, namespace, policy.LabelBuildID)
		_, err = kubectl(ctx, forged, "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("only iss-webhook writes build records")))
	})

	It("holds a build id to its code after its Deployment is deleted, until the record is cleared", func(ctx SpecContext) {
		for _, d := range []string{name, "orders-worker-same"} {
			_, err := kubectl(ctx, "", "--as", "alice", "delete", "deployment", d, "-n", namespace, "--ignore-not-found")
			Expect(err).NotTo(HaveOccurred())
		}
		// Delete and create anew with other code: denied; with the recorded code: admitted.
		_, err := kubectl(ctx, temporalWorkerIn(namespace, name, "v7", "v7", workerImageV8), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("the recorded code of build iss.platform/build-id=v7 in namespace team-a-dev")))
		_, err = kubectl(ctx, temporalWorker(name, "v7", "v7"), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		// Once nothing of the build is left, a cluster admin may clear its record, and the build
		// id may stand for other code.
		for _, kind := range []string{"deployment/" + name, "replicaset/orders-worker-v7-5d4f8", "replicaset/orders-worker-v7-cur02", "replicaset/orders-worker-v7-0ld01"} {
			_, err := kubectl(ctx, "", "delete", kind, "-n", namespace, "--ignore-not-found")
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(func(ctx context.Context) error {
			_, err := kubectl(ctx, "", "delete", "configmap", policy.BuildRecordName(namespace, "v7"), "-n", "iss-system")
			return err
		}).WithContext(ctx).WithTimeout(60e9).WithPolling(500e6).Should(Succeed())
		_, err = kubectl(ctx, temporalWorkerIn(namespace, name, "v7", "v7", workerImageV8), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(buildRecord(ctx, namespace, "v7")["data"]).To(HaveKeyWithValue("code", ContainSubstring(workerImageV8)))
	})
})
