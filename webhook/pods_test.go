package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func handlers(t testing.TB) (mutating, validating admission.Handler) {
	t.Helper()
	hs := Handlers(testScheme(t), policy.NewHolder(policy.Default()), testMetrics(t))
	return hs[MutateEnginePodsPath].Handler, hs[ValidateEnginePodsPath].Handler
}

func chartEnginePod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "dagger-engine-0", Namespace: "team-a-dev", Labels: map[string]string{"name": "dagger-dagger-helm-engine"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7",
		}}},
	}
}

func podRequest(t testing.TB, op admissionv1.Operation, subresource string, obj any) admission.Request {
	t.Helper()
	raw, ok := obj.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(obj); err != nil {
			t.Fatal(err)
		}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:         types.UID("review-1"),
		Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:    metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		SubResource: subresource,
		Namespace:   "team-a-dev",
		Operation:   op,
		Object:      runtime.RawExtension{Raw: raw},
	}}
}

func TestEnginePodDefaulter(t *testing.T) {
	mutating, _ := handlers(t)
	ctx := context.Background()

	t.Run("chart engine pod gets the standard profile", func(t *testing.T) {
		resp := mutating.Handle(ctx, podRequest(t, admissionv1.Create, "", chartEnginePod()))
		if !resp.Allowed {
			t.Fatalf("denied: %v", resp.Result)
		}
		var paths []string
		for _, op := range resp.Patches {
			paths = append(paths, op.Operation+" "+op.Path)
		}
		got := strings.Join(paths, ", ")
		for _, want := range []string{"/spec/containers/0/resources/requests", "/spec/containers/0/resources/limits"} {
			if !strings.Contains(got, want) {
				t.Errorf("patch %q lacks %s", got, want)
			}
		}
		for _, op := range resp.Patches {
			if op.Operation == "remove" {
				t.Errorf("patch removes %s", op.Path)
			}
		}
	})

	t.Run("conforming engine pod is not patched", func(t *testing.T) {
		pod := chartEnginePod()
		pr := policy.Default().Engines.Profile("standard")
		pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: pr.Requests, Limits: pr.Limits}
		resp := mutating.Handle(ctx, podRequest(t, admissionv1.Create, "", pod))
		if !resp.Allowed || len(resp.Patches) != 0 {
			t.Fatalf("allowed %v, patches %v", resp.Allowed, resp.Patches)
		}
	})

	for name, mutate := range map[string]func(*corev1.Pod){
		"non-engine pod":  func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.29" },
		"unknown profile": func(p *corev1.Pod) { p.Annotations = map[string]string{policy.AnnotationProfile: "turbo"} },
	} {
		t.Run(name+" is left alone", func(t *testing.T) {
			pod := chartEnginePod()
			mutate(pod)
			resp := mutating.Handle(ctx, podRequest(t, admissionv1.Create, "", pod))
			if !resp.Allowed || len(resp.Patches) != 0 {
				t.Fatalf("allowed %v, patches %v", resp.Allowed, resp.Patches)
			}
		})
	}

	t.Run("update is not mutated", func(t *testing.T) {
		resp := mutating.Handle(ctx, podRequest(t, admissionv1.Update, "", chartEnginePod()))
		if !resp.Allowed || len(resp.Patches) != 0 {
			t.Fatalf("allowed %v, patches %v", resp.Allowed, resp.Patches)
		}
	})

	t.Run("undecodable object is a 400 that says why, not a 500", func(t *testing.T) {
		resp := mutating.Handle(ctx, podRequest(t, admissionv1.Create, "", []byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":"nope"}}`)))
		if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest {
			t.Fatalf("got %+v", resp.Result)
		}
		if !strings.Contains(resp.Result.Message, "cannot decode the pod") {
			t.Errorf("message %q", resp.Result.Message)
		}
	})
}

func TestEnginePodValidator(t *testing.T) {
	_, validating := handlers(t)
	ctx := context.Background()

	offProfile := chartEnginePod()
	offProfile.Spec.Containers[0].Resources.Limits = corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("64Gi"),
	}

	t.Run("off-profile engine is a 422 with one cause per field", func(t *testing.T) {
		resp := validating.Handle(ctx, podRequest(t, admissionv1.Create, "", offProfile))
		if resp.Allowed || resp.Result == nil {
			t.Fatal("allowed")
		}
		if resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid {
			t.Fatalf("code %d reason %s", resp.Result.Code, resp.Result.Reason)
		}
		if resp.Result.Details == nil || resp.Result.Details.Name != "dagger-engine-0" || resp.Result.Details.Kind != "Pod" {
			t.Fatalf("details %+v", resp.Result.Details)
		}
		var fields []string
		for _, c := range resp.Result.Details.Causes {
			fields = append(fields, c.Field)
		}
		want := "spec.containers[0].resources.limits[cpu] spec.containers[0].resources.limits[memory]"
		if got := strings.Join(fields, " "); got != want {
			t.Errorf("causes %q, want %q", got, want)
		}
	})

	t.Run("resize out of profile is denied", func(t *testing.T) {
		resp := validating.Handle(ctx, podRequest(t, admissionv1.Update, "resize", offProfile))
		if resp.Allowed {
			t.Fatal("allowed")
		}
	})

	t.Run("generated names are reported", func(t *testing.T) {
		pod := offProfile.DeepCopy()
		pod.Name, pod.GenerateName = "", "dagger-engine-"
		resp := validating.Handle(ctx, podRequest(t, admissionv1.Create, "", pod))
		if resp.Allowed || resp.Result.Details.Name != "dagger-engine-*" {
			t.Fatalf("details %+v", resp.Result.Details)
		}
	})

	for name, req := range map[string]admission.Request{
		"conforming create":         podRequest(t, admissionv1.Create, "", chartEnginePod()),
		"plain update (not resize)": podRequest(t, admissionv1.Update, "", offProfile),
		"status update":             podRequest(t, admissionv1.Update, "status", offProfile),
	} {
		t.Run(name+" is allowed", func(t *testing.T) {
			if resp := validating.Handle(ctx, req); !resp.Allowed {
				t.Fatalf("denied: %v", resp.Result)
			}
		})
	}
}

func testMetrics(t testing.TB) *Metrics {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecisionsAreCounted(t *testing.T) {
	m := testMetrics(t)
	hs := Handlers(testScheme(t), policy.NewHolder(policy.Default()), m)
	ctx := context.Background()
	off := chartEnginePod()
	off.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}
	hs[MutateEnginePodsPath].Handle(ctx, podRequest(t, admissionv1.Create, "", chartEnginePod()))
	hs[ValidateEnginePodsPath].Handle(ctx, podRequest(t, admissionv1.Create, "", off))
	hs[ValidateEnginePodsPath].Handle(ctx, podRequest(t, admissionv1.Create, "", off))
	for decision, want := range map[string]float64{decisionMutated: 1, decisionDenied: 2, decisionAllowed: 0} {
		got := testutil.ToFloat64(m.decisions.WithLabelValues("pods", ruleEngineQuota, "Enforce", decision))
		if got != want {
			t.Errorf("%s = %v, want %v", decision, got, want)
		}
	}
}
