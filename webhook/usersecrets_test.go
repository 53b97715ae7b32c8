package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// alicesSecrets: Secret s of team-a-dev is alice's; pod alices uses it.
type alicesSecrets struct{}

func (alicesSecrets) SecretUsers(_ context.Context, namespace, name string) ([]string, error) {
	if namespace == "team-a-dev" && name == "s" {
		return []string{"alice"}, nil
	}
	return nil, nil
}

func (alicesSecrets) PrivateSecrets(context.Context, string) (map[string][]string, error) {
	return map[string][]string{"s": {"alice"}}, nil
}

func (alicesSecrets) SecretReaders(context.Context, string, string) ([]policy.SecretReader, error) {
	return nil, nil
}

func (alicesSecrets) Watching(context.Context, string) error { return nil }

func (alicesSecrets) Pod(_ context.Context, namespace, name string) (policy.CachedPod, bool, error) {
	if namespace == "team-a-dev" && name == "alices" {
		return policy.CachedPod{Name: name, Owner: "alice", Secrets: []string{"s"}}, true, nil
	}
	return policy.CachedPod{}, false, nil
}

func (alicesSecrets) PodsReferencing(context.Context, string, string) ([]policy.CachedPod, error) {
	return nil, nil
}

// TestConnectReviews: exec, attach and port-forward reviews name the kind of their options, not
// Pod; they reach the pods' rule, which judges the cached pod.
func TestConnectReviews(t *testing.T) {
	exempt := policy.Default()
	exempt.ExemptNamespaces = []string{"legacy"}
	h := Handlers(NewScheme(), Options{Policies: policy.NewHolder(exempt), Metrics: testMetrics(t), PrivateSecrets: alicesSecrets{}, Pods: alicesSecrets{}})[ValidateUserSecretPodsPath]
	podName := "alices"
	connect := func(kind, sub, namespace, user string) admission.Response {
		raw, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": kind, "command": []string{"cat", "/s/k"}})
		return h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: admissionv1.Connect, Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, SubResource: sub,
			Namespace: namespace, Name: podName, UserInfo: authenticationv1.UserInfo{Username: user},
			Object: runtime.RawExtension{Raw: raw},
		}})
	}
	for _, tc := range []struct {
		kind, sub string
	}{{"PodExecOptions", "exec"}, {"PodAttachOptions", "attach"}, {"PodPortForwardOptions", "portforward"}, {"PodProxyOptions", "proxy"}} {
		resp := connect(tc.kind, tc.sub, "team-a-dev", "bob")
		if resp.Allowed || resp.Result.Code != http.StatusForbidden || !strings.Contains(resp.Result.Message, `"s" (private to "alice")`) {
			t.Errorf("bob's %s into alice's pod: %+v", tc.sub, resp.Result)
		}
		if resp := connect(tc.kind, tc.sub, "team-a-dev", "alice"); !resp.Allowed {
			t.Errorf("alice's %s into her pod was denied: %+v", tc.sub, resp.Result)
		}
	}
	// A proxy names the pod as [scheme:]name[:port].
	for _, podName = range []string{"alices:8080", "https:alices:8443"} {
		if resp := connect("PodProxyOptions", "proxy", "team-a-dev", "bob"); resp.Allowed {
			t.Errorf("bob's proxy to %s was admitted", podName)
		}
	}
	podName = "alices"
	if resp := connect("PodExecOptions", "exec", "legacy", "bob"); !resp.Allowed {
		t.Errorf("a connect in an exempt namespace was denied: %+v", resp.Result)
	}
	if resp := connect("PodExecOptions", "log", "team-a-dev", "bob"); !resp.Allowed {
		t.Errorf("a subresource the configurations do not send was denied: %+v", resp.Result)
	}
}

// TestWorkloadOwnerPatch: the mutating workloads webhook records the owner of a template that
// references a Secret, in a patch the API server applies.
func TestWorkloadOwnerPatch(t *testing.T) {
	h := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t)})[MutateWorkloadsPath]
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "team-a-dev"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "busybox", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}},
		}}}}},
	}
	raw, _ := json.Marshal(d)
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		Namespace: "team-a-dev", UserInfo: authenticationv1.UserInfo{Username: "bob"}, Object: runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed || len(resp.Patches) != 1 || resp.Patches[0].Path != "/spec/template/metadata/annotations" {
		t.Fatalf("response %+v, patches %+v; want the owner added to the template", resp.Result, resp.Patches)
	}
	if v, _ := resp.Patches[0].Value.(map[string]any); v[policy.AnnotationInitiatorID] != "bob" {
		t.Errorf("patch value %v, want the owner bob", resp.Patches[0].Value)
	}
}
