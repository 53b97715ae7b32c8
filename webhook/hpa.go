package webhook

import (
	"context"
	"encoding/json"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/mutators"
	"github.com/iss-platform/iss-webhook/policy"
)

var hpaKind = schema.GroupKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}

// HPAHandler is the mutating and validating handler for HorizontalPodAutoscalers
// (autoscaling/v2): mutate fills in the saturation metric and behavior, validate requires the
// saturation metric.
type HPAHandler struct {
	policies policy.Provider
	decoder  admission.Decoder
	metrics  *Metrics
	mutate   bool
}

// NewHPADefaulter returns the mutating HPA handler.
func NewHPADefaulter(policies policy.Provider, decoder admission.Decoder, metrics *Metrics) *HPAHandler {
	return &HPAHandler{policies: policies, decoder: decoder, metrics: metrics, mutate: true}
}

// NewHPAValidator returns the validating HPA handler.
func NewHPAValidator(policies policy.Provider, decoder admission.Decoder, metrics *Metrics) *HPAHandler {
	return &HPAHandler{policies: policies, decoder: decoder, metrics: metrics}
}

// Handle implements admission.Handler.
func (h *HPAHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.SubResource != "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("")
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := h.decoder.Decode(req, hpa); err != nil {
		return badRequest("HorizontalPodAutoscaler", err)
	}
	pol := h.policies.Current()
	if pol.Exempt(req.Namespace) {
		return exempt(pol, h.metrics, "horizontalpodautoscalers", policy.RuleAutoscaling)
	}
	a := &pol.Autoscaling
	if !h.mutate {
		v := newVerdict(ctx, pol, h.metrics, "horizontalpodautoscalers")
		v.add(policy.RuleAutoscaling, a.ValidateHPA(hpa))
		if resp, denied := v.denied(hpaKind, &hpa.ObjectMeta); denied {
			return resp
		}
		return v.allow(admission.Allowed(""), policy.RuleAutoscaling, decisionAllowed)
	}
	original, err := json.Marshal(hpa)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	// On update too: a re-apply that drops metrics gets the API server's CPU default, which
	// HPADefaults recognises and replaces.
	if !mutators.HPADefaults(hpa, a) {
		return admission.Allowed("")
	}
	h.metrics.count(pol, "horizontalpodautoscalers", policy.RuleAutoscaling, decisionMutated)
	return patchFrom(original, hpa)
}
