package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

var issPolicyKind = schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: "ISSPolicy"}

// ISSPolicyValidator is the validating handler for ISSPolicies: it denies, with every field
// path at once, what the CRD's schema and CEL rules cannot check (the same checks the policy
// reload runs), so that an invalid policy is refused on apply rather than only reported in
// its status.
type ISSPolicyValidator struct {
	decoder admission.Decoder
}

// NewISSPolicyValidator returns the validating handler for ISSPolicies.
func NewISSPolicyValidator(decoder admission.Decoder) *ISSPolicyValidator {
	return &ISSPolicyValidator{decoder: decoder}
}

// Handle implements admission.Handler.
func (h *ISSPolicyValidator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.SubResource != "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("")
	}
	obj := &v1alpha1.ISSPolicy{}
	if err := h.decoder.Decode(req, obj); err != nil {
		return badRequest("ISSPolicy", err)
	}
	var errs field.ErrorList
	if obj.Name != v1alpha1.PolicyName {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), obj.Name, "iss-webhook reads only the ISSPolicy named default: name it default"))
	}
	p, specErrs := policy.FromISSPolicy(&obj.Spec)
	errs = append(errs, specErrs...)
	if len(errs) > 0 {
		return denyInvalid(issPolicyKind, &obj.ObjectMeta, errs)
	}
	return admission.Allowed("").WithWarnings(issPolicyWarnings(p)...)
}

// issPolicyWarnings are the admission warnings of a valid policy: settings that take more than
// the policy to take effect.
func issPolicyWarnings(p *policy.Policy) []string {
	var warnings []string
	def := policy.Default()
	for k := range p.Engines.Labels {
		if _, ok := def.Engines.Labels[k]; !ok && !isISSKey(k) {
			warnings = append(warnings, fmt.Sprintf("spec.engines.labels: pods labelled %s reach iss-webhook only when the matchConditions of the engine-pods and workloads webhooks name the label: add it there (manifests/webhook/webhooks.yaml)", k))
		}
	}
	if sel := p.TemporalWorkers.Selector; sel != nil {
		keys := slices.Collect(maps.Keys(sel.MatchLabels))
		for _, e := range sel.MatchExpressions {
			keys = append(keys, e.Key)
		}
		for _, k := range keys {
			if !isISSKey(k) {
				warnings = append(warnings, fmt.Sprintf("spec.temporalWorkers.selector: Deployments selected by %s reach iss-webhook only when the matchConditions of the workloads webhook name the label: add it there (manifests/webhook/webhooks.yaml)", k))
			}
		}
	}
	slices.Sort(warnings)
	return warnings
}

// isISSKey tells whether a label key is an ISS one, which the matchConditions always let through.
func isISSKey(k string) bool { return strings.HasPrefix(k, policy.Prefix) }
