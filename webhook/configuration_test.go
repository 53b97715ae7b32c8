package webhook

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/iss-platform/iss-webhook/manifests"
)

// TestConfigurationProperties checks what keeps the webhook from locking out a cluster or being
// bypassed, in every webhook of manifests/webhook: it fails closed, answers within 5s, matches
// equivalent versions, never sees the control plane's or its own namespaces (but for the guard of
// the build records there), and declares its side effects.
func TestConfigurationProperties(t *testing.T) {
	mutating, validating, err := manifests.ParseWebhookConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	type common struct {
		name        string
		failure     *admissionregistrationv1.FailurePolicyType
		timeout     *int32
		match       *admissionregistrationv1.MatchPolicyType
		sideEffects *admissionregistrationv1.SideEffectClass
		nsSelector  []string
	}
	var all []common
	collect := func(name string, f *admissionregistrationv1.FailurePolicyType, to *int32, m *admissionregistrationv1.MatchPolicyType, se *admissionregistrationv1.SideEffectClass, exprs []string) {
		all = append(all, common{name, f, to, m, se, exprs})
	}
	for _, w := range mutating.Webhooks {
		collect(w.Name, w.FailurePolicy, w.TimeoutSeconds, w.MatchPolicy, w.SideEffects, selectorExcludedNamespaces(w.NamespaceSelector))
		if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			t.Errorf("%s: reinvocationPolicy is not IfNeeded", w.Name)
		}
	}
	for _, w := range validating.Webhooks {
		collect(w.Name, w.FailurePolicy, w.TimeoutSeconds, w.MatchPolicy, w.SideEffects, selectorExcludedNamespaces(w.NamespaceSelector))
	}
	for _, w := range all {
		if w.failure == nil || *w.failure != admissionregistrationv1.Fail {
			t.Errorf("%s: failurePolicy is not Fail", w.name)
		}
		if w.timeout == nil || *w.timeout > 5 {
			t.Errorf("%s: timeoutSeconds is not at most 5", w.name)
		}
		if w.match == nil || *w.match != admissionregistrationv1.Equivalent {
			t.Errorf("%s: matchPolicy is not Equivalent", w.name)
		}
		if w.sideEffects == nil || (*w.sideEffects != admissionregistrationv1.SideEffectClassNone && *w.sideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun) {
			t.Errorf("%s: sideEffects is not None or NoneOnDryRun", w.name)
		}
		if w.name == validateBuildRecords.Name {
			// The guard of the build records in iss-webhook's own namespace; the objectSelector
			// keeps everything else there from it (see manifests' TestRenderedWebhookConfigurations).
			continue
		}
		for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", "iss-system"} {
			if !slices.Contains(w.nsSelector, ns) {
				t.Errorf("%s: namespaceSelector does not exclude %s", w.name, ns)
			}
		}
	}
}

// selectorExcludedNamespaces returns the namespaces a selector excludes by name.
func selectorExcludedNamespaces(sel *metav1.LabelSelector) []string {
	if sel == nil {
		return nil
	}
	for _, e := range sel.MatchExpressions {
		if e.Key == "kubernetes.io/metadata.name" && e.Operator == "NotIn" {
			return e.Values
		}
	}
	return nil
}
