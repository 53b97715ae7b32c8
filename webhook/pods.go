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
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

var podKind = schema.GroupKind{Kind: "Pod"}

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
	if pol.Exempt(req.Namespace) {
		return exempt(pol, h.metrics, "pods", policy.RuleEnginePods)
	}
	eng, ok, errs := pol.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
	if !ok {
		return admission.Allowed("not a Dagger engine pod")
	}
	// Deny before mutating, so that nothing is written for a pod that will not run. In Warn and
	// Audit modes the mutators still apply what they can: the profile when it is known, the
	// valid secret keys, and the egress label of the parsed allowlist, which is deny-all when
	// the annotation is malformed.
	v := newVerdict(ctx, pol, h.metrics, "pods")
	v.add(policy.RuleEnginePods, errs)
	if resp, denied := v.denied(podKind, &pod.ObjectMeta); denied {
		return resp
	}
	// The patch is the difference between the typed pod before and after the mutators.
	original, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	changed := mutators.MutateEnginePod(pod, eng)

	var egressWarnings []string
	if h.egress != nil && (req.DryRun == nil || !*req.DryRun) {
		if egressWarnings, err = h.egress.Ensure(ctx, req.Namespace, eng, pol); err != nil {
			h.metrics.count(pol, "pods", policy.RuleEgressWrite, decisionDenied)
			logf.FromContext(ctx).Error(err, "writing egress policies failed; denying the engine pod")
			return admission.Denied(fmt.Sprintf("iss-webhook could not write the egress policies of this engine (%v); "+
				"the pod is denied so that it never runs with open egress: retry, and if it persists ask the platform team", err))
		}
	}
	if len(changed) == 0 {
		return v.allow(admission.Allowed("engine pod already conforms"), policy.RuleEnginePods, decisionAllowed).WithWarnings(egressWarnings...)
	}
	logf.FromContext(ctx).V(1).Info("mutated engine pod", "mutators", changed, "profile", eng.ProfileName, "egressPolicy", eng.EgressHash)
	return v.allow(patchFrom(original, pod), policy.RuleEnginePods, decisionMutated).WithWarnings(egressWarnings...)
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
	if pol.Exempt(req.Namespace) {
		return exempt(pol, h.metrics, "pods", policy.RuleEnginePods)
	}
	pod := &corev1.Pod{}
	v := newVerdict(ctx, pol, h.metrics, "pods")
	switch {
	case req.Operation == admissionv1.Create && req.SubResource == "",
		req.Operation == admissionv1.Update && req.SubResource == "resize":
		if err := h.decoder.Decode(req, pod); err != nil {
			return badRequest("pod", err)
		}
		eng, isEngine, errs := pol.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
		if req.SubResource == "" {
			v.add(policy.RuleIntegrity, policy.ValidateEgressLabel(&pod.ObjectMeta, eng, isEngine))
			// On create the mutating webhook has already warned about or audited the same
			// violations; here they only need to deny.
			if pol.Mode(policy.RuleEnginePods) != v1alpha1.Enforce {
				errs = nil
			}
		}
		v.add(policy.RuleEnginePods, errs)
		if !isEngine && len(v.deny) == 0 {
			return admission.Allowed("not a Dagger engine pod")
		}
		if resp, denied := v.denied(podKind, &pod.ObjectMeta); denied {
			return resp
		}
		return v.allow(admission.Allowed(""), policy.RuleEnginePods, decisionAllowed)
	case req.Operation == admissionv1.Update && req.SubResource == "ephemeralcontainers":
		if err := h.decoder.Decode(req, pod); err != nil {
			return badRequest("pod", err)
		}
		integrity, engine := pol.ValidateEphemeralContainers(&pod.ObjectMeta, &pod.Spec)
		v.add(policy.RuleIntegrity, integrity)
		v.add(policy.RuleEnginePods, engine)
		if resp, denied := v.denied(podKind, &pod.ObjectMeta); denied {
			return resp
		}
		return v.allow(admission.Allowed(""), policy.RuleEnginePods, decisionAllowed)
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
		if req.SubResource == "" {
			integrity, engine := pol.ReviewPodUpdate(old, pod)
			v.add(policy.RuleIntegrity, integrity)
			v.add(policy.RuleEnginePods, engine)
		} else {
			v.add(policy.RuleIntegrity, policy.ValidateISSMetadataUnchanged(&old.ObjectMeta, &pod.ObjectMeta, nil))
		}
		if resp, denied := v.denied(podKind, &old.ObjectMeta); denied {
			return resp
		}
		return admission.Allowed("").WithWarnings(v.warnings...)
	default:
		return admission.Allowed("iss-webhook validates pods on create, update, resize and ephemeral containers only")
	}
}
