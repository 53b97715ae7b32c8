package mutators

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

func podUsing(secret string, annotations map[string]string) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}
	if secret != "" {
		pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}}
	}
	return pod
}

// TestDefaultPodOwner: a pod that references a Secret gets its creator as owner, unless it names
// one, or its creator is trusted or a controller copying a template; other pods are left alone.
func TestDefaultPodOwner(t *testing.T) {
	for _, tc := range []struct {
		name  string
		req   *policy.Request
		pod   *corev1.Pod
		owner string
	}{
		{"a pod that takes env from a Secret", &policy.Request{Operation: policy.Create, User: "alice"}, podUsing("s", nil), "alice"},
		{"a pod that names its owner", &policy.Request{Operation: policy.Create, User: "alice"}, podUsing("s", map[string]string{policy.AnnotationInitiatorID: "bob"}), "bob"},
		{"a pod without Secrets", &policy.Request{Operation: policy.Create, User: "alice"}, podUsing("", nil), ""},
		{"a pod of a ReplicaSet", &policy.Request{Operation: policy.Create, User: "system:serviceaccount:kube-system:replicaset-controller"}, podUsing("s", nil), ""},
		{"a pod of a trusted identity", &policy.Request{Operation: policy.Create, User: "admin", Trusted: true}, podUsing("s", nil), ""},
		{"an engine with a secret key", &policy.Request{Operation: policy.Create, User: "alice"}, func() *corev1.Pod {
			p := podUsing("", map[string]string{policy.AnnotationSecrets: "API_TOKEN"})
			p.Spec.Containers[0] = corev1.Container{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7"}
			return p
		}(), "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := DefaultPodOwner(context.Background(), policy.Default(), tc.req, tc.pod, nil)
			if out.Mutate != nil {
				out.Mutate()
			}
			if got := tc.pod.Annotations[policy.AnnotationInitiatorID]; got != tc.owner {
				t.Errorf("owner %q, want %q", got, tc.owner)
			}
			if needsOwner(policy.Default(), tc.req, &tc.pod.ObjectMeta, &tc.pod.Spec) {
				t.Error("the mutated pod still needs an owner: the mutation is not idempotent")
			}
		})
	}
}

// TestDefaultWorkloadOwner: a template that references a Secret gets its writer as owner, or on
// update the one it had, when an apply dropped it.
func TestDefaultWorkloadOwner(t *testing.T) {
	deployment := func(secret string, annotations map[string]string) *appsv1.Deployment {
		pod := podUsing(secret, annotations)
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}}}
	}
	alices := map[string]string{policy.AnnotationInitiatorID: "alice"}
	for _, tc := range []struct {
		name     string
		req      *policy.Request
		obj, old *appsv1.Deployment
		owner    string
	}{
		{"created", &policy.Request{Operation: policy.Create, User: "bob"}, deployment("s", nil), nil, "bob"},
		{"created without Secrets", &policy.Request{Operation: policy.Create, User: "bob"}, deployment("", nil), nil, ""},
		{"a Secret added on update", &policy.Request{Operation: policy.Update, User: "bob"}, deployment("s", nil), deployment("", nil), "bob"},
		{"an apply that drops the owner", &policy.Request{Operation: policy.Update, User: "bob"}, deployment("s", nil), deployment("s", alices), "alice"},
		{"kept", &policy.Request{Operation: policy.Update, User: "bob"}, deployment("s", alices), deployment("s", alices), "alice"},
		{"the Deployment controller's ReplicaSet", &policy.Request{Operation: policy.Create, User: "system:serviceaccount:kube-system:deployment-controller"}, deployment("s", nil), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var old metav1.Object
			if tc.old != nil {
				old = tc.old
			}
			if out := DefaultWorkloadOwner(context.Background(), policy.Default(), tc.req, tc.obj, old); out.Mutate != nil {
				out.Mutate()
			}
			if got := tc.obj.Spec.Template.Annotations[policy.AnnotationInitiatorID]; got != tc.owner {
				t.Errorf("owner %q, want %q", got, tc.owner)
			}
		})
	}
}
