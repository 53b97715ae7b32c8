package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/go-logr/logr"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// denyInvalid turns a list of violations into a 422 Invalid denial with one cause per field, the
// way the API server reports its own validation errors, so that kubectl prints every field path.
func denyInvalid(gk schema.GroupKind, meta metav1.Object, errs field.ErrorList) admission.Response {
	name := meta.GetName()
	if name == "" && meta.GetGenerateName() != "" {
		name = meta.GetGenerateName() + "*"
	}
	status := apierrors.NewInvalid(gk, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}

// patchFrom answers with the JSON patch from before, the object encoded before the mutators
// ran, to after, the object now. Both encodings come from the same code, so fields this build
// does not know are never touched.
func patchFrom(before []byte, after any) admission.Response {
	mutated, err := json.Marshal(after)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(before, mutated)
}

// badRequest answers a request whose object cannot be decoded. It says what could not be read;
// the API server shows the message to the user.
func badRequest(what string, err error) admission.Response {
	return admission.Errored(http.StatusBadRequest, fmt.Errorf("iss-webhook cannot decode the %s: %w", what, err))
}

// verdict gathers the violations of one review by rule group and applies each group's
// enforcement mode: Enforce denies, Warn admits with one admission warning per violation
// (kubectl prints them), Audit admits and only logs and counts. The adapter judges every kind
// through it, so that a mode means the same everywhere.
type verdict struct {
	pol      *policy.Policy
	metrics  *Metrics
	resource string
	ctx      context.Context

	// deny are the violations of enforced groups.
	deny field.ErrorList
	// denyGroups are the groups of deny, to count the denial under each.
	denyGroups []policy.RuleGroup
	// warnings are the admission warnings of groups in Warn mode.
	warnings []string
	// admitted are the groups whose violations were admitted (Warn or Audit).
	admitted []policy.RuleGroup
}

// newVerdict starts the verdict of a review of resource under pol.
func newVerdict(ctx context.Context, pol *policy.Policy, metrics *Metrics, resource string) *verdict {
	return &verdict{pol: pol, metrics: metrics, resource: resource, ctx: ctx}
}

// log returns the review's logger; only reviews with violations need it.
func (v *verdict) log() logr.Logger { return logf.FromContext(v.ctx) }

// add records the violations of one rule group.
func (v *verdict) add(group policy.RuleGroup, errs field.ErrorList) {
	if len(errs) == 0 {
		return
	}
	switch mode := v.pol.Mode(group); mode {
	case v1alpha1.Warn:
		for _, err := range errs {
			v.warnings = append(v.warnings, fmt.Sprintf("iss-webhook (%s: Warn): %s", group, err.Error()))
		}
		v.log().Info("admitted a violation in Warn mode", "rule", group, "violations", len(errs), "error", errs.ToAggregate().Error())
		v.metrics.count(v.pol, v.resource, group, decisionWarned)
		v.admitted = append(v.admitted, group)
	case v1alpha1.Audit:
		v.log().Info("admitted a violation in Audit mode", "rule", group, "violations", len(errs), "error", errs.ToAggregate().Error())
		v.metrics.count(v.pol, v.resource, group, decisionAudited)
		v.admitted = append(v.admitted, group)
	default:
		v.deny = append(v.deny, errs...)
		if !slices.Contains(v.denyGroups, group) {
			v.denyGroups = append(v.denyGroups, group)
		}
	}
}

// deny422 returns the 422 denial of the enforced groups' violations, counting it.
func (v *verdict) deny422(kind Kind, meta metav1.Object) admission.Response {
	for _, g := range v.denyGroups {
		v.metrics.count(v.pol, v.resource, g, decisionDenied)
	}
	v.log().Info("denied", "violations", len(v.deny), "error", v.deny.ToAggregate().Error())
	return denyInvalid(kind.GroupKind(), meta, v.deny)
}
