package e2e

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// chartWorkload renders the engine workload of the official Dagger Helm chart, of kind
// StatefulSet or DaemonSet, with extra container YAML (already indented) and extra spec YAML.
func chartWorkload(kind, name, container, extraSpec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: %s
metadata:
  name: %s
  namespace: %s
  labels:
    app.kubernetes.io/name: dagger-helm
spec:
  selector:
    matchLabels:
      name: %s
  template:
    metadata:
      labels:
        name: %s
    spec:
      securityContext:
        runAsUser: 0
      containers:
        - name: dagger-engine
          image: registry.dagger.io/engine:v0.19.7
          securityContext:
            privileged: true
%s
%s`, kind, name, namespace, name, name, container, extraSpec)
}

var _ = Describe("Workloads that create engine pods", func() {
	It("admits the chart's DaemonSet and StatefulSet as they are, without mutating their templates", func(ctx SpecContext) {
		for _, kind := range []string{"DaemonSet", "StatefulSet"} {
			name := "chart-" + strings.ToLower(kind)
			DeferCleanup(deleteIn(strings.ToLower(kind), namespace), name)
			_, err := kubectl(ctx, chartWorkload(kind, name, "", ""), "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), kind)
			out, err := kubectl(ctx, "", "get", strings.ToLower(kind), name, "-n", namespace, "-o", "jsonpath={.spec.template.spec.containers[0].resources}")
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(Equal("{}"), "templates are validated, not mutated; their pods are mutated")
		}
	})

	It("fails a ReplicationController and a PodTemplate fast, like the other kinds with a pod template", func(ctx SpecContext) {
		// containers renders a pod spec's containers at the indentation of a template's spec.
		containers := func(indent, image, limits string) string {
			out := indent + "containers:\n" + indent + "  - name: dagger-engine\n" + indent + "    image: " + image + "\n"
			if limits != "" {
				out += indent + "    resources:\n" + indent + "      limits: " + limits + "\n"
			}
			return out
		}
		rc := func(name, image, limits string) string {
			return fmt.Sprintf("apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  replicas: 0\n  selector: {app: %s}\n  template:\n    metadata:\n      labels: {app: %s}\n    spec:\n%s",
				name, namespace, name, name, containers("      ", image, limits))
		}
		podTemplate := func(name, image, limits string) string {
			return fmt.Sprintf("apiVersion: v1\nkind: PodTemplate\nmetadata:\n  name: %s\n  namespace: %s\ntemplate:\n  spec:\n%s", name, namespace, containers("    ", image, limits))
		}
		engine := "registry.dagger.io/engine:v0.19.7"
		_, err := kubectl(ctx, rc("rc-greedy", engine, `{cpu: "64"}`), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.spec.containers[0].resources.limits[cpu]: Invalid value: "64"`)))
		// The edit role grants no PodTemplates; whoever may write them is checked, admins too.
		_, err = kubectl(ctx, podTemplate("template-greedy", engine, `{cpu: "64"}`), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`template.spec.containers[0].resources.limits[cpu]: Invalid value: "64"`)))

		DeferCleanup(deleteIn("replicationcontroller", namespace), "rc-engine")
		_, err = kubectl(ctx, rc("rc-engine", engine, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "an engine within its profile")
		DeferCleanup(deleteIn("podtemplate", namespace), "template-plain")
		_, err = kubectl(ctx, podTemplate("template-plain", "nginx:1.29", ""), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "a plain PodTemplate, which no matchCondition sends")
	})

	It("denies an off-profile chart StatefulSet at kubectl apply, with the field path inside the template", func(ctx SpecContext) {
		_, err := kubectl(ctx, chartWorkload("StatefulSet", "chart-greedy-sts", `          resources:
            limits:
              cpu: "8"`, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.template.spec.containers[0].resources.limits[cpu]: Invalid value: "8": container "dagger-engine" sets cpu limit 8`)))
	})

	It("denies a volume claim template larger than the profile's storage", func(ctx SpecContext) {
		_, err := kubectl(ctx, chartWorkload("StatefulSet", "chart-big-claim", `          volumeMounts:
            - name: data
              mountPath: /var/lib/dagger`, `  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: ["ReadWriteOnce"]
        resources:
          requests:
            storage: 100Gi
`), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.volumeClaimTemplates[0].spec.resources.requests[storage]: Invalid value: "100Gi": the volume claims of an engine pod ask for 100Gi in all`)))
	})

	It("denies a CronJob whose engine asks for an unknown profile", func(ctx SpecContext) {
		_, err := kubectl(ctx, fmt.Sprintf(`apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-build
  namespace: %s
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            iss.platform/profile: turbo
        spec:
          restartPolicy: Never
          containers:
            - name: dagger-engine
              image: registry.dagger.io/engine:v0.19.7
`, namespace), "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.jobTemplate.spec.template.metadata.annotations[iss.platform/profile]: Invalid value: "turbo": unknown quota profile`)))
	})
})
