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

// ruleProvisioning names the provisioning rules (ISS-001 section 3) in metrics.
const ruleProvisioning = "provisioning"

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
func (h *ProvisioningValidator) Handle(_ context.Context, req admission.Request) admission.Response {
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
	p := &h.policies.Current().Provisioning
	var errs field.ErrorList
	switch req.Kind.Kind {
	case "Stack":
		errs = p.ValidateStack(obj)
	case "Terraform":
		errs = p.ValidateTerraform(obj)
	}
	if len(errs) > 0 {
		h.metrics.count(req.Resource.Resource, ruleProvisioning, decisionDenied)
		return denyInvalid(schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}, &metav1.ObjectMeta{Name: obj.GetName(), GenerateName: obj.GetGenerateName()}, errs)
	}
	return admission.Allowed("")
}
