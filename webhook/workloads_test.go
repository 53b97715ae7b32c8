package webhook

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

func TestWorkloadUpdates(t *testing.T) {
	v := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t)})[ValidateWorkloadsPath].Handler
	// An engine Deployment admitted before the policy fixed its cpu limit at 2.
	old := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "engines", Namespace: "team-a-dev"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")}},
		}}}}},
	}
	scaled := old.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](0)
	retagged := old.DeepCopy()
	retagged.Spec.Template.Spec.Containers[0].Image = "registry.dagger.io/engine:v0.19.8"
	req := func(o, c *appsv1.Deployment) admission.Request {
		oldRaw, _ := json.Marshal(o)
		curRaw, _ := json.Marshal(c)
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: admissionv1.Update, Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			Object: runtime.RawExtension{Raw: curRaw}, OldObject: runtime.RawExtension{Raw: oldRaw}}}
	}
	if resp := v.Handle(context.Background(), req(old, scaled)); !resp.Allowed {
		t.Errorf("an update that leaves the template as it was was denied: %+v", resp.Result)
	}
	if resp := v.Handle(context.Background(), req(old, retagged)); resp.Allowed {
		t.Error("a template change was not checked")
	}
}
