package webhook

import (
	"context"
	"encoding/json"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/mutators"
	"github.com/iss-platform/iss-webhook/policy"
)

var podKind = schema.GroupKind{Kind: "Pod"}

// ruleEngineQuota names the engine quota rules (ISS-001 section 4) in metrics.
const ruleEngineQuota = "engine-quota"

// EnginePodDefaulter is the mutating handler for pods: it applies the engine pod mutators to
// engine pods and leaves every other pod as it is.
type EnginePodDefaulter struct {
	policies policy.Provider
	decoder  admission.Decoder
	metrics  *Metrics
}

// NewEnginePodDefaulter returns the mutating pod handler for the policy that policies hands out.
func NewEnginePodDefaulter(policies policy.Provider, decoder admission.Decoder, metrics *Metrics) *EnginePodDefaulter {
	return &EnginePodDefaulter{policies: policies, decoder: decoder, metrics: metrics}
}

// Handle implements admission.Handler.
func (h *EnginePodDefaulter) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("iss-webhook mutates engine pods on create only")
	}
	pod := &corev1.Pod{}
	if err := h.decoder.Decode(req, pod); err != nil {
		return badRequest("pod", err)
	}
	eng, ok := h.policies.Current().Engines.Match(&pod.ObjectMeta, &pod.Spec)
	if !ok {
		return admission.Allowed("not a Dagger engine pod")
	}
	// The patch is the difference between the typed pod before and after the mutators, both
	// encoded by the same code, so fields this build does not know are never touched.
	original, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	changed := mutators.MutateEnginePod(pod, eng)
	if len(changed) == 0 {
		h.metrics.count("pods", ruleEngineQuota, decisionAllowed)
		return admission.Allowed("engine pod already conforms")
	}
	mutated, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	logf.FromContext(ctx).V(1).Info("mutated engine pod", "mutators", changed, "profile", eng.ProfileName)
	h.metrics.count("pods", ruleEngineQuota, decisionMutated)
	return admission.PatchResponseFromRaw(original, mutated)
}

// EnginePodValidator is the validating handler for pods: it checks engine pods on create and on
// in-place resize (the pods/resize subresource) against their quota profile.
type EnginePodValidator struct {
	policies policy.Provider
	decoder  admission.Decoder
	metrics  *Metrics
}

// NewEnginePodValidator returns the validating pod handler for the policy that policies hands out.
func NewEnginePodValidator(policies policy.Provider, decoder admission.Decoder, metrics *Metrics) *EnginePodValidator {
	return &EnginePodValidator{policies: policies, decoder: decoder, metrics: metrics}
}

// Handle implements admission.Handler.
func (h *EnginePodValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	switch {
	case req.Operation == admissionv1.Create && req.SubResource == "":
	case req.Operation == admissionv1.Update && req.SubResource == "resize":
	default:
		return admission.Allowed("iss-webhook validates engine pods on create and resize only")
	}
	pod := &corev1.Pod{}
	if err := h.decoder.Decode(req, pod); err != nil {
		return badRequest("pod", err)
	}
	if errs := h.policies.Current().Engines.ValidateQuota(&pod.ObjectMeta, &pod.Spec, nil); len(errs) > 0 {
		logf.FromContext(ctx).Info("denied engine pod", "violations", len(errs), "error", errs.ToAggregate().Error())
		h.metrics.count("pods", ruleEngineQuota, decisionDenied)
		return denyInvalid(podKind, &pod.ObjectMeta, errs)
	}
	h.metrics.count("pods", ruleEngineQuota, decisionAllowed)
	return admission.Allowed("")
}
