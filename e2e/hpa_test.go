package e2e

import (
	"encoding/json"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func hpa(name, metrics string) string {
	return fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: %s
  namespace: %s
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: engine-pool
  minReplicas: 1
  maxReplicas: 20
%s`, name, namespace, metrics)
}

var _ = Describe("HorizontalPodAutoscalers", func() {
	It("gives an HPA without metrics the GOS saturation metric and limits against thundering herds", func(ctx SpecContext) {
		DeferCleanup(deleteIn("hpa", namespace), "hpa-defaulted")
		_, err := kubectl(ctx, hpa("hpa-defaulted", ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		out, err := kubectl(ctx, "", "get", "hpa", "hpa-defaulted", "-n", namespace, "-o", "jsonpath={.spec}")
		Expect(err).NotTo(HaveOccurred())
		var spec map[string]any
		Expect(json.Unmarshal([]byte(out), &spec)).To(Succeed())
		Expect(spec["metrics"]).To(Equal([]any{map[string]any{"type": "External", "external": map[string]any{
			"metric": map[string]any{"name": "gos_saturation", "selector": map[string]any{"matchLabels": map[string]any{"workload": "engine-pool"}}},
			"target": map[string]any{"type": "Value", "value": "800m"},
		}}}))
		Expect(spec["behavior"]).To(HaveKeyWithValue("scaleDown", HaveKeyWithValue("stabilizationWindowSeconds", float64(300))))
		Expect(spec["behavior"]).To(HaveKeyWithValue("scaleUp", HaveKeyWithValue("selectPolicy", "Min")))
	})

	It("covers autoscaling/v1 HPAs: the API server converts them for the webhook (matchPolicy Equivalent)", func(ctx SpecContext) {
		v1 := fmt.Sprintf(`apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: hpa-v1-cpu
  namespace: %s
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: engine-pool
  maxReplicas: 20
  targetCPUUtilizationPercentage: 50
`, namespace)
		_, err := kubectl(ctx, v1, "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring("gos_saturation")))
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
})
