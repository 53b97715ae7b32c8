package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

func handlers(t testing.TB) (mutating, validating admission.Handler) {
	t.Helper()
	hs := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t)})
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
		OldObject:   oldOf(op, raw),
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
		pod.Labels[policy.LabelEgressPolicy] = policy.Allowlist{}.Hash()
		resp := mutating.Handle(ctx, podRequest(t, admissionv1.Create, "", pod))
		if !resp.Allowed || len(resp.Patches) != 0 {
			t.Fatalf("allowed %v, patches %v", resp.Allowed, resp.Patches)
		}
	})

	t.Run("non-engine pod is left alone", func(t *testing.T) {
		pod := chartEnginePod()
		pod.Spec.Containers[0].Image = "nginx:1.29"
		pod.Annotations = map[string]string{policy.AnnotationProfile: "turbo"}
		resp := mutating.Handle(ctx, podRequest(t, admissionv1.Create, "", pod))
		if !resp.Allowed || len(resp.Patches) != 0 {
			t.Fatalf("allowed %v, patches %v", resp.Allowed, resp.Patches)
		}
	})

	t.Run("engine pod with violations is denied before anything is written", func(t *testing.T) {
		pod := chartEnginePod()
		pod.Annotations = map[string]string{policy.AnnotationProfile: "turbo", policy.AnnotationNetworkAccess: `[{"host":"10.0.0.1"}]`}
		writer := &recordingEgressWriter{}
		hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t), Egress: writer})
		resp := hooks[MutateEnginePodsPath].Handle(ctx, podRequest(t, admissionv1.Create, "", pod))
		if resp.Allowed || resp.Result.Code != http.StatusUnprocessableEntity || len(resp.Result.Details.Causes) != 2 {
			t.Fatalf("got %+v", resp.Result)
		}
		if writer.calls != 0 {
			t.Error("egress policies were written for a denied pod")
		}
	})

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
		if !strings.Contains(resp.Result.Message, "cannot decode the Pod") {
			t.Errorf("message %q", resp.Result.Message)
		}
	})
}

// admittedEnginePod is a chart engine pod as the mutating webhook leaves it for the validating one.
func admittedEnginePod() *corev1.Pod {
	pod := chartEnginePod()
	pod.Labels[policy.LabelEgressPolicy] = policy.Allowlist{}.Hash()
	return pod
}

func TestEnginePodValidator(t *testing.T) {
	_, validating := handlers(t)
	ctx := context.Background()

	offProfile := admittedEnginePod()
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
		"conforming create": podRequest(t, admissionv1.Create, "", admittedEnginePod()),
		"status update":     statusUpdate(t, offProfile),
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
	hs := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: m})
	ctx := context.Background()
	off := chartEnginePod()
	off.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}
	hs[MutateEnginePodsPath].Handle(ctx, podRequest(t, admissionv1.Create, "", chartEnginePod()))
	hs[ValidateEnginePodsPath].Handle(ctx, podRequest(t, admissionv1.Create, "", off))
	hs[ValidateEnginePodsPath].Handle(ctx, podRequest(t, admissionv1.Create, "", off))
	for decision, want := range map[string]float64{decisionMutated: 1, decisionDenied: 2, decisionAllowed: 0} {
		got := testutil.ToFloat64(m.decisions.WithLabelValues("pods", string(policy.RuleEnginePods), "Enforce", decision))
		if got != want {
			t.Errorf("%s = %v, want %v", decision, got, want)
		}
	}
}

// recordingEgressWriter stands in for the egress writer in handler tests: it records calls and
// returns what it is told. The real writer is tested against a real API server in e2e.
type recordingEgressWriter struct {
	calls    int
	hashes   []string
	warnings []string
	err      error
}

func (w *recordingEgressWriter) Ensure(_ context.Context, _ string, eng policy.Engine, _ *policy.Policy) ([]string, error) {
	w.calls++
	w.hashes = append(w.hashes, eng.EgressHash)
	return w.warnings, w.err
}

func TestEnginePodDefaulterWritesEgress(t *testing.T) {
	ctx := context.Background()
	pod := chartEnginePod()
	pod.Annotations = map[string]string{policy.AnnotationNetworkAccess: `[{"host":"api.github.com"}]`}
	wantHash := policy.Allowlist{{Host: "api.github.com", Ports: []int32{443}, Protocol: "TCP"}}.Hash()

	for _, tc := range []struct {
		name        string
		dryRun      bool
		writer      *recordingEgressWriter
		wantAllowed bool
		wantCalls   int
		wantText    string
	}{
		{name: "written before the pod is admitted, warnings passed on", writer: &recordingEgressWriter{warnings: []string{"no FQDN backend"}}, wantAllowed: true, wantCalls: 1, wantText: "no FQDN backend"},
		{name: "nothing written on dry run", dryRun: true, writer: &recordingEgressWriter{}, wantAllowed: true},
		{name: "pod denied when writing fails", writer: &recordingEgressWriter{err: errors.New("networkpolicies is forbidden")}, wantCalls: 1, wantText: "never runs with open egress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t), Egress: tc.writer})
			req := podRequest(t, admissionv1.Create, "", pod)
			req.DryRun = &tc.dryRun
			resp := hooks[MutateEnginePodsPath].Handle(ctx, req)
			if resp.Allowed != tc.wantAllowed || tc.writer.calls != tc.wantCalls {
				t.Fatalf("allowed %v after %d calls: %+v", resp.Allowed, tc.writer.calls, resp.Result)
			}
			if tc.wantCalls > 0 && tc.writer.hashes[0] != wantHash {
				t.Errorf("writer got hash %s, want %s", tc.writer.hashes[0], wantHash)
			}
			text := strings.Join(resp.Warnings, " ")
			if resp.Result != nil {
				text += resp.Result.Message
			}
			if !strings.Contains(text, tc.wantText) {
				t.Errorf("response %q lacks %q", text, tc.wantText)
			}
		})
	}
}

func updateRequest(t *testing.T, old, cur *corev1.Pod, user string, groups ...string) admission.Request {
	t.Helper()
	req := podRequest(t, admissionv1.Update, "", cur)
	raw, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	req.OldObject = runtime.RawExtension{Raw: raw}
	req.UserInfo = authenticationv1.UserInfo{Username: user, Groups: groups}
	return req
}

func TestTamperProtection(t *testing.T) {
	_, validating := handlers(t)
	ctx := context.Background()
	old := chartEnginePod()
	old.Labels[policy.LabelEgressPolicy] = "4f53cda18c2baa0c"
	old.Annotations = map[string]string{policy.AnnotationSecrets: "API_TOKEN"}

	relabelled := old.DeepCopy()
	relabelled.Labels[policy.LabelEgressPolicy] = "0000000000000000"
	unannotated := old.DeepCopy()
	delete(unannotated.Annotations, policy.AnnotationSecrets)
	otherLabel := old.DeepCopy()
	otherLabel.Labels["team"] = "a"
	plain := chartEnginePod()
	plain.Spec.Containers[0].Image = "busybox:1.37"
	becameEngine := plain.DeepCopy()
	becameEngine.Spec.Containers[0].Image = "registry.dagger.io/engine:v0.19.7"

	for _, tc := range []struct {
		name      string
		req       admission.Request
		wantField string
	}{
		{name: "changed egress label", req: updateRequest(t, old, relabelled, "alice", "system:authenticated"), wantField: "metadata.labels[iss.platform/egress-policy]"},
		{name: "removed secrets annotation", req: updateRequest(t, old, unannotated, "alice"), wantField: "metadata.annotations[iss.platform/secrets]"},
		{name: "other labels may change", req: updateRequest(t, old, otherLabel, "alice")},
		{name: "kubectl set image turns a plain pod into an engine", req: updateRequest(t, plain, becameEngine, "alice"), wantField: "spec.containers"},
		{name: "trusted identity may change ISS labels", req: updateRequest(t, old, relabelled, "admin", "system:masters")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := validating.Handle(ctx, tc.req)
			if tc.wantField == "" {
				if !resp.Allowed {
					t.Fatalf("denied: %v", resp.Result)
				}
				return
			}
			if resp.Allowed || resp.Result.Details == nil || len(resp.Result.Details.Causes) != 1 || resp.Result.Details.Causes[0].Field != tc.wantField {
				t.Fatalf("got %+v", resp.Result)
			}
		})
	}
}

func TestNetworkPolicyGuard(t *testing.T) {
	guard := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t), Self: "system:serviceaccount:iss-system:iss-webhook", Engines: runningEngines{}})[ValidateNetworkPoliciesPath].Handler
	ctx := context.Background()
	generated := []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"iss-egress-4f53cda18c2baa0c","namespace":"team-a-dev","labels":{"app.kubernetes.io/managed-by":"iss-webhook"}},"spec":{"podSelector":{}}}`)
	open := []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"allow-all","namespace":"team-a-dev"},"spec":{"podSelector":{},"egress":[{}]}}`)
	inUse := []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"iss-egress-00000000000000ff","namespace":"team-a-dev","labels":{"app.kubernetes.io/managed-by":"iss-webhook","iss.platform/egress-policy":"00000000000000ff"}},"spec":{"podSelector":{}}}`)
	req := func(op admissionv1.Operation, obj, old []byte, user string, groups ...string) admission.Request {
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: op, Name: "iss-egress-4f53cda18c2baa0c", Namespace: "team-a-dev",
			Kind:     metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
			Resource: metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
			UserInfo: authenticationv1.UserInfo{Username: user, Groups: groups},
			Object:   runtime.RawExtension{Raw: obj}, OldObject: runtime.RawExtension{Raw: old},
		}}
	}
	for _, tc := range []struct {
		name    string
		req     admission.Request
		allowed bool
		message string
	}{
		{"ordinary user deletes a generated policy", req(admissionv1.Delete, nil, generated, "alice", "system:authenticated"), false, "NetworkPolicy team-a-dev/iss-egress-4f53cda18c2baa0c is generated by iss-webhook"},
		{"ordinary user updates a generated policy", req(admissionv1.Update, generated, generated, "alice"), false, "only iss-webhook may change it"},
		{"ordinary user creates a policy in a generated one's name", req(admissionv1.Create, generated, nil, "alice"), false, "reserved"},
		{"ordinary user opens egress for every pod", req(admissionv1.Create, open, nil, "alice"), false, "must not select Dagger engines"},
		{"the webhook itself writes", req(admissionv1.Update, generated, generated, "system:serviceaccount:iss-system:iss-webhook"), true, ""},
		{"cluster admin deletes", req(admissionv1.Delete, nil, generated, "admin", "system:masters"), true, ""},
		{"namespace controller deletes with the namespace", req(admissionv1.Delete, nil, generated, "system:serviceaccount:kube-system:namespace-controller"), true, ""},
		{"namespace controller deletes while engines still run", req(admissionv1.Delete, nil, inUse, "system:serviceaccount:kube-system:namespace-controller"), false, "still run with this egress policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := guard.Handle(ctx, tc.req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v: %+v", resp.Allowed, resp.Result)
			}
			if !resp.Allowed && !strings.Contains(fmt.Sprint(resp.Result), tc.message) {
				t.Errorf("result %v lacks %q", resp.Result, tc.message)
			}
		})
	}
}

func TestEphemeralEngineContainersDenied(t *testing.T) {
	_, validating := handlers(t)
	pod := chartEnginePod()
	pod.Spec.Containers[0].Image = "nginx:1.29"
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{
		{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox:1.37"}},
		{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "sneaky", Image: "registry.dagger.io/engine:v0.19.7"}},
	}
	resp := validating.Handle(context.Background(), podRequest(t, admissionv1.Update, "ephemeralcontainers", pod))
	if resp.Allowed || len(resp.Result.Details.Causes) != 1 || resp.Result.Details.Causes[0].Field != "spec.ephemeralContainers[1].image" {
		t.Fatalf("got %+v", resp.Result)
	}
	pod.Spec.EphemeralContainers = pod.Spec.EphemeralContainers[:1]
	if resp := validating.Handle(context.Background(), podRequest(t, admissionv1.Update, "ephemeralcontainers", pod)); !resp.Allowed {
		t.Fatalf("busybox debug container denied: %+v", resp.Result)
	}
}

func statusUpdate(t *testing.T, pod *corev1.Pod) admission.Request {
	req := updateRequest(t, pod, pod, "system:node:node-1")
	req.SubResource = "status"
	return req
}

func TestEgressLabelChecked(t *testing.T) {
	_, validating := handlers(t)
	ctx := context.Background()
	wrong := admittedEnginePod()
	wrong.Labels[policy.LabelEgressPolicy] = "0000000000000000"
	plain := chartEnginePod()
	plain.Spec.Containers[0].Image = "nginx:1.29"
	plain.Labels[policy.LabelEgressPolicy] = policy.Allowlist{}.Hash()
	relabelled := admittedEnginePod()
	relabelled.Labels[policy.LabelEgressPolicy] = "open"
	statusRelabel := updateRequest(t, admittedEnginePod(), relabelled, "some-controller")
	statusRelabel.SubResource = "status"
	for name, req := range map[string]admission.Request{
		"engine with another webhook's label": podRequest(t, admissionv1.Create, "", wrong),
		"plain pod with the label":            podRequest(t, admissionv1.Create, "", plain),
		"label changed through pods/status":   statusRelabel,
	} {
		resp := validating.Handle(ctx, req)
		if resp.Allowed || resp.Result.Details == nil || resp.Result.Details.Causes[0].Field != "metadata.labels[iss.platform/egress-policy]" {
			t.Errorf("%s: %+v", name, resp.Result)
		}
	}
}

// runningEngines stands in for the pod cache: one engine runs with the hash 00000000000000ff.
type runningEngines struct{}

func (runningEngines) RunningEngines(_ context.Context, _, hash string) (int, error) {
	if hash == "00000000000000ff" {
		return 1, nil
	}
	return 0, nil
}

// oldOf is the stored object of a request that does not change it: the object itself on update
// and delete, as the API server sends it, nothing on create.
func oldOf(op admissionv1.Operation, raw []byte) runtime.RawExtension {
	if op == admissionv1.Create {
		return runtime.RawExtension{}
	}
	return runtime.RawExtension{Raw: raw}
}
