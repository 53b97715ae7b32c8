package e2e

import (
	"encoding/json"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func hpa(name, metrics string) string {
	return hpaOf(name, "Deployment", "engine-pool", metrics)
}

// hpaOf renders an autoscaling/v2 HPA of the suite's namespace that scales the apps/v1 kind and
// name, with the rest of its spec (metrics, behavior) as YAML indented by two.
func hpaOf(name, kind, target, rest string) string {
	return fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: %s
  namespace: %s
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: %s
    name: %s
  minReplicas: 1
  maxReplicas: 20
%s`, name, namespace, kind, target, rest)
}

// hpaV1 renders an autoscaling/v1 HPA of the suite's namespace that scales engine-pool, with
// the given annotations and the rest of its spec.
func hpaV1(name, annotations, rest string) string {
	return fmt.Sprintf(`apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: %s
  namespace: %s
  annotations: {%s}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: engine-pool
  maxReplicas: 20
%s`, name, namespace, annotations, rest)
}

const (
	// cpuMetric is a 10% CPU metric, as metrics YAML.
	cpuMetric = `    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 10
`
	// saturationMetric is the policy's saturation metric of engine-pool, as metrics YAML.
	saturationMetric = `    - type: External
      external:
        metric:
          name: gos_saturation
          selector:
            matchLabels: {workload: engine-pool}
        target: {type: Value, value: 800m}
`
)

// hpaSpec reads the spec of an HPA of the suite's namespace, as autoscaling/v2.
func hpaSpec(ctx SpecContext, name string) map[string]any {
	GinkgoHelper()
	out, err := kubectl(ctx, "", "get", "horizontalpodautoscalers.v2.autoscaling", name, "-n", namespace, "-o", "jsonpath={.spec}")
	Expect(err).NotTo(HaveOccurred())
	var spec map[string]any
	Expect(json.Unmarshal([]byte(out), &spec)).To(Succeed())
	return spec
}

// theSaturationMetric is the saturation metric of engine-pool as the API server returns it.
var theSaturationMetric = []any{map[string]any{"type": "External", "external": map[string]any{
	"metric": map[string]any{"name": "gos_saturation", "selector": map[string]any{"matchLabels": map[string]any{"workload": "engine-pool"}}},
	"target": map[string]any{"type": "Value", "value": "800m"},
}}}

// thePolicyScaleUp is the default policy's scaleUp as the API server returns it.
var thePolicyScaleUp = map[string]any{"stabilizationWindowSeconds": float64(0), "selectPolicy": "Min", "policies": []any{
	map[string]any{"type": "Percent", "value": float64(100), "periodSeconds": float64(60)},
	map[string]any{"type": "Pods", "value": float64(4), "periodSeconds": float64(60)},
}}

var _ = Describe("HorizontalPodAutoscalers", func() {
	It("gives an HPA without metrics the GOS saturation metric and limits against thundering herds", func(ctx SpecContext) {
		DeferCleanup(deleteIn("hpa", namespace), "hpa-defaulted")
		_, err := kubectl(ctx, hpa("hpa-defaulted", ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		spec := hpaSpec(ctx, "hpa-defaulted")
		Expect(spec["metrics"]).To(Equal(theSaturationMetric))
		Expect(spec["behavior"]).To(HaveKeyWithValue("scaleDown", HaveKeyWithValue("stabilizationWindowSeconds", float64(300))))
		Expect(spec["behavior"]).To(HaveKeyWithValue("scaleUp", thePolicyScaleUp))
	})

	It("covers autoscaling/v1 HPAs: the API server converts them for the webhook (matchPolicy Equivalent)", func(ctx SpecContext) {
		_, err := kubectl(ctx, hpaV1("hpa-v1-cpu", "", "  targetCPUUtilizationPercentage: 50\n"), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("gos_saturation")))

		By("metrics and behavior in the v1 annotations, which the API server converts into the spec")
		_, err = kubectl(ctx, hpaV1("hpa-v1-annotated",
			`autoscaling.alpha.kubernetes.io/metrics: '[{"type":"Resource","resource":{"name":"cpu","targetAverageUtilization":10}}]'`, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.metrics[0]: Forbidden: Resource metric cpu beside the saturation metric")))
		_, err = kubectl(ctx, hpaV1("hpa-v1-annotated",
			`autoscaling.alpha.kubernetes.io/behavior: '{"ScaleUp":{"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":100,"PeriodSeconds":15}]}}'`, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.behavior.scaleUp.policies")))

		By("a v1 HPA without a CPU target gets the saturation metric and the policy's scaleUp")
		DeferCleanup(deleteIn("hpa", namespace), "hpa-v1-bare")
		_, err = kubectl(ctx, hpaV1("hpa-v1-bare", "", ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		spec := hpaSpec(ctx, "hpa-v1-bare")
		Expect(spec["metrics"]).To(Equal(theSaturationMetric))
		Expect(spec["behavior"]).To(HaveKeyWithValue("scaleUp", thePolicyScaleUp))
		By("and a v1 update that sets a CPU target is denied")
		_, err = kubectl(ctx, "", "--as", "alice", "patch", "horizontalpodautoscalers.v1.autoscaling", "hpa-v1-bare", "-n", namespace, "--type=merge", "-p", `{"spec":{"targetCPUUtilizationPercentage":10}}`)
		Expect(err).To(MatchError(ContainSubstring("Resource metric cpu beside the saturation metric")))
	})

	It("denies an HPA that scales on CPU only, naming the metric to add", func(ctx SpecContext) {
		_, err := kubectl(ctx, hpa("hpa-cpu", `  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 60
`), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.metrics: Required value: ISS-001 section 5 wants HPAs tuned on the GOS saturation signal: add the External metric gos_saturation with the selector {matchLabels: {workload: engine-pool}} and the target 800m`)))
	})

	It("denies a saturation metric that selects nothing at a target it never reaches, beside a CPU metric", func(ctx SpecContext) {
		_, err := kubectl(ctx, hpa("hpa-bypass", "  metrics:\n"+cpuMetric+strings.NewReplacer("workload: engine-pool", "workload: nothing", "800m", "1e6").Replace(saturationMetric)),
			"--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(
			ContainSubstring("spec.metrics[0]: Forbidden: Resource metric cpu beside the saturation metric"),
			ContainSubstring("spec.metrics[1].external.metric.selector: Invalid value: \"workload=nothing\""),
			ContainSubstring("set selector {matchLabels: {workload: engine-pool}}"),
			ContainSubstring("spec.metrics[1].external.target: Invalid value: \"{type: Value, value: 1M}\""),
			ContainSubstring("set target {type: Value, value: 800m}"),
		)))

		By("the saturation metric twice, and other metric types")
		_, err = kubectl(ctx, hpa("hpa-bypass", "  metrics:\n"+saturationMetric+saturationMetric+`    - type: Pods
      pods:
        metric: {name: requests_per_second}
        target: {type: AverageValue, averageValue: "1"}
`), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("spec.metrics[1]: Forbidden: the saturation metric is listed once"), ContainSubstring("spec.metrics[2]: Forbidden: Pods metric requests_per_second"))))
	})

	It("fills in the selector and target of a saturation metric that names only the metric", func(ctx SpecContext) {
		DeferCleanup(deleteIn("hpa", namespace), "hpa-named")
		_, err := kubectl(ctx, hpa("hpa-named", "  metrics:\n    - type: External\n      external:\n        metric: {name: gos_saturation}\n"), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(hpaSpec(ctx, "hpa-named")["metrics"]).To(Equal(theSaturationMetric))
	})

	It("judges every update and patch as a new HPA: swapped metrics, a new target, a faster scaleUp", func(ctx SpecContext) {
		DeferCleanup(deleteIn("hpa", namespace), "hpa-edited")
		_, err := kubectl(ctx, hpa("hpa-edited", ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		patch := func(kind, body string) error {
			_, err := kubectl(ctx, "", "--as", "alice", "patch", "hpa", "hpa-edited", "-n", namespace, "--type="+kind, "-p", body)
			return err
		}
		Expect(patch("merge", `{"spec":{"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":10}}}]}}`)).
			To(MatchError(ContainSubstring("spec.metrics[0]: Forbidden: Resource metric cpu")))
		Expect(patch("json", `[{"op":"add","path":"/spec/metrics/-","value":{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":10}}}}]`)).
			To(MatchError(ContainSubstring("spec.metrics[1]: Forbidden: Resource metric cpu")))
		Expect(patch("json", `[{"op":"replace","path":"/spec/metrics/0/external/metric/selector/matchLabels/workload","value":"idle"}]`)).
			To(MatchError(ContainSubstring("spec.metrics[0].external.metric.selector")))
		Expect(patch("json", `[{"op":"replace","path":"/spec/metrics/0/external/target/value","value":"1e6"}]`)).
			To(MatchError(ContainSubstring("spec.metrics[0].external.target")))
		Expect(patch("merge", `{"spec":{"scaleTargetRef":{"name":"billing"}}}`)).
			To(MatchError(ContainSubstring("set selector {matchLabels: {workload: billing}}")))
		Expect(patch("merge", `{"spec":{"scaleTargetRef":{"kind":"ReplicaSet"}}}`)).
			To(MatchError(ContainSubstring("spec.scaleTargetRef.kind: Forbidden: HPAs in app namespaces scale Deployment.apps, StatefulSet.apps, and ReplicaSet.apps")))
		Expect(patch("merge", `{"spec":{"behavior":{"scaleUp":{"selectPolicy":"Max","policies":[{"type":"Pods","value":100,"periodSeconds":15}]}}}}`)).
			To(MatchError(ContainSubstring("spec.behavior.scaleUp.policies: Invalid value")))
		Expect(patch("merge", `{"spec":{"behavior":{"scaleUp":{"stabilizationWindowSeconds":0,"selectPolicy":"Max"}}}}`)).
			To(MatchError(ContainSubstring("faster than 4 pods per 60s: with selectPolicy Max")))

		By("a patch that removes the scaleUp or the whole behavior gets the policy's back")
		Expect(patch("json", `[{"op":"remove","path":"/spec/behavior/scaleUp"}]`)).To(Succeed())
		Expect(hpaSpec(ctx, "hpa-edited")["behavior"]).To(HaveKeyWithValue("scaleUp", thePolicyScaleUp))
		Expect(patch("json", `[{"op":"remove","path":"/spec/behavior"}]`)).To(Succeed())
		Expect(hpaSpec(ctx, "hpa-edited")["behavior"]).To(HaveKeyWithValue("scaleUp", thePolicyScaleUp))
		By("a slower scaleUp, or none, is the HPA's to choose")
		Expect(patch("merge", `{"spec":{"behavior":{"scaleUp":{"stabilizationWindowSeconds":120,"selectPolicy":"Min","policies":[{"type":"Pods","value":1,"periodSeconds":60}]}}}}`)).To(Succeed())
		Expect(patch("merge", `{"spec":{"behavior":{"scaleUp":{"selectPolicy":"Disabled"}}}}`)).To(Succeed())

		By("the status subresource is not the edit role's, and even an admin's status patch cannot change the spec")
		out, _ := kubectl(ctx, "", "auth", "can-i", "patch", "horizontalpodautoscalers", "--subresource=status", "-n", namespace, "--as", "alice")
		Expect(strings.TrimSpace(out)).To(Equal("no"))
		_, err = kubectl(ctx, "", "patch", "hpa", "hpa-edited", "-n", namespace, "--subresource=status", "--type=merge", "-p",
			`{"spec":{"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":10}}}]}}`)
		Expect(err).NotTo(HaveOccurred())
		Expect(hpaSpec(ctx, "hpa-edited")["metrics"]).To(Equal(theSaturationMetric))
		_, err = kubectl(ctx, "", "patch", "horizontalpodautoscalers.v1.autoscaling", "hpa-edited", "-n", namespace, "--subresource=status", "--type=merge", "-p",
			`{"metadata":{"annotations":{"autoscaling.alpha.kubernetes.io/metrics":"[{\"type\":\"Resource\",\"resource\":{\"name\":\"cpu\",\"targetAverageUtilization\":10}}]"}}}`)
		Expect(err).NotTo(HaveOccurred())
		Expect(hpaSpec(ctx, "hpa-edited")["metrics"]).To(Equal(theSaturationMetric))
	})

	It("denies a scale target of a kind the policy does not name, and a name no label can carry", func(ctx SpecContext) {
		_, err := kubectl(ctx, hpaOf("hpa-rs", "ReplicaSet", "engine-pool", ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.scaleTargetRef.kind: Forbidden: HPAs in app namespaces scale Deployment.apps, StatefulSet.apps")))
		long := strings.Repeat("a", 64)
		_, err = kubectl(ctx, hpaOf("hpa-long", "Deployment", long, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("spec.scaleTargetRef.name: Invalid value: \"" + long + "\"")))
	})

	It("admits the metrics and the scale-up the ISSPolicy allows", func(ctx SpecContext) {
		DeferCleanup(func(ctx SpecContext) { applyPolicy(ctx, suitePolicy()) })
		// kubectl apply merges into the policy in force, whose defaults the API server filled in:
		// a limit of the default bound is left out by setting it to null.
		applyPolicy(ctx, suitePolicy()+"autoscaling:\n  allowedMetrics: [{type: Resource, name: cpu}]\n  maxScaleUp: {pods: 10, percent: null}\n")
		DeferCleanup(deleteIn("hpa", namespace), "hpa-allowed")
		_, err := kubectl(ctx, hpa("hpa-allowed", "  metrics:\n"+saturationMetric+cpuMetric+
			"  behavior:\n    scaleUp:\n      policies: [{type: Pods, value: 5, periodSeconds: 30}]\n"), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "--as", "alice", "patch", "hpa", "hpa-allowed", "-n", namespace, "--type=merge", "-p",
			`{"spec":{"behavior":{"scaleUp":{"policies":[{"type":"Pods","value":6,"periodSeconds":30}]}}}}`)
		Expect(err).To(MatchError(ContainSubstring("within 10 pods per 60s")))
	})
})
