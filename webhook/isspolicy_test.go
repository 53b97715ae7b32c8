package webhook

// These tests cover the validating webhook of ISSPolicies: an invalid policy must be refused on
// apply with every field path at once, as kubectl shows the API server's own validation errors,
// and a valid one that needs more than the policy to take effect must say so.

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// issPolicyRequest is the admission request of an ISSPolicy given as raw JSON.
func issPolicyRequest(op admissionv1.Operation, subresource, raw string) admission.Request {
	gvk := metav1.GroupVersionKind{Group: "iss.platform", Version: "v1alpha1", Kind: "ISSPolicy"}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:         "review-1",
		Kind:        gvk,
		Resource:    metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: "isspolicies"},
		SubResource: subresource,
		Name:        "default",
		Operation:   op,
		Object:      runtime.RawExtension{Raw: []byte(raw)},
		OldObject:   oldOf(op, []byte(raw)),
	}}
}

// issPolicyJSON returns an ISSPolicy of the given name and spec (a JSON object).
func issPolicyJSON(name, spec string) string {
	return `{"apiVersion":"iss.platform/v1alpha1","kind":"ISSPolicy","metadata":{"name":"` + name + `"},"spec":` + spec + `}`
}

// TestISSPolicyValidator checks the answers of the ISSPolicy webhook: what it admits, the
// causes of its denials (one per field path), and the warnings of policies that also need the
// webhook configurations changed.
func TestISSPolicyValidator(t *testing.T) {
	ctx := context.Background()
	h := Handlers(NewScheme(), Options{})[ValidateISSPoliciesPath]
	// A profile is only valid with a request and a limit of cpu, memory and ephemeral-storage.
	overLimitProfile := `{"name":"standard",` +
		`"requests":{"cpu":"4","memory":"1Gi","ephemeral-storage":"10Gi"},` +
		`"limits":{"cpu":"2","memory":"4Gi","ephemeral-storage":"10Gi"}}`

	for _, tc := range []struct {
		name string
		req  admission.Request
		// causes are the field paths of a 422 denial, in order; nil for an admitted policy.
		causes []string
		// warnings are substrings the admission warnings must contain, each in one warning
		// that also says what else it takes (matchConditions) or what the setting gives up (the path rules).
		warnings []string
		// noWarnings: an admitted policy that must come without warnings.
		noWarnings bool
	}{
		{
			name:       "empty spec: the built-in default",
			req:        issPolicyRequest(admissionv1.Create, "", issPolicyJSON("default", `{}`)),
			noWarnings: true,
		},
		{
			name:       "valid modes and exempt namespaces",
			req:        issPolicyRequest(admissionv1.Update, "", issPolicyJSON("default", `{"enforcement":{"enginePods":"Warn","autoscaling":"Audit"},"exemptNamespaces":["legacy"]}`)),
			noWarnings: true,
		},
		{
			name:   "another name",
			req:    issPolicyRequest(admissionv1.Create, "", issPolicyJSON("strict", `{}`)),
			causes: []string{"metadata.name"},
		},
		{
			name: "request above its limit and an empty temporalWorkers selector",
			req: issPolicyRequest(admissionv1.Create, "", issPolicyJSON("default",
				`{"engines":{"profiles":[`+overLimitProfile+`]},"temporalWorkers":{"selector":{}}}`)),
			causes: []string{"spec.engines.profiles[0].requests.cpu", "spec.temporalWorkers.selector"},
		},
		{
			name: "another name and an unknown mode, reported together",
			req: issPolicyRequest(admissionv1.Create, "", issPolicyJSON("strict",
				`{"enforcement":{"secrets":"Maybe"}}`)),
			causes: []string{"metadata.name", "spec.enforcement.secrets"},
		},
		{
			name: "an added engine image needs nothing more: the webhook rewrites its image tests",
			req: issPolicyRequest(admissionv1.Create, "", issPolicyJSON("default",
				`{"engines":{"images":["registry.dagger.io/engine","ghcr.io/acme/dagger-engine"]}}`)),
		},
		{
			name: "a non-ISS engine label and temporal selector need the matchConditions too",
			req: issPolicyRequest(admissionv1.Create, "", issPolicyJSON("default",
				`{"engines":{"labels":{"app":"dagger"}},"temporalWorkers":{"selector":{"matchLabels":{"tier":"worker"}}}}`)),
			warnings: []string{"spec.engines.labels: pods labelled app", "spec.temporalWorkers.selector: Deployments selected by tier"},
		},
		{
			name: "store providers that reach OpenBao or other namespaces' Secrets past the path rules",
			req: issPolicyRequest(admissionv1.Create, "", issPolicyJSON("default",
				`{"secrets":{"allowedStoreProviders":["aws","webhook","vault"]}}`)),
			warnings: []string{"the vault provider reads any OpenBao or Vault path", "the webhook provider calls any HTTP API, OpenBao's among them"},
		},
		{
			name: "a ClusterGenerator and an unknown store provider",
			req: issPolicyRequest(admissionv1.Create, "", issPolicyJSON("default",
				`{"secrets":{"allowedGeneratorKinds":["ClusterGenerator"],"allowedStoreProviders":["hashicorp"]}}`)),
			causes: []string{"spec.secrets.allowedGeneratorKinds[0]", "spec.secrets.allowedStoreProviders[0]"},
		},
		{
			name:       "status updates are not judged",
			req:        issPolicyRequest(admissionv1.Update, "status", issPolicyJSON("strict", `{"temporalWorkers":{"selector":{}}}`)),
			noWarnings: true,
		},
		{
			name:       "deletes are not judged",
			req:        issPolicyRequest(admissionv1.Delete, "", ""),
			noWarnings: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Handle(ctx, tc.req)
			if tc.causes != nil {
				if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid {
					t.Fatalf("want a 422 Invalid denial, got allowed %v: %+v", resp.Allowed, resp.Result)
				}
				d := resp.Result.Details
				if d == nil || d.Kind != "ISSPolicy" || d.Group != "iss.platform" {
					t.Fatalf("details %+v", d)
				}
				var fields []string
				for _, c := range d.Causes {
					fields = append(fields, c.Field)
				}
				if !slices.Equal(fields, tc.causes) {
					t.Errorf("causes at %q, want %q", fields, tc.causes)
				}
				return
			}
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			if tc.noWarnings && len(resp.Warnings) != 0 {
				t.Errorf("unexpected warnings %q", resp.Warnings)
			}
			if len(tc.warnings) > 0 && len(resp.Warnings) != len(tc.warnings) {
				t.Errorf("warnings %q, want %d", resp.Warnings, len(tc.warnings))
			}
			for _, want := range tc.warnings {
				found := false
				for _, w := range resp.Warnings {
					if strings.Contains(w, want) && (strings.Contains(w, "matchConditions") || strings.Contains(w, "the ISS-001 path rules do not hold")) {
						found = true
					}
				}
				if !found {
					t.Errorf("no warning mentions both %q and what it takes or gives up: %q", want, resp.Warnings)
				}
			}
		})
	}
}

// TestISSPolicyValidatorUndecodable checks that an object that is not an ISSPolicy is a 400 that
// says what could not be read, not a 500.
func TestISSPolicyValidatorUndecodable(t *testing.T) {
	h := Handlers(NewScheme(), Options{})[ValidateISSPoliciesPath]
	resp := h.Handle(context.Background(), issPolicyRequest(admissionv1.Create, "",
		`{"apiVersion":"iss.platform/v1alpha1","kind":"ISSPolicy","metadata":{"name":"default"},"spec":{"exemptNamespaces":"legacy"}}`))
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "cannot decode the ISSPolicy") {
		t.Fatalf("got allowed %v: %+v", resp.Allowed, resp.Result)
	}
}
