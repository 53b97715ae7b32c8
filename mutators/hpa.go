package mutators

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/iss-platform/iss-webhook/policy"
)

// HPADefaults fills in what an HPA leaves to the policy (ISS-001 section 5): without metrics,
// the GOS saturation metric of its scale target; on a saturation metric without selector or
// target, the policy's; without behavior, the policy's scaling limits, and without scaleUp in
// its behavior, the policy's scaleUp. What the HPA sets is kept: the validating webhook denies
// what differs from the policy.
//
// The API server fills in missing metrics with 80% CPU and a missing scaleUp with its own
// rules (4 pods or 100% every 15s) before any webhook sees the HPA, so exactly those are taken
// for "not set". The API server sends autoscaling/v1 HPAs converted, without that defaulting:
// they arrive without metrics or scaleUp instead.
func HPADefaults(hpa *autoscalingv2.HorizontalPodAutoscaler, a *policy.AutoscalingPolicy) bool {
	changed := false
	target := hpa.Spec.ScaleTargetRef.Name
	if len(hpa.Spec.Metrics) == 0 || isAPIServerDefaultMetric(hpa.Spec.Metrics) {
		hpa.Spec.Metrics = []autoscalingv2.MetricSpec{a.SaturationMetric(target)}
		changed = true
	}
	for i := range hpa.Spec.Metrics {
		id, t, ok := a.SaturationEntry(&hpa.Spec.Metrics[i])
		if !ok {
			continue
		}
		if id.Selector == nil {
			id.Selector = a.SaturationSelector(target)
			changed = true
		}
		if *t == (autoscalingv2.MetricTarget{}) {
			*t = a.SaturationTarget()
			changed = true
		}
	}
	switch b := hpa.Spec.Behavior; {
	case b == nil:
		hpa.Spec.Behavior = a.Behavior.DeepCopy()
		changed = true
	case a.Behavior.ScaleUp != nil && (b.ScaleUp == nil || isAPIServerDefaultScaleUp(b.ScaleUp)) && !equality.Semantic.DeepEqual(b.ScaleUp, a.Behavior.ScaleUp):
		b.ScaleUp = a.Behavior.ScaleUp.DeepCopy()
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

// isAPIServerDefaultScaleUp tells whether scale-up rules are what the API server sets when an
// HPA's behavior has none.
func isAPIServerDefaultScaleUp(rules *autoscalingv2.HPAScalingRules) bool {
	return equality.Semantic.DeepEqual(*rules, policy.APIServerScaleUpRules())
}
