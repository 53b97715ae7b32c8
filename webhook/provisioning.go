package webhook

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// ProvisioningValidator is the validating handler for Pulumi Stacks and tofu-controller
// Terraforms.
type ProvisioningValidator struct {
	policies policy.Provider
	metrics  *Metrics
}

// NewProvisioningValidator returns the validating handler for provisioning objects.
func NewProvisioningValidator(policies policy.Provider, metrics *Metrics) *ProvisioningValidator {
	return &ProvisioningValidator{policies: policies, metrics: metrics}
}

// Handle implements admission.Handler.
func (h *ProvisioningValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.SubResource != "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("")
	}
	obj, err := decodeGeneric(req.Object.Raw)
	if err != nil {
		return badRequest(req.Kind.Kind, err)
	}
	if obj.GetDeletionTimestamp() != nil {
		return admission.Allowed("being deleted")
	}
	pol := h.policies.Current()
	if pol.Exempt(req.Namespace) {
		return exempt(pol, h.metrics, req.Resource.Resource, policy.RuleProvisioning)
	}
	p := &pol.Provisioning
	var errs field.ErrorList
	switch req.Kind.Kind {
	case "Stack":
		errs = p.ValidateStack(obj)
	case "Terraform":
		errs = p.ValidateTerraform(obj)
	}
	v := newVerdict(ctx, pol, h.metrics, req.Resource.Resource)
	v.add(policy.RuleProvisioning, errs)
	if resp, denied := v.denied(schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}, &metav1.ObjectMeta{Name: obj.GetName(), GenerateName: obj.GetGenerateName()}); denied {
		return resp
	}
	return v.allow(admission.Allowed(""), policy.RuleProvisioning, decisionAllowed)
}
