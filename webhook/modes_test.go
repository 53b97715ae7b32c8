package webhook

// These tests pin down what the ISSPolicy's enforcement modes and exempt namespaces mean in
// every handler that judges through verdict: the same violation denies under Enforce, is
// admitted with a warning under Warn and only logged and counted under Audit, and the integrity
// rules, which keep the other rules from being switched off, deny whatever the modes say.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// allDecisions are the values of the decision label, to sum a review's counts over.
var allDecisions = []string{decisionAllowed, decisionMutated, decisionDenied, decisionWarned, decisionAudited, decisionExempt}

// policyWithModes returns the default policy with the given groups in the given modes, the
// others enforced.
func policyWithModes(modes map[policy.RuleGroup]v1alpha1.EnforcementMode) *policy.Policy {
	p := policy.Default()
	for g, m := range modes {
		p.Enforcement[g] = m
	}
	return p
}

// hooksFor returns the handlers for a policy and the metrics they count into.
func hooksFor(t *testing.T, pol *policy.Policy, egress EgressWriter) (map[string]*admission.Webhook, *Metrics) {
	t.Helper()
	m := testMetrics(t)
	return Handlers(NewScheme(), Options{Policies: policy.NewHolder(pol), Metrics: m, Egress: egress}), m
}

// decisions returns the count of one (resource, rule group, mode, decision) series.
func decisions(m *Metrics, resource string, group policy.RuleGroup, mode v1alpha1.EnforcementMode, decision string) float64 {
	return testutil.ToFloat64(m.decisions.WithLabelValues(resource, string(group), string(mode), decision))
}

// objectRequest is the admission request of obj, of the given kind and resource, in namespace
// team-a-dev.
func objectRequest(t *testing.T, gvk metav1.GroupVersionKind, resource string, op admissionv1.Operation, subresource string, obj any) admission.Request {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:         types.UID("review-1"),
		Kind:        gvk,
		Resource:    metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
		SubResource: subresource,
		Namespace:   "team-a-dev",
		Operation:   op,
		Object:      runtime.RawExtension{Raw: raw},
		// An update carries the stored object too; these tests change nothing the rules compare.
		OldObject: oldOf(op, raw),
	}}
}

// withCPULimit8 sets the engine container's cpu limit to 8, off the standard profile's 2.
func withCPULimit8(pod *corev1.Pod) *corev1.Pod {
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}
	return pod
}

// offProfileDeployment is a Deployment whose pod template is an off-profile engine.
func offProfileDeployment() *appsv1.Deployment {
	tmpl := withCPULimit8(chartEnginePod())
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "engines", Namespace: "team-a-dev"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec},
		},
	}
}

// cpuScaledHPA is an HPA that scales on 60% cpu, not on the saturation metric.
func cpuScaledHPA() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "team-a-dev"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"},
			MaxReplicas:    10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](60)},
			}}},
		},
	}
}

var (
	deploymentGVK = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	hpaGVK        = metav1.GroupVersionKind{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}
)

// modeCase is one violation, judged by one handler, under each mode of its rule group.
type modeCase struct {
	name     string
	path     string
	req      func(t *testing.T) admission.Request
	resource string
	group    policy.RuleGroup
	// field is the path of the violation, in the denial's cause and in the Warn warning.
	field string
	// judgedEarlier: the mutating webhook already warned about or audited the violation in the
	// same request (the validating pod webhook on create), so in Warn and Audit this handler
	// admits it silently and counts the review as allowed.
	judgedEarlier bool
	// mutates: in Warn and Audit the handler still patches the object.
	mutates bool
}

// TestEnforcementModes checks each mode of each rule group on the handlers that judge it: the
// denial, the warnings and the metrics, and that the mutating pod handler still mutates, egress
// label included, when it admits a violation.
func TestEnforcementModes(t *testing.T) {
	ctx := context.Background()
	cases := []modeCase{
		{
			name: "mutating pod webhook, engine pod off profile", path: MutateEnginePodsPath, resource: "pods", group: policy.RuleEnginePods,
			req: func(t *testing.T) admission.Request {
				return podRequest(t, admissionv1.Create, "", withCPULimit8(chartEnginePod()))
			},
			field: "spec.containers[0].resources.limits[cpu]", mutates: true,
		},
		{
			name: "validating pod webhook, engine pod off profile on create", path: ValidateEnginePodsPath, resource: "pods", group: policy.RuleEnginePods,
			req: func(t *testing.T) admission.Request {
				return podRequest(t, admissionv1.Create, "", withCPULimit8(admittedEnginePod()))
			},
			field: "spec.containers[0].resources.limits[cpu]", judgedEarlier: true,
		},
		{
			name: "validating pod webhook, engine pod resized off profile", path: ValidateEnginePodsPath, resource: "pods", group: policy.RuleEnginePods,
			req: func(t *testing.T) admission.Request {
				return podRequest(t, admissionv1.Update, "resize", withCPULimit8(admittedEnginePod()))
			},
			field: "spec.containers[0].resources.limits[cpu]",
		},
		{
			// An engine admitted off profile in Warn mode must stay labellable: only the
			// integrity rules of an update ignore the mode.
			name: "validating pod webhook, update of an engine off profile", path: ValidateEnginePodsPath, resource: "pods", group: policy.RuleEnginePods,
			req: func(t *testing.T) admission.Request {
				old := withCPULimit8(admittedEnginePod())
				cur := old.DeepCopy()
				cur.Labels["team"] = "a"
				return updateRequest(t, old, cur, "alice", "system:authenticated")
			},
			field: "spec.containers[0].resources.limits[cpu]",
		},
		{
			name: "workload webhook, Deployment template off profile", path: ValidateWorkloadsPath, resource: "deployments", group: policy.RuleEnginePods,
			req: func(t *testing.T) admission.Request {
				return objectRequest(t, deploymentGVK, "deployments", admissionv1.Create, "", offProfileDeployment())
			},
			field: "spec.template.spec.containers[0].resources.limits[cpu]",
		},
		{
			name: "validating HPA webhook, no saturation metric", path: ValidateHPAsPath, resource: "horizontalpodautoscalers", group: policy.RuleAutoscaling,
			req: func(t *testing.T) admission.Request {
				// As the mutating webhook leaves an HPA without metrics when it is off: one violation.
				hpa := cpuScaledHPA()
				hpa.Spec.Metrics, hpa.Spec.Behavior = nil, policy.Default().Autoscaling.Behavior.DeepCopy()
				return objectRequest(t, hpaGVK, "horizontalpodautoscalers", admissionv1.Create, "", hpa)
			},
			field: "spec.metrics",
		},
	}
	for _, tc := range cases {
		for _, mode := range []v1alpha1.EnforcementMode{v1alpha1.Enforce, v1alpha1.Warn, v1alpha1.Audit} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				hooks, m := hooksFor(t, policyWithModes(map[policy.RuleGroup]v1alpha1.EnforcementMode{tc.group: mode}), nil)
				req := tc.req(t)
				resp := hooks[tc.path].Handle(ctx, req)

				want := map[string]float64{}
				switch {
				case mode == v1alpha1.Enforce:
					if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid {
						t.Fatalf("want a 422 Invalid denial, got allowed %v: %+v", resp.Allowed, resp.Result)
					}
					if !hasCause(resp.Result, tc.field) {
						t.Errorf("denial lacks a cause at %s: %+v", tc.field, resp.Result.Details)
					}
					want[decisionDenied] = 1
				case tc.judgedEarlier:
					if !resp.Allowed || len(resp.Warnings) != 0 {
						t.Fatalf("want admitted without repeating the mutating webhook's warnings, got allowed %v, warnings %q: %+v", resp.Allowed, resp.Warnings, resp.Result)
					}
					want[decisionAllowed] = 1
				case mode == v1alpha1.Warn:
					if !resp.Allowed {
						t.Fatalf("denied in Warn mode: %+v", resp.Result)
					}
					prefix := "iss-webhook (" + string(tc.group) + ": Warn): "
					if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], prefix) || !strings.Contains(resp.Warnings[0], tc.field) {
						t.Errorf("warnings %q, want one starting %q naming %s", resp.Warnings, prefix, tc.field)
					}
					want[decisionWarned] = 1
				case mode == v1alpha1.Audit:
					if !resp.Allowed || len(resp.Warnings) != 0 {
						t.Fatalf("want admitted without warnings in Audit mode, got allowed %v, warnings %q: %+v", resp.Allowed, resp.Warnings, resp.Result)
					}
					want[decisionAudited] = 1
				}
				// One review, one decision, under the group's mode.
				for _, d := range allDecisions {
					if got := decisions(m, tc.resource, tc.group, mode, d); got != want[d] {
						t.Errorf("decision %s counted %v times under (%s, %s, %s), want %v", d, got, tc.resource, tc.group, mode, want[d])
					}
				}

				if tc.mutates && resp.Allowed {
					checkMutatedEngine(t, req, resp)
				}
			})
		}
	}
}

// checkMutatedEngine applies the response's patch to the request's pod and checks that the
// mutators ran on the admitted off-profile engine: the missing requests filled in from the
// profile, the limit the user set kept, and the egress label set.
func checkMutatedEngine(t *testing.T, req admission.Request, resp admission.Response) {
	t.Helper()
	if len(resp.Patches) == 0 {
		t.Fatal("an admitted violation got no patch: the mutators did not run")
	}
	patched := applyPatches(t, req.Object.Raw, resp)
	pod := &corev1.Pod{}
	if err := json.Unmarshal(patched, pod); err != nil {
		t.Fatal(err)
	}
	if got, want := pod.Labels[policy.LabelEgressPolicy], (policy.Allowlist{}).Hash(); got != want {
		t.Errorf("egress label %q, want %q", got, want)
	}
	res := pod.Spec.Containers[0].Resources
	if got := res.Limits[corev1.ResourceCPU]; got.String() != "8" {
		t.Errorf("cpu limit %s, want the 8 the pod set", got.String())
	}
	if got := res.Requests[corev1.ResourceCPU]; got.String() != "500m" {
		t.Errorf("cpu request %s, want the profile's 500m", got.String())
	}
}

// hasCause tells whether a denial has a cause at field.
func hasCause(status *metav1.Status, field string) bool {
	if status == nil || status.Details == nil {
		return false
	}
	for _, c := range status.Details.Causes {
		if c.Field == field {
			return true
		}
	}
	return false
}

// TestModesArePerGroup checks that a mode applies to its own group only: with every other
// group in Audit, an off-profile engine is still denied, and with engine pods in Audit an HPA
// without the saturation metric still is.
func TestModesArePerGroup(t *testing.T) {
	ctx := context.Background()
	allAuditBut := func(enforced policy.RuleGroup) *policy.Policy {
		modes := map[policy.RuleGroup]v1alpha1.EnforcementMode{}
		for _, g := range policy.ConfigurableRuleGroups() {
			if g != enforced {
				modes[g] = v1alpha1.Audit
			}
		}
		return policyWithModes(modes)
	}
	for _, tc := range []struct {
		name     string
		enforced policy.RuleGroup
		path     string
		req      func(t *testing.T) admission.Request
	}{
		{"engine pod", policy.RuleEnginePods, MutateEnginePodsPath, func(t *testing.T) admission.Request {
			return podRequest(t, admissionv1.Create, "", withCPULimit8(chartEnginePod()))
		}},
		{"HPA", policy.RuleAutoscaling, ValidateHPAsPath, func(t *testing.T) admission.Request {
			return objectRequest(t, hpaGVK, "horizontalpodautoscalers", admissionv1.Create, "", cpuScaledHPA())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hooks, _ := hooksFor(t, allAuditBut(tc.enforced), nil)
			if resp := hooks[tc.path].Handle(ctx, tc.req(t)); resp.Allowed {
				t.Fatalf("admitted with %s enforced and the other groups in Audit", tc.enforced)
			}
		})
	}
}

// TestIntegrityIgnoresModes checks that the integrity rules and the writing of egress policies
// deny even when every configurable group is in Audit, and even when the policy's map names them:
// in Warn or Audit anyone could switch the other rules off.
func TestIntegrityIgnoresModes(t *testing.T) {
	ctx := context.Background()
	pol := policy.Default()
	for _, g := range policy.ConfigurableRuleGroups() {
		pol.Enforcement[g] = v1alpha1.Audit
	}
	// FromISSPolicy never sets these, but Mode must ignore them if anything did.
	pol.Enforcement[policy.RuleIntegrity] = v1alpha1.Audit
	pol.Enforcement[policy.RuleEgressWrite] = v1alpha1.Audit

	old := admittedEnginePod()
	relabelled := old.DeepCopy()
	relabelled.Labels[policy.LabelEgressPolicy] = "0000000000000000"
	annotated := old.DeepCopy()
	annotated.Annotations = map[string]string{policy.AnnotationProfile: "high-performance"}
	statusRelabel := updateRequest(t, old, relabelled, "some-controller")
	statusRelabel.SubResource = "status"
	plain := chartEnginePod()
	plain.Spec.Containers[0].Image = "busybox:1.37"
	becameEngine := plain.DeepCopy()
	becameEngine.Spec.Containers[0].Image = "registry.dagger.io/engine:v0.19.7"
	wrongLabel := admittedEnginePod()
	wrongLabel.Labels[policy.LabelEgressPolicy] = "0000000000000000"

	for _, tc := range []struct {
		name   string
		path   string
		egress EgressWriter
		req    admission.Request
		group  policy.RuleGroup
		field  string
	}{
		{name: "update changes the egress label", path: ValidateEnginePodsPath, req: updateRequest(t, old, relabelled, "alice", "system:authenticated"),
			group: policy.RuleIntegrity, field: "metadata.labels[iss.platform/egress-policy]"},
		{name: "update adds the profile annotation", path: ValidateEnginePodsPath, req: updateRequest(t, old, annotated, "alice"),
			group: policy.RuleIntegrity, field: "metadata.annotations[iss.platform/profile]"},
		{name: "status update changes the egress label", path: ValidateEnginePodsPath, req: statusRelabel,
			group: policy.RuleIntegrity, field: "metadata.labels[iss.platform/egress-policy]"},
		{name: "update turns a plain pod into an engine", path: ValidateEnginePodsPath, req: updateRequest(t, plain, becameEngine, "alice"),
			group: policy.RuleIntegrity, field: "spec.containers"},
		{name: "engine created with another egress label", path: ValidateEnginePodsPath, req: podRequest(t, admissionv1.Create, "", wrongLabel),
			group: policy.RuleIntegrity, field: "metadata.labels[iss.platform/egress-policy]"},
		{name: "egress policies cannot be written", path: MutateEnginePodsPath, egress: &recordingEgressWriter{err: errors.New("networkpolicies is forbidden")},
			req: podRequest(t, admissionv1.Create, "", withCPULimit8(chartEnginePod())), group: policy.RuleEgressWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hooks, m := hooksFor(t, pol, tc.egress)
			resp := hooks[tc.path].Handle(ctx, tc.req)
			if resp.Allowed {
				t.Fatal("admitted with every configurable group in Audit")
			}
			if tc.field != "" && !hasCause(resp.Result, tc.field) {
				t.Errorf("denial lacks a cause at %s: %+v", tc.field, resp.Result)
			}
			if got := decisions(m, "pods", tc.group, v1alpha1.Enforce, decisionDenied); got != 1 {
				t.Errorf("denial counted %v times under (pods, %s, Enforce), want 1", got, tc.group)
			}
		})
	}
}

// TestExemptNamespaces checks that objects in a namespace the policy exempts are admitted
// unchanged and unchecked by every handler, counted as exempt, while the same objects elsewhere
// are still judged.
func TestExemptNamespaces(t *testing.T) {
	ctx := context.Background()
	pol := policy.Default()
	pol.ExemptNamespaces = []string{"legacy"}
	inNamespace := func(req admission.Request, ns string) admission.Request {
		req.Namespace = ns
		return req
	}
	for _, tc := range []struct {
		name     string
		path     string
		req      func(t *testing.T) admission.Request
		resource string
		group    policy.RuleGroup
	}{
		{"mutating pod webhook", MutateEnginePodsPath, func(t *testing.T) admission.Request {
			return podRequest(t, admissionv1.Create, "", withCPULimit8(chartEnginePod()))
		}, "pods", policy.RuleEnginePods},
		{"validating pod webhook", ValidateEnginePodsPath, func(t *testing.T) admission.Request {
			return podRequest(t, admissionv1.Create, "", withCPULimit8(chartEnginePod()))
		}, "pods", policy.RuleEnginePods},
		{"workload webhook", ValidateWorkloadsPath, func(t *testing.T) admission.Request {
			return objectRequest(t, deploymentGVK, "deployments", admissionv1.Create, "", offProfileDeployment())
		}, "deployments", policy.RuleEnginePods},
		{"validating HPA webhook", ValidateHPAsPath, func(t *testing.T) admission.Request {
			return objectRequest(t, hpaGVK, "horizontalpodautoscalers", admissionv1.Create, "", cpuScaledHPA())
		}, "horizontalpodautoscalers", policy.RuleAutoscaling},
		{"mutating HPA webhook", MutateHPAsPath, func(t *testing.T) admission.Request {
			hpa := cpuScaledHPA()
			hpa.Spec.Metrics = nil
			return objectRequest(t, hpaGVK, "horizontalpodautoscalers", admissionv1.Create, "", hpa)
		}, "horizontalpodautoscalers", policy.RuleAutoscaling},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hooks, m := hooksFor(t, pol, nil)
			resp := hooks[tc.path].Handle(ctx, inNamespace(tc.req(t), "legacy"))
			if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) != 0 {
				t.Fatalf("in the exempt namespace: allowed %v, patches %v, warnings %q: %+v", resp.Allowed, resp.Patches, resp.Warnings, resp.Result)
			}
			for _, d := range allDecisions {
				want := 0.0
				if d == decisionExempt {
					want = 1
				}
				if got := decisions(m, tc.resource, tc.group, v1alpha1.Enforce, d); got != want {
					t.Errorf("decision %s counted %v times, want %v", d, got, want)
				}
			}
			// The same object in a namespace the policy does not exempt is judged.
			resp = hooks[tc.path].Handle(ctx, tc.req(t))
			if resp.Allowed && len(resp.Patches) == 0 {
				t.Error("outside the exempt namespace the object was neither denied nor mutated")
			}
		})
	}
}
