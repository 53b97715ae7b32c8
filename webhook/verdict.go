package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

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

// The limits of a denial, so that it stays readable whatever the object holds: a megabyte
// annotation or thousands of violations would otherwise come back whole, to kubectl and into the
// API server's logs. Every violation is still counted and logged, and issctl prints them all.
const (
	// MaxCauses is how many violations a denial names; the last cause says how many more.
	MaxCauses = 25
	// maxValue, maxKey and maxDetail bound an echoed value, a map key in a field path, and a
	// message.
	maxValue, maxKey, maxDetail = 200, 100, 1000
)

// denyInvalid turns a list of violations into a 422 Invalid denial with one cause per field, the
// way the API server reports its own validation errors, so that kubectl prints every field path.
// Echoed values, keys and messages are shortened; with maxCauses > 0 at most that many
// violations are named.
func denyInvalid(gk schema.GroupKind, meta metav1.Object, errs field.ErrorList, maxCauses int) admission.Response {
	name := meta.GetName()
	if name == "" && meta.GetGenerateName() != "" {
		name = meta.GetGenerateName() + "*"
	}
	status := apierrors.NewInvalid(gk, shorten(name, maxKey), readable(errs, maxCauses)).ErrStatus
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
	// maxCauses bounds the violations a denial names; 0 names all.
	maxCauses int
}

// newVerdict starts the verdict of a review of resource under pol.
func newVerdict(ctx context.Context, pol *policy.Policy, metrics *Metrics, resource string) *verdict {
	return &verdict{pol: pol, metrics: metrics, resource: resource, ctx: ctx, maxCauses: MaxCauses}
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
	v.log().Info("denied", "violations", len(v.deny), "error", readable(v.deny, 0).ToAggregate().Error())
	return denyInvalid(kind.GroupKind(), meta, v.deny, v.maxCauses)
}

// readable returns errs with echoed values, keys and messages shortened, and at most maxCauses of
// them (all when maxCauses is 0), the last saying how many were left out.
func readable(errs field.ErrorList, maxCauses int) field.ErrorList {
	out := make(field.ErrorList, 0, len(errs))
	for i, e := range errs {
		if maxCauses > 0 && i == maxCauses-1 && len(errs) > maxCauses {
			out = append(out, &field.Error{Type: field.ErrorTypeForbidden, Field: "<more>",
				Detail: fmt.Sprintf("and %d more violations, not listed here: run issctl check on the manifest to see every one", len(errs)-i)})
			break
		}
		short := *e
		short.Field = shortenKeys(e.Field)
		short.Detail = shorten(e.Detail, maxDetail)
		if v, ok := e.BadValue.(string); ok {
			short.BadValue = shorten(v, maxValue)
		}
		out = append(out, &short)
	}
	return out
}

// shorten cuts s to at most limit bytes, saying how long it was.
func shorten(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:cut], len(s))
}

// shortenKeys shortens the map keys of a field path, such as metadata.annotations[<key>].
func shortenKeys(path string) string {
	if len(path) <= maxKey {
		return path
	}
	var b strings.Builder
	for {
		open := strings.IndexByte(path, '[')
		if open < 0 {
			b.WriteString(path)
			return b.String()
		}
		end := strings.IndexByte(path[open:], ']')
		if end < 0 {
			b.WriteString(shorten(path, maxKey))
			return b.String()
		}
		b.WriteString(path[:open+1])
		b.WriteString(shorten(path[open+1:open+end], maxKey))
		b.WriteByte(']')
		path = path[open+end+1:]
	}
}
