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
	// MetricName is the External metric of the saturation signal.
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
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ExternalMetricSourceType,
		External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: a.MetricName, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{a.SelectorLabel: workload}}},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: &value},
		},
	}
}

// ValidateHPA denies an HPA that does not scale on the saturation metric of its own target.
func (a *AutoscalingPolicy) ValidateHPA(hpa *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	target := hpa.Spec.ScaleTargetRef.Name
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ExternalMetricSourceType && m.External != nil && m.External.Metric.Name == a.MetricName &&
			m.External.Metric.Selector != nil && m.External.Metric.Selector.MatchLabels[a.SelectorLabel] == target {
			return nil
		}
	}
	return field.ErrorList{field.Required(field.NewPath("spec", "metrics"), fmt.Sprintf(
		"ISS-001 section 5 wants HPAs tuned on the GOS saturation signal: add the metric {type: External, external: {metric: {name: %s, selector: {matchLabels: {%s: %s}}}, target: {type: Value, value: %s}}}, or leave metrics out to have it filled in",
		a.MetricName, a.SelectorLabel, target, a.Target.String()))}
}
