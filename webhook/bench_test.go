package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/iss-platform/iss-webhook/policy"
)

// largeEnginePod is the worst case the benchmarks measure: 20 containers with 1,000 env vars
// between them, the engine container last.
func largeEnginePod() *corev1.Pod {
	pod := chartEnginePod()
	engine := pod.Spec.Containers[0]
	pod.Spec.Containers = nil
	for c := 0; c < 19; c++ {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprintf("helper-%d", c), Image: "busybox:1.37"})
	}
	pod.Spec.Containers = append(pod.Spec.Containers, engine)
	for i := 0; i < 1000; i++ {
		c := &pod.Spec.Containers[i%20]
		c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("VAR_%04d", i), Value: fmt.Sprintf("value-%d", i)})
	}
	return pod
}

// reviewBody encodes an AdmissionReview for creating pod, as the API server sends it.
func reviewBody(b *testing.B, pod *corev1.Pod) []byte {
	b.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "bench",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: pod.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkReview measures one whole review as the API server sees it, over HTTP minus TLS:
// decoding the AdmissionReview and the pod, the rules, the mutators, the JSON patch and the
// encoded response, for the mutating and then the validating webhook.
func BenchmarkReview(b *testing.B) {
	hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(b)})
	offProfile := chartEnginePod()
	offProfile.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}
	for _, pod := range []struct {
		name string
		pod  *corev1.Pod
	}{{"chart-engine", chartEnginePod()}, {"large-engine", largeEnginePod()}, {"off-profile-engine", offProfile}} {
		body := reviewBody(b, pod.pod)
		for _, hook := range []struct{ name, path string }{{"mutate", MutateEnginePodsPath}, {"validate", ValidateEnginePodsPath}} {
			b.Run(pod.name+"/"+hook.name, func(b *testing.B) {
				h := hooks[hook.path]
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					rec := httptest.NewRecorder()
					req := httptest.NewRequest(http.MethodPost, hook.path, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}
