package mutators

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/iss-platform/iss-webhook/policy"
)

func TestHPADefaults(t *testing.T) {
	a := policy.Default().Autoscaling
	cpu80 := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}
	cpu60 := *cpu80.DeepCopy()
	cpu60.Resource.Target.AverageUtilization = ptr.To[int32](60)
	saturation := a.SaturationMetric("engine-pool")
	bare := *saturation.DeepCopy()
	bare.External.Metric.Selector, bare.External.Target = nil, autoscalingv2.MetricTarget{}
	elsewhere := *saturation.DeepCopy()
	elsewhere.External.Metric.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"workload": "nothing"}}
	apiScaleUp := policy.APIServerScaleUpRules()
	scaleDown := &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}
	slow := &autoscalingv2.HPAScalingRules{SelectPolicy: ptr.To(autoscalingv2.MinChangePolicySelect), Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 300}}}
	for _, tc := range []struct {
		name         string
		metrics      []autoscalingv2.MetricSpec
		behavior     *autoscalingv2.HorizontalPodAutoscalerBehavior
		wantMetrics  []autoscalingv2.MetricSpec
		wantBehavior *autoscalingv2.HorizontalPodAutoscalerBehavior
		// valid: the result passes the validating rule.
		valid bool
	}{
		{"no metrics, no behavior", nil, nil, []autoscalingv2.MetricSpec{saturation}, &a.Behavior, true},
		{"the API server's default metric", []autoscalingv2.MetricSpec{cpu80}, nil, []autoscalingv2.MetricSpec{saturation}, &a.Behavior, true},
		{"metrics the user chose are kept", []autoscalingv2.MetricSpec{cpu60}, nil, []autoscalingv2.MetricSpec{cpu60}, &a.Behavior, false},
		{"a saturation metric without selector and target gets the policy's", []autoscalingv2.MetricSpec{bare}, nil, []autoscalingv2.MetricSpec{saturation}, &a.Behavior, true},
		{"a selector the user chose is kept", []autoscalingv2.MetricSpec{elsewhere}, nil, []autoscalingv2.MetricSpec{elsewhere}, &a.Behavior, false},
		{"the API server's scaleUp gets the policy's, scaleDown is kept", []autoscalingv2.MetricSpec{saturation},
			&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &apiScaleUp, ScaleDown: scaleDown},
			[]autoscalingv2.MetricSpec{saturation}, &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: a.Behavior.ScaleUp, ScaleDown: scaleDown}, true},
		{"no scaleUp (an autoscaling/v1 HPA's behavior annotation) gets the policy's", []autoscalingv2.MetricSpec{saturation},
			&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: scaleDown},
			[]autoscalingv2.MetricSpec{saturation}, &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: a.Behavior.ScaleUp, ScaleDown: scaleDown}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "engine-pool"},
				Metrics:        tc.metrics, Behavior: tc.behavior.DeepCopy()}}
			if !HPADefaults(hpa, &a) {
				t.Fatal("nothing changed")
			}
			if !equality.Semantic.DeepEqual(hpa.Spec.Metrics, tc.wantMetrics) || !equality.Semantic.DeepEqual(hpa.Spec.Behavior, tc.wantBehavior) {
				t.Errorf("got metrics %+v, behavior %+v", hpa.Spec.Metrics, hpa.Spec.Behavior)
			}
			if HPADefaults(hpa, &a) {
				t.Error("not idempotent")
			}
			if errs := a.ValidateHPA(hpa); (len(errs) == 0) != tc.valid {
				t.Errorf("valid = %v, want %v: %v", len(errs) == 0, tc.valid, errs)
			}
		})
	}

	t.Run("a scaleUp the user chose is kept", func(t *testing.T) {
		hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "engine-pool"},
			Metrics:        []autoscalingv2.MetricSpec{saturation}, Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: slow.DeepCopy(), ScaleDown: scaleDown}}}
		if HPADefaults(hpa, &a) {
			t.Errorf("changed to %+v", hpa.Spec)
		}
	})
}

func TestHPADefaultsWithAPodsMetric(t *testing.T) {
	a := policy.Default().Autoscaling
	a.MetricType, a.MetricName = autoscalingv2.PodsMetricSourceType, "queue_saturation"
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "w"}}}
	HPADefaults(hpa, &a)
	if m := hpa.Spec.Metrics[0]; m.Type != autoscalingv2.PodsMetricSourceType || m.Pods.Metric.Name != "queue_saturation" || m.Pods.Target.AverageValue.String() != "800m" {
		t.Fatalf("got %+v", m)
	}
	if errs := a.ValidateHPA(hpa); len(errs) > 0 {
		t.Errorf("its own metric denied: %v", errs)
	}
	if errs := policy.Default().Autoscaling.ValidateHPA(hpa); len(errs) != 2 {
		t.Errorf("a Pods metric passed an External policy: %v", errs)
	}
	// A Pods saturation metric without selector and target gets the policy's.
	hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "queue_saturation"}}}}
	HPADefaults(hpa, &a)
	if m := hpa.Spec.Metrics[0].Pods; m.Metric.Selector.MatchLabels["workload"] != "w" || m.Target.AverageValue.Cmp(resource.MustParse("0.8")) != 0 {
		t.Errorf("got %+v", m)
	}
}
