package e2e

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func temporalWorker(name, build, tmplBuild string) string {
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
      app: %s
  template:
    metadata:
      labels:
        app: %s
        iss.platform/build-id: "%s"
    spec:
      containers:
        - name: worker
          image: registry.example.org/orders-worker:v7
          args: ["--task-queue", "orders"]
          env:
            - name: TEMPORAL_ADDRESS
              value: temporal-frontend.temporal:7233
`, name, namespace, build, name, name, tmplBuild)
}

var _ = Describe("Temporal workers", Ordered, func() {
	const name = "orders-worker-v7"
	BeforeAll(func(ctx SpecContext) {
		_, err := kubectl(ctx, temporalWorker(name, "v7", "v7"), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(deleteIn("deployment", namespace), name)
	})

	It("denies a worker whose pod template serves another build", func(ctx SpecContext) {
		_, err := kubectl(ctx, temporalWorker("orders-worker-bad", "v7", "v6"), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.metadata.labels[iss.platform/build-id]: Invalid value: "v6": must equal the Deployment's iss.platform/build-id "v7"`)))
	})

	It("denies kubectl set image, explaining blue/green", func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "--as", "alice", "set", "image", "deployment/"+name, "-n", namespace, "worker=registry.example.org/orders-worker:v8")
		Expect(err).To(MatchError(ContainSubstring("spec.template.spec.containers[0].image: Forbidden: image changed from registry.example.org/orders-worker:v7 to registry.example.org/orders-worker:v8: Temporal workers are deployed blue/green (ISS-001 section 5): deploy the new build as a new Deployment")))
	})

	It("denies changing the build id with kubectl label", func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "--as", "alice", "label", "deployment", name, "-n", namespace, "iss.platform/build-id=v8", "--overwrite")
		Expect(err).To(MatchError(ContainSubstring(`metadata.labels[iss.platform/build-id]: Forbidden: changed from "v7" to "v8"`)))
	})

	It("allows kubectl scale, kubectl rollout restart and other labels", func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "--as", "alice", "scale", "deployment", name, "-n", namespace, "--replicas", "5")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "rollout", "restart", "deployment/"+name, "-n", namespace)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "label", "deployment", name, "-n", namespace, "team=orders")
		Expect(err).NotTo(HaveOccurred())
	})
})
