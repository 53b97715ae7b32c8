package policy

import (
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// AutoscalingPolicy is the part of the policy about HorizontalPodAutoscalers (ISS-001 section
// 5): they scale on the GOS saturation signal, with limits against thundering herds.
type AutoscalingPolicy struct {
	// MetricType is External (a metric of the workload as a whole, the default) or Pods (a
	// per-pod metric, averaged).
	MetricType autoscalingv2.MetricSourceType
	// MetricName is the metric of the saturation signal.
	MetricName string
	// SelectorLabel is the label of the metric whose value is the HPA's scale target name.
	SelectorLabel string
	// Target is the metric value the HPA keeps the workload at.
	Target resource.Quantity
	// Behavior is what an HPA without behavior gets.
	Behavior autoscalingv2.HorizontalPodAutoscalerBehavior
}

// DefaultAutoscalingPolicy scales on the External metric gos_saturation{workload=<target>} at
// 800m, scaling up by at most 100% or 4 pods a minute (whichever is less) and down after 300s of
// stable low saturation.
func DefaultAutoscalingPolicy() AutoscalingPolicy {
	return AutoscalingPolicy{
		MetricType:    autoscalingv2.ExternalMetricSourceType,
		MetricName:    "gos_saturation",
		SelectorLabel: "workload",
		Target:        resource.MustParse("800m"),
		Behavior: autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To[int32](0),
				SelectPolicy:               ptr.To(autoscalingv2.MinChangePolicySelect),
				Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 60},
					{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 60},
				},
			},
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](300)},
		},
	}
}

// SaturationMetric returns the saturation metric for an HPA's scale target.
func (a *AutoscalingPolicy) SaturationMetric(workload string) autoscalingv2.MetricSpec {
	value := a.Target.DeepCopy()
	id := autoscalingv2.MetricIdentifier{Name: a.MetricName, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{a.SelectorLabel: workload}}}
	if a.MetricType == autoscalingv2.PodsMetricSourceType {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: id, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &value}}}
	}
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Metric: id, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: &value}}}
}

// identifier returns the metric a spec names, when it is of the policy's type.
func (a *AutoscalingPolicy) identifier(m autoscalingv2.MetricSpec) *autoscalingv2.MetricIdentifier {
	switch {
	case m.Type != a.MetricType:
		return nil
	case m.Type == autoscalingv2.ExternalMetricSourceType && m.External != nil:
		return &m.External.Metric
	case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil:
		return &m.Pods.Metric
	}
	return nil
}

// ValidateHPA denies an HPA that does not scale on the saturation metric of its own target.
func (a *AutoscalingPolicy) ValidateHPA(hpa *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	target := hpa.Spec.ScaleTargetRef.Name
	for _, m := range hpa.Spec.Metrics {
		if id := a.identifier(m); id != nil && id.Name == a.MetricName && id.Selector != nil && id.Selector.MatchLabels[a.SelectorLabel] == target {
			return nil
		}
	}
	return field.ErrorList{field.Required(field.NewPath("spec", "metrics"), fmt.Sprintf(
		"ISS-001 section 5 wants HPAs tuned on the GOS saturation signal: add the %s metric %s with the selector {matchLabels: {%s: %s}} and the target %s, or leave metrics out to have it filled in",
		a.MetricType, a.MetricName, a.SelectorLabel, target, a.Target.String()))}
}
