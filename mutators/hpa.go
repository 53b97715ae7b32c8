package mutators

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

// HPADefaults gives an HPA without metrics the GOS saturation metric of its scale target, and an
// HPA without behavior the policy's scaling limits (ISS-001 section 5). What the HPA sets is
// kept; the validating webhook denies metrics without the saturation signal.
//
// The API server fills in missing metrics with 80% CPU before any webhook sees the HPA, so
// exactly that metric is taken for "no metrics".
func HPADefaults(hpa *autoscalingv2.HorizontalPodAutoscaler, a *policy.AutoscalingPolicy) bool {
	changed := false
	if len(hpa.Spec.Metrics) == 0 || isAPIServerDefaultMetric(hpa.Spec.Metrics) {
		hpa.Spec.Metrics = []autoscalingv2.MetricSpec{a.SaturationMetric(hpa.Spec.ScaleTargetRef.Name)}
		changed = true
	}
	if hpa.Spec.Behavior == nil {
		hpa.Spec.Behavior = a.Behavior.DeepCopy()
		changed = true
	}
	return changed
}

// isAPIServerDefaultMetric tells whether metrics are what the API server sets when an HPA has none.
func isAPIServerDefaultMetric(metrics []autoscalingv2.MetricSpec) bool {
	if len(metrics) != 1 {
		return false
	}
	m := metrics[0]
	return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
		m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil && *m.Resource.Target.AverageUtilization == 80
}
