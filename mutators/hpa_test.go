package mutators

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/iss-platform/iss-webhook/policy"
)

func TestHPADefaults(t *testing.T) {
	a := policy.Default().Autoscaling
	cpu80 := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}
	cpu60 := *cpu80.DeepCopy()
	cpu60.Resource.Target.AverageUtilization = ptr.To[int32](60)
	for _, tc := range []struct {
		name        string
		metrics     []autoscalingv2.MetricSpec
		wantMetrics []autoscalingv2.MetricSpec
	}{
		{"no metrics", nil, []autoscalingv2.MetricSpec{a.SaturationMetric("engine-pool")}},
		{"the API server's default", []autoscalingv2.MetricSpec{cpu80}, []autoscalingv2.MetricSpec{a.SaturationMetric("engine-pool")}},
		{"metrics the user chose are kept", []autoscalingv2.MetricSpec{cpu60}, []autoscalingv2.MetricSpec{cpu60}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "engine-pool"}, Metrics: tc.metrics}}
			if !HPADefaults(hpa, &a) {
				t.Fatal("nothing changed")
			}
			if !equality.Semantic.DeepEqual(hpa.Spec.Metrics, tc.wantMetrics) || !equality.Semantic.DeepEqual(*hpa.Spec.Behavior, a.Behavior) {
				t.Errorf("got metrics %+v, behavior %+v", hpa.Spec.Metrics, hpa.Spec.Behavior)
			}
			if HPADefaults(hpa, &a) {
				t.Error("not idempotent")
			}
		})
	}
}

func TestHPADefaultsWithAPodsMetric(t *testing.T) {
	a := policy.Default().Autoscaling
	a.MetricType, a.MetricName = autoscalingv2.PodsMetricSourceType, "queue_saturation"
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "w"}}}
	HPADefaults(hpa, &a)
	if m := hpa.Spec.Metrics[0]; m.Type != autoscalingv2.PodsMetricSourceType || m.Pods.Metric.Name != "queue_saturation" || m.Pods.Target.AverageValue.String() != "800m" {
		t.Fatalf("got %+v", m)
	}
	if errs := a.ValidateHPA(hpa); len(errs) > 0 {
		t.Errorf("its own metric denied: %v", errs)
	}
	if errs := policy.Default().Autoscaling.ValidateHPA(hpa); len(errs) != 1 {
		t.Error("a Pods metric passed an External policy")
	}
}
