package webhook

import (
	"context"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// sampleObjects returns one object of every governed kind, from the corpus's base objects and
// the examples.
func sampleObjects(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	samples := map[string]*unstructured.Unstructured{}
	for _, obj := range corpusObjects(t, "testdata/corpus/objects.yaml", "../manifests/examples/10-externalsecret-own-app.yaml") {
		key := obj.GroupVersionKind().Group + "/" + obj.GetKind()
		if _, ok := samples[key]; !ok {
			samples[key] = obj
		}
	}
	for _, k := range GovernedKinds() {
		if samples[k.Group+"/"+k.Kind] == nil {
			t.Fatalf("no sample object of %s", k.Kind)
		}
	}
	return samples
}

// kindPaths returns the paths that are sent an operation on objects of a kind, with whether
// they mutate.
func kindPaths(k Kind, op admissionregistrationv1.OperationType) map[string]bool {
	paths := map[string]bool{}
	for _, r := range k.Rules {
		if slices.Contains(r.Operations, op) && slices.Contains(r.Subresources, "") {
			paths[r.Webhook.Path] = r.Webhook.Mutating
		}
	}
	return paths
}

// TestUndecodableObjects: an object that cannot be decoded is refused with a 400 that names the
// kind, by every handler of every governed kind, in exempt namespaces too: never an allow of what
// the rules could not read, never a 500.
func TestUndecodableObjects(t *testing.T) {
	samples := sampleObjects(t)
	exempt := policy.Default()
	exempt.ExemptNamespaces = []string{"team-a-dev"}
	for _, pol := range []*policy.Policy{policy.Default(), exempt} {
		hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(pol), Metrics: testMetrics(t)})
		for _, k := range GovernedKinds() {
			obj := samples[k.Group+"/"+k.Kind].DeepCopy()
			obj.Object["metadata"] = map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace(), "labels": "not-a-map"}
			for path := range kindPaths(k, admissionregistrationv1.Create) {
				for _, body := range [][]byte{mustJSON(obj.Object), []byte(`{"apiVersion":`)} {
					req := request(admissionv1.Create, "", userAlice, samples[k.Group+"/"+k.Kind], nil)
					req.Object.Raw = body
					resp := hooks[path].Handle(context.Background(), admission.Request{AdmissionRequest: req})
					if resp.Allowed || resp.Result.Code != 400 || !strings.Contains(resp.Result.Message, "cannot decode the "+k.Kind) {
						t.Errorf("%s %s (exempt %v): want a 400 naming %s, got allowed %v %+v", k.Kind, path, pol.Exempt("team-a-dev"), k.Kind, resp.Allowed, resp.Result)
					}
				}
			}
		}
	}
}

// TestObjectsBeingDeleted: while an object waits for its finalizers, every governed kind admits
// metadata changes (a finalizer removed) without judging its spec again, denies a change of its
// spec and of its ISS labels, and keeps generated objects the webhook's. Trusted identities are
// judged by the kind's rules as on any update (TestTrustedIdentitiesWhileDeleting).
func TestObjectsBeingDeleted(t *testing.T) {
	samples := sampleObjects(t)
	hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t), Self: corpusSelf})
	for _, k := range GovernedKinds() {
		deleting := beingDeleted(samples, k)
		deleting.SetFinalizers([]string{"example.org/hold"})
		released := deleting.DeepCopy()
		released.SetFinalizers(nil)
		retargeted := deleting.DeepCopy()
		retargeted.Object["spec"] = map[string]any{"changed": true}
		switch k.Kind {
		case "Namespace":
			retargeted.Object["spec"] = map[string]any{"finalizers": []any{"example.org/other"}}
		case "PodTemplate": // no spec: its template is what it says
			delete(retargeted.Object, "spec")
			retargeted.Object["template"] = map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "other", "image": "other:v1"}}}}
		}
		relabelled := deleting.DeepCopy()
		relabelled.SetLabels(map[string]string{policy.Prefix + "x": "y", policy.LabelEngine: "dagger"})
		// A generated object stays the webhook's while it is being deleted, too.
		generated := deleting.GetLabels()[policy.LabelManagedBy] == policy.ManagedByValue
		for _, tc := range []struct {
			name    string
			cur     *unstructured.Unstructured
			user    authenticationv1.UserInfo
			allowed bool
			message string
		}{
			{"a finalizer removed", released, userAlice, !generated, "only iss-webhook may"},
			{"the spec changed", retargeted, userAlice, false, map[bool]string{true: "only iss-webhook may", false: "is being deleted"}[generated]},
			{"ISS labels changed", relabelled, userAlice, false, map[bool]string{true: "only iss-webhook may", false: "immutable"}[generated]},
		} {
			for path, mutating := range kindPaths(k, admissionregistrationv1.Update) {
				req := request(admissionv1.Update, "", tc.user, tc.cur, deleting)
				resp := hooks[path].Handle(context.Background(), admission.Request{AdmissionRequest: req})
				if resp.Allowed != tc.allowed || (!resp.Allowed && !strings.Contains(resp.Result.Message, tc.message)) {
					t.Errorf("%s %s, %s: want allowed %v (%q), got %v %+v", k.Kind, path, tc.name, tc.allowed, tc.message, resp.Allowed, resp.Result)
				}
				if mutating && len(resp.Patches) > 0 {
					t.Errorf("%s %s, %s: an object being deleted was mutated: %v", k.Kind, path, tc.name, resp.Patches)
				}
			}
		}
	}
}

// TestTrustedIdentitiesWhileDeleting: a trusted identity updates an object being deleted under the
// kind's rules, as any other object: the platform's way out of an object stuck on its finalizers.
func TestTrustedIdentitiesWhileDeleting(t *testing.T) {
	samples := sampleObjects(t)
	hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t), Self: corpusSelf})
	for _, k := range GovernedKinds() {
		deleting := beingDeleted(samples, k)
		retargeted := deleting.DeepCopy()
		retargeted.Object["spec"] = map[string]any{"changed": true}
		for path := range kindPaths(k, admissionregistrationv1.Update) {
			req := request(admissionv1.Update, "", userAdmin, retargeted, deleting)
			resp := hooks[path].Handle(context.Background(), admission.Request{AdmissionRequest: req})
			if !resp.Allowed && strings.Contains(resp.Result.Message, "is being deleted") {
				t.Errorf("%s %s: a trusted identity was held to metadata changes: %s", k.Kind, path, resp.Result.Message)
			}
			if !resp.Allowed && resp.Result.Code >= 500 {
				t.Errorf("%s %s: %d %s", k.Kind, path, resp.Result.Code, resp.Result.Message)
			}
		}
	}
}

// TestRequestsTheRulesCannotJudge: a request without the sides its operation carries, an object
// that is not of the kind the request names, and a kind the table does not govern at a path are
// refused, never judged as something else or admitted unchecked.
func TestRequestsTheRulesCannotJudge(t *testing.T) {
	samples := sampleObjects(t)
	hooks := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t)})
	handle := func(path string, req admissionv1.AdmissionRequest) admission.Response {
		return hooks[path].Handle(context.Background(), admission.Request{AdmissionRequest: req})
	}
	pod := samples["/Pod"]
	noOld := request(admissionv1.Update, "", userAlice, pod, pod)
	noOld.OldObject.Raw = nil
	if resp := handle(ValidateEnginePodsPath, noOld); resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("an update without the stored pod: want 400, got %v %+v", resp.Allowed, resp.Result)
	}
	np := samples["networking.k8s.io/NetworkPolicy"]
	noOldNP := request(admissionv1.Delete, "", userAlice, nil, np)
	noOldNP.OldObject.Raw = nil
	if resp := handle(ValidateNetworkPoliciesPath, noOldNP); resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("a delete without the stored policy: want 400, got %v %+v", resp.Allowed, resp.Result)
	}
	es := samples["external-secrets.io/ExternalSecret"].DeepCopy()
	unstructured.RemoveNestedField(es.Object, "kind")
	kindless := request(admissionv1.Create, "", userAlice, samples["external-secrets.io/ExternalSecret"], nil)
	kindless.Object.Raw = mustJSON(es.Object)
	if resp := handle(ValidateSecretsPath, kindless); resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("an ExternalSecret without a kind: want 400, got %v %+v", resp.Allowed, resp.Result)
	}
	// A deletionTimestamp the request sets itself is not the API server's: the rules judge it.
	hpa := samples["autoscaling/HorizontalPodAutoscaler"]
	selfDeleting := hpa.DeepCopy()
	selfDeleting.SetDeletionTimestamp(&metav1.Time{Time: mustTime("2026-11-30T12:00:00Z")})
	unstructured.RemoveNestedField(selfDeleting.Object, "spec", "metrics")
	if resp := handle(MutateHPAsPath, request(admissionv1.Update, "", userAlice, selfDeleting, hpa)); !resp.Allowed || len(resp.Patches) == 0 {
		t.Errorf("an update that sets its own deletionTimestamp escaped the HPA defaults: %v %+v", resp.Allowed, resp.Result)
	}
	other := request(admissionv1.Create, "", userAlice, pod, nil)
	other.Kind.Kind, other.Resource.Resource = "ReplicationController", "replicationcontrollers"
	if resp := handle(ValidateEnginePodsPath, other); resp.Allowed {
		t.Errorf("a kind the table does not govern at the path was admitted")
	}
}

// beingDeleted returns the sample object of a kind as it is while it waits for its finalizers.
func beingDeleted(samples map[string]*unstructured.Unstructured, k Kind) *unstructured.Unstructured {
	obj := samples[k.Group+"/"+k.Kind].DeepCopy()
	if obj.GetNamespace() == "" && k.Scope == "Namespaced" {
		obj.SetNamespace("team-a-dev")
	}
	obj.SetDeletionTimestamp(&metav1.Time{Time: mustTime("2026-11-30T12:00:00Z")})
	return obj
}
