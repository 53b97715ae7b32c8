package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
)

const namespace = "team-a-dev"

// enginePod renders an engine pod manifest as the official Dagger Helm chart would produce it,
// with extra metadata and container YAML (already indented) spliced in.
func enginePod(name, metadata, container string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels:
    name: dagger-dagger-helm-engine
%s
spec:
  containers:
    - name: dagger-engine
      image: registry.dagger.io/engine:v0.19.7
      securityContext:
        privileged: true
%s
`, name, namespace, metadata, container)
}

type resourceSet struct {
	Requests map[string]string `json:"requests"`
	Limits   map[string]string `json:"limits"`
}

func engineResources(ctx context.Context, name string) resourceSet {
	out, err := kubectl(ctx, "", "get", "pod", name, "-n", namespace, "-o", "jsonpath={.spec.containers[0].resources}")
	Expect(err).NotTo(HaveOccurred())
	var r resourceSet
	Expect(json.Unmarshal([]byte(out), &r)).To(Succeed())
	return r
}

func profileResources(cpuRequest, cpuLimit, memRequest, memLimit, storage string) resourceSet {
	return resourceSet{
		Requests: map[string]string{"cpu": cpuRequest, "memory": memRequest, "ephemeral-storage": storage},
		Limits:   map[string]string{"cpu": cpuLimit, "memory": memLimit, "ephemeral-storage": storage},
	}
}

// The API server prints quantities in canonical form: 2000m is "2".
var (
	standard        = profileResources("500m", "2", "1Gi", "4Gi", "10Gi")
	highPerformance = profileResources("2", "4", "4Gi", "8Gi", "50Gi")
)

func deletePod(ctx context.Context, name string) { deletePodIn(namespace)(ctx, name) }

// webhookMetrics scrapes the webhook's Prometheus metrics: the local webhook's directly; on a
// cluster, every replica's through the API server's pod proxy, one after the other, since any
// of them may have served the review a spec counts.
func webhookMetrics(ctx context.Context) string {
	GinkgoHelper()
	if localEnv == nil {
		var all strings.Builder
		for _, pod := range webhookPods(ctx) {
			out, err := kubectl(ctx, "", "get", "--raw", "/api/v1/namespaces/iss-system/pods/"+pod+":8080/proxy/metrics")
			Expect(err).NotTo(HaveOccurred())
			all.WriteString(out)
		}
		return all.String()
	}
	resp, err := http.Get(localEnv.MetricsURL)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return string(body)
}

var _ = Describe("Dagger engine pods", func() {
	It("fills in the standard profile for a pod of the official Dagger Helm chart", func(ctx SpecContext) {
		DeferCleanup(deletePod, "chart-standard")
		_, err := kubectl(ctx, enginePod("chart-standard", "", ""), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(engineResources(ctx, "chart-standard")).To(Equal(standard))
	})

	DescribeTable("recognises the chart's StatefulSet and DaemonSet pods without edits",
		func(ctx SpecContext, example, name string) {
			DeferCleanup(deletePod, name)
			// The examples' owner references name no live object: a cluster's garbage collector
			// deletes such a pod at once, so what the API server stored is read from the answer.
			out, err := kubectl(ctx, "", "apply", "-f", repoRoot+"/manifests/examples/"+example, "-o", "jsonpath={.spec.containers[0].resources}")
			Expect(err).NotTo(HaveOccurred())
			var got resourceSet
			Expect(json.Unmarshal([]byte(out), &got)).To(Succeed())
			Expect(got).To(Equal(standard))
		},
		Entry("StatefulSet flavour", "06-chart-statefulset-pod.yaml", "dagger-dagger-helm-engine-0"),
		Entry("DaemonSet flavour", "07-chart-daemonset-pod.yaml", "dagger-dagger-helm-engine-x7k2p"),
	)

	DescribeTable("recognises an unlabelled engine by the repository a registry client pulls, in any spelling",
		func(ctx SpecContext, name, image string) {
			DeferCleanup(deletePod, name)
			manifest := strings.Replace(enginePod(name, "", ""), "registry.dagger.io/engine:v0.19.7", image, 1)
			_, err := kubectl(ctx, manifest, "--as", "alice", "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred())
			Expect(engineResources(ctx, name)).To(Equal(standard), "the profile is filled in: the matchConditions sent it, and the webhook read it as an engine")
		},
		Entry("a port of leading zeros", "engine-port-0443", "registry.dagger.io:0443/engine:v0.19.7"),
		Entry("the host in upper case", "engine-upper-host", "REGISTRY.DAGGER.IO/engine:v0.19.7"),
		Entry("Dagger's mirror on ghcr.io", "engine-ghcr", "ghcr.io/dagger/engine:v0.19.7"),
	)

	It("fills in the high-performance profile and keeps the values that match it", func(ctx SpecContext) {
		DeferCleanup(deletePod, "chart-fast")
		manifest := enginePod("chart-fast", `  annotations:
    iss.platform/profile: high-performance`, `      resources:
        requests:
          cpu: 2000m`)
		_, err := kubectl(ctx, manifest, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(engineResources(ctx, "chart-fast")).To(Equal(highPerformance))
	})

	It("denies explicit values off the profile, naming the container, resource, value, profile value and fix", func(ctx SpecContext) {
		manifest := enginePod("chart-greedy", "", `      resources:
        requests:
          memory: 2Gi
        limits:
          cpu: "8"`)
		_, err := kubectl(ctx, manifest, "apply", "-f", "-")
		Expect(err).To(HaveOccurred())
		msg := err.Error()
		Expect(msg).To(ContainSubstring(`The Pod "chart-greedy" is invalid`))
		Expect(msg).To(ContainSubstring(`spec.containers[0].resources.limits[cpu]: Invalid value: "8": container "dagger-engine" sets cpu limit 8, but quota profile "standard" (ISS-001 section 4) fixes it at 2: set resources.limits.cpu to 2`))
		Expect(msg).To(ContainSubstring(`spec.containers[0].resources.requests[memory]: Invalid value: "2Gi"`))
		Expect(msg).To(ContainSubstring(`spec.containers[0].resources.requests[cpu]: Invalid value: "8"`), "the request Kubernetes copied from the limit")
		_, err = kubectl(ctx, "", "get", "pod", "chart-greedy", "-n", namespace)
		Expect(err).To(MatchError(ContainSubstring("NotFound")), "a denied pod is not stored")
	})

	It("denies an emptyDir larger than the profile's storage", func(ctx SpecContext) {
		manifest := enginePod("chart-big-cache", "", "") + `  volumes:
    - name: cache
      emptyDir:
        sizeLimit: 20Gi
`
		_, err := kubectl(ctx, manifest, "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.volumes[0].emptyDir.sizeLimit: Invalid value: "20Gi": emptyDir volume "cache" is larger than the 10Gi`)))
	})

	It("denies an engine in the host's namespaces and a helper with the engine's privileges, to an ordinary developer", func(ctx SpecContext) {
		hostNetwork := enginePod("chart-host-network", "", "") + "  hostNetwork: true\n  hostPID: true\n"
		_, err := kubectl(ctx, hostNetwork, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("spec.hostNetwork: Forbidden: engine pods may not set hostNetwork"), ContainSubstring("spec.hostPID: Forbidden"))))

		helper := enginePod("chart-privileged-helper", "", `    - name: helper
      image: busybox:1.37
      securityContext:
        privileged: true
        capabilities:
          add: [NET_ADMIN]`)
		_, err = kubectl(ctx, helper, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.containers[1].securityContext.privileged: Forbidden: container "helper" is not the engine`),
			ContainSubstring(`spec.containers[1].securityContext.capabilities.add: Forbidden`))))
	})

	It("denies resources the profile does not govern, on any container, to an ordinary developer", func(ctx SpecContext) {
		manifest := enginePod("chart-hugepages", "", `      resources:
        limits:
          hugepages-2Mi: 64Mi
          memory: 4Gi
    - name: helper
      image: busybox:1.37
      resources:
        limits:
          example.com/dongle: "8"`)
		_, err := kubectl(ctx, manifest, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring(`spec.containers[0].resources.limits[hugepages-2Mi]: Forbidden: container "dagger-engine" asks for 64Mi hugepages-2Mi, which quota profile "standard"`),
			ContainSubstring(`spec.containers[1].resources.limits[example.com/dongle]: Forbidden`))))
	})

	It("denies an unknown profile and lists the valid ones", func(ctx SpecContext) {
		manifest := enginePod("chart-turbo", `  annotations:
    iss.platform/profile: turbo`, "")
		_, err := kubectl(ctx, manifest, "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`metadata.annotations[iss.platform/profile]: Invalid value: "turbo": unknown quota profile; the policy defines "standard", "high-performance"`)))
	})

	It("never changes a pod that is not an engine", func(ctx SpecContext) {
		DeferCleanup(deletePod, "plain")
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: plain
  namespace: %s
spec:
  containers:
    - name: nginx
      image: nginx:1.29
      resources:
        limits:
          cpu: "64"
`, namespace)
		_, err := kubectl(ctx, manifest, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		r := engineResources(ctx, "plain")
		Expect(r.Limits).To(Equal(map[string]string{"cpu": "64"}))
		Expect(r.Requests).To(Equal(map[string]string{"cpu": "64"}), "only the API server's own defaulting")
	})

	It("returns the mutated pod on --dry-run=server and persists nothing", func(ctx SpecContext) {
		out, err := kubectl(ctx, enginePod("chart-dry", "", ""), "apply", "--dry-run=server", "-f", "-",
			"-o", "jsonpath={.spec.containers[0].resources}")
		Expect(err).NotTo(HaveOccurred())
		var r resourceSet
		Expect(json.Unmarshal([]byte(out), &r)).To(Succeed())
		Expect(r).To(Equal(standard))
		_, err = kubectl(ctx, "", "get", "pod", "chart-dry", "-n", namespace)
		Expect(err).To(MatchError(ContainSubstring("NotFound")))
	})

	It("denies an in-place resize that leaves the profile, and keeps the pod as it was", func(ctx SpecContext) {
		DeferCleanup(deletePod, "chart-resize")
		_, err := kubectl(ctx, enginePod("chart-resize", "", ""), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "patch", "pod", "chart-resize", "-n", namespace, "--subresource", "resize",
			"-p", `{"spec":{"containers":[{"name":"dagger-engine","resources":{"limits":{"cpu":"3"}}}]}}`)
		Expect(err).To(MatchError(ContainSubstring(`spec.containers[0].resources.limits[cpu]: Invalid value: "3"`)))
		Expect(engineResources(ctx, "chart-resize")).To(Equal(standard))
	})

	It("denies turning a plain pod into an engine with kubectl set image", func(ctx SpecContext) {
		DeferCleanup(deletePod, "plain-then-engine")
		_, err := kubectl(ctx, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: plain-then-engine
  namespace: %s
spec:
  containers:
    - name: main
      image: busybox:1.37
      resources:
        limits:
          cpu: "64"
`, namespace), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "set", "image", "pod/plain-then-engine", "-n", namespace, "main=registry.dagger.io/engine:v0.19.7")
		Expect(err).To(MatchError(ContainSubstring("this update makes the pod a Dagger engine")))
	})

	It("denies a debug container that runs the engine image, even to the cluster admin", func(ctx SpecContext) {
		DeferCleanup(deletePod, "chart-debugged")
		_, err := kubectl(ctx, enginePod("chart-debugged", "", ""), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "debug", "chart-debugged", "-n", namespace, "--image", "registry.dagger.io/engine:v0.19.7", "--attach=false", "--profile=general")
		Expect(err).To(MatchError(ContainSubstring(`spec.ephemeralContainers[0].image: Forbidden`)))
	})

	It("keeps ISS labels and annotations of admitted pods as they are, unless a trusted identity changes them", func(ctx SpecContext) {
		DeferCleanup(deletePod, "chart-labelled")
		_, err := kubectl(ctx, enginePod("chart-labelled", "", ""), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "label", "pod", "chart-labelled", "-n", namespace, "iss.platform/egress-policy=open", "--overwrite")
		Expect(err).To(MatchError(ContainSubstring(`metadata.labels[iss.platform/egress-policy]: Forbidden: label changed from`)))
		_, err = kubectl(ctx, "", "--as", "alice", "annotate", "pod", "chart-labelled", "-n", namespace, "iss.platform/profile=high-performance")
		Expect(err).To(MatchError(ContainSubstring(`metadata.annotations[iss.platform/profile]: Forbidden: annotation was added`)))
		_, err = kubectl(ctx, "", "--as", "alice", "label", "pod", "chart-labelled", "-n", namespace, "team=a")
		Expect(err).NotTo(HaveOccurred(), "other labels stay editable")
		_, err = kubectl(ctx, "", "label", "pod", "chart-labelled", "-n", namespace, "iss.platform/engine=dagger")
		Expect(err).NotTo(HaveOccurred(), "the cluster admin (system:masters) is trusted")
	})

	It("counts its decisions in Prometheus metrics", func(ctx SpecContext) {
		_, err := kubectl(ctx, enginePod("chart-counted", `  annotations:
    iss.platform/profile: turbo`, ""), "apply", "--dry-run=server", "-f", "-")
		Expect(err).To(HaveOccurred())
		body := webhookMetrics(ctx)
		Expect(body).To(MatchRegexp(`iss_admission_decisions_total\{decision="denied",mode="Enforce",resource="pods",rule="enginePods"\} [1-9]`))
		Expect(body).To(ContainSubstring(`controller_runtime_webhook_requests_total{code="200",webhook="/mutate-engine-pods"}`))
	})

	It("behaves as each example in manifests/examples says", func(ctx SpecContext) {
		examples, err := devenv.Examples(repoRoot + "/manifests/examples")
		Expect(err).NotTo(HaveOccurred())
		Expect(examples).NotTo(BeEmpty())
		for _, ex := range examples {
			if localEnv != nil && !localEnv.ProvisioningCRDs && strings.Contains(ex.Path, "pulumi") {
				GinkgoWriter.Printf("skipping %s: the Pulumi CRD is not installed\n", ex.Path)
				continue
			}
			// Server-side dry run: the full admission chain runs, nothing is stored, and the
			// examples that the table above applies for real do not collide.
			_, err := kubectl(ctx, "", "apply", "--dry-run=server", "-f", ex.Path)
			if ex.WantAdmitted {
				Expect(err).NotTo(HaveOccurred(), ex.Path)
			} else {
				Expect(err).To(MatchError(ContainSubstring("is invalid")), ex.Path)
			}
		}
	})
})

var _ = Describe("The control plane", func() {
	It("serves the CRDs of the objects the webhook governs, from their projects' own manifests", func(ctx SpecContext) {
		out, err := kubectl(ctx, "", "api-resources", "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		for _, crd := range []string{"externalsecrets.external-secrets.io", "pushsecrets.external-secrets.io",
			"secretstores.external-secrets.io", "clustersecretstores.external-secrets.io",
			"clusternetworkpolicies.policy.networking.k8s.io"} {
			Expect(strings.Split(out, "\n")).To(ContainElement(crd))
		}
		out, err = kubectl(ctx, "", "version", "-o", "json")
		Expect(err).NotTo(HaveOccurred())
		if localEnv != nil {
			Expect(out).To(ContainSubstring(`"gitVersion": "v1.37.2"`), "the server is the pinned kube-apiserver")
		}
	})
})
