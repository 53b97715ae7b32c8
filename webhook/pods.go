package webhook

import (
	"context"
	"encoding/json"
	"fmt"
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

// Rule groups, as metrics name them.
const (
	// ruleEnginePods are the engine pod rules: quota profile, secrets, network access, sidecars.
	ruleEnginePods = "engine-pods"
	// ruleEgress is the writing of the generated egress policies.
	ruleEgress = "egress-policies"
	// ruleTamper protects ISS labels, annotations and generated objects from change.
	ruleTamper = "tamper-protection"
)

// EgressWriter writes the generated egress objects of an engine (design.md 4.3) before its pod
// is admitted. It returns admission warnings for the user, and an error when an object could not
// be written, in which case the pod is denied: it never runs with open egress.
type EgressWriter interface {
	Ensure(ctx context.Context, namespace string, eng policy.Engine, pol *policy.Policy) (warnings []string, err error)
}

// EnginePodDefaulter is the mutating handler for pods: it denies engine pods that break the
// rules (so that nothing is written for a pod that will not run), applies the engine pod
// mutators to the others, and writes their egress policies. Other pods are left as they are.
type EnginePodDefaulter struct {
	policies policy.Provider
	decoder  admission.Decoder
	metrics  *Metrics
	egress   EgressWriter
}

// NewEnginePodDefaulter returns the mutating pod handler for the policy that policies hands out.
// egress writes the generated egress objects; nil writes none (offline use).
func NewEnginePodDefaulter(policies policy.Provider, decoder admission.Decoder, metrics *Metrics, egress EgressWriter) *EnginePodDefaulter {
	return &EnginePodDefaulter{policies: policies, decoder: decoder, metrics: metrics, egress: egress}
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
	pol := h.policies.Current()
	eng, ok, errs := pol.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
	if !ok {
		return admission.Allowed("not a Dagger engine pod")
	}
	if len(errs) > 0 {
		h.metrics.count("pods", ruleEnginePods, decisionDenied)
		logf.FromContext(ctx).Info("denied engine pod", "violations", len(errs), "error", errs.ToAggregate().Error())
		return denyInvalid(podKind, &pod.ObjectMeta, errs)
	}
	// The patch is the difference between the typed pod before and after the mutators.
	original, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	changed := mutators.MutateEnginePod(pod, eng)

	var warnings []string
	if h.egress != nil && (req.DryRun == nil || !*req.DryRun) {
		if warnings, err = h.egress.Ensure(ctx, req.Namespace, eng, pol); err != nil {
			h.metrics.count("pods", ruleEgress, decisionDenied)
			logf.FromContext(ctx).Error(err, "writing egress policies failed; denying the engine pod")
			return admission.Denied(fmt.Sprintf("iss-webhook could not write the egress policies of this engine (%v); "+
				"the pod is denied so that it never runs with open egress: retry, and if it persists ask the platform team", err))
		}
	}
	if len(changed) == 0 {
		h.metrics.count("pods", ruleEnginePods, decisionAllowed)
		return admission.Allowed("engine pod already conforms").WithWarnings(warnings...)
	}
	logf.FromContext(ctx).V(1).Info("mutated engine pod", "mutators", changed, "profile", eng.ProfileName, "egressPolicy", eng.EgressHash)
	h.metrics.count("pods", ruleEnginePods, decisionMutated)
	return patchFrom(original, pod).WithWarnings(warnings...)
}

// EnginePodValidator is the validating handler for pods. It checks engine pods on create and on
// in-place resize (the pods/resize subresource) against the engine rules; denies updates, unless a
// trusted identity makes them, that change ISS labels or annotations, turn a pod into an engine
// or break the engine rules; and denies ephemeral containers that run an engine image.
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
	pol := h.policies.Current()
	pod := &corev1.Pod{}
	switch {
	case req.Operation == admissionv1.Create && req.SubResource == "",
		req.Operation == admissionv1.Update && req.SubResource == "resize":
		if err := h.decoder.Decode(req, pod); err != nil {
			return badRequest("pod", err)
		}
		eng, isEngine, errs := pol.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
		if req.SubResource == "" {
			errs = append(errs, policy.ValidateEgressLabel(&pod.ObjectMeta, eng, isEngine)...)
		}
		if !isEngine && len(errs) == 0 {
			return admission.Allowed("not a Dagger engine pod")
		}
		if len(errs) > 0 {
			logf.FromContext(ctx).Info("denied engine pod", "violations", len(errs), "error", errs.ToAggregate().Error())
			h.metrics.count("pods", ruleEnginePods, decisionDenied)
			return denyInvalid(podKind, &pod.ObjectMeta, errs)
		}
		h.metrics.count("pods", ruleEnginePods, decisionAllowed)
		return admission.Allowed("")
	case req.Operation == admissionv1.Update && req.SubResource == "ephemeralcontainers":
		if err := h.decoder.Decode(req, pod); err != nil {
			return badRequest("pod", err)
		}
		if errs := pol.ValidateEphemeralContainers(&pod.ObjectMeta, &pod.Spec); len(errs) > 0 {
			h.metrics.count("pods", ruleEnginePods, decisionDenied)
			return denyInvalid(podKind, &pod.ObjectMeta, errs)
		}
		return admission.Allowed("")
	case req.Operation == admissionv1.Update && (req.SubResource == "" || req.SubResource == "status"):
		old := &corev1.Pod{}
		if err := h.decoder.Decode(req, pod); err != nil {
			return badRequest("pod", err)
		}
		if err := h.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return badRequest("previous pod", err)
		}
		if pol.TrustedIdentities.Contains(req.UserInfo.Username, req.UserInfo.Groups) {
			return admission.Allowed("trusted identity")
		}
		// A status update can change only metadata besides the status, which the same
		// protection covers; an update of the pod itself also follows the engine rules.
		errs := policy.ValidateISSMetadataUnchanged(&old.ObjectMeta, &pod.ObjectMeta, nil)
		if req.SubResource == "" {
			errs = pol.ReviewPodUpdate(old, pod)
		}
		if len(errs) > 0 {
			h.metrics.count("pods", ruleTamper, decisionDenied)
			return denyInvalid(podKind, &old.ObjectMeta, errs)
		}
		return admission.Allowed("")
	default:
		return admission.Allowed("iss-webhook validates pods on create, update, resize and ephemeral containers only")
	}
}
