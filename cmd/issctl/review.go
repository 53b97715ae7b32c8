package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	jsonpatch "gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/manifests"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/webhook"
)

// route is one webhook of the configurations: what it is sent, and the handler that answers.
type route struct {
	name              string
	mutating          bool
	rules             []admissionregistrationv1.RuleWithOperations
	namespaceSelector *metav1.LabelSelector
	objectSelector    *metav1.LabelSelector
	handler           admission.Handler
}

// reviewer runs objects through the webhook's own handlers, as the API server would: every
// mutating webhook that matches, patch applied, then every validating one.
type reviewer struct {
	routes []route
	codecs serializer.CodecFactory
}

// newReviewer reads the embedded webhook configurations once and binds each webhook to its
// handler.
func newReviewer(handlers map[string]*admission.Webhook) (*reviewer, error) {
	r := &reviewer{codecs: serializer.NewCodecFactory(webhook.NewScheme())}
	mutating, validating, err := manifests.ParseWebhookConfigurations()
	if err != nil {
		return nil, err
	}
	add := func(name string, mutating bool, cc admissionregistrationv1.WebhookClientConfig, rules []admissionregistrationv1.RuleWithOperations, ns, obj *metav1.LabelSelector) error {
		h, ok := handlers[*cc.Service.Path]
		if !ok {
			return fmt.Errorf("webhook %s names path %s, which has no handler", name, *cc.Service.Path)
		}
		r.routes = append(r.routes, route{name: name, mutating: mutating, rules: rules, namespaceSelector: ns, objectSelector: obj, handler: h})
		return nil
	}
	for _, w := range mutating.Webhooks {
		if err := add(w.Name, true, w.ClientConfig, w.Rules, w.NamespaceSelector, w.ObjectSelector); err != nil {
			return nil, err
		}
	}
	for _, w := range validating.Webhooks {
		if err := add(w.Name, false, w.ClientConfig, w.Rules, w.NamespaceSelector, w.ObjectSelector); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// outcome is what the webhook answers about one object.
type outcome struct {
	Allowed bool `json:"allowed"`
	// DeniedBy is the webhook that denied the object.
	DeniedBy   string      `json:"deniedBy,omitempty"`
	Violations []violation `json:"violations,omitempty"`
	Message    string      `json:"message,omitempty"`
	Warnings   []string    `json:"warnings,omitempty"`
	Patch      []any       `json:"patch,omitempty"`
}

type violation struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// review evaluates one object being created in namespace, whose labels are nsLabels, by user.
func (r *reviewer) review(ctx context.Context, obj *unstructured.Unstructured, namespace string, nsLabels map[string]string, user authenticationv1.UserInfo) (outcome, error) {
	gvk := obj.GroupVersionKind()
	kind := webhook.FindKind(gvk.Group, gvk.Kind)
	if kind == nil {
		return outcome{Allowed: true}, nil // no webhook is sent a kind iss-webhook does not govern
	}
	resource := kind.Resource
	raw, err := r.encode(obj)
	if err != nil {
		return outcome{}, err
	}
	original := raw
	out := outcome{Allowed: true}
	for _, mutating := range []bool{true, false} {
		for _, rt := range r.routes {
			if rt.mutating != mutating || !rt.matches(gvk.Group, gvk.Version, resource, nsLabels, namespace, obj.GetLabels()) {
				continue
			}
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "issctl", Operation: admissionv1.Create, Namespace: namespace, Name: obj.GetName(),
				Kind:     metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
				Resource: metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
				UserInfo: user, DryRun: ptrTrue(), Object: runtime.RawExtension{Raw: raw},
			}}
			resp := rt.handler.Handle(ctx, req)
			out.Warnings = append(out.Warnings, resp.Warnings...)
			if !resp.Allowed {
				out.Allowed, out.DeniedBy = false, rt.name
				if resp.Result != nil {
					out.Message = resp.Result.Message
					if resp.Result.Details != nil {
						for _, c := range resp.Result.Details.Causes {
							out.Violations = append(out.Violations, violation{Field: c.Field, Message: c.Message})
						}
					}
				}
				return out, nil
			}
			if len(resp.Patches) > 0 {
				if raw, err = applyPatch(raw, resp.Patches); err != nil {
					return outcome{}, fmt.Errorf("applying the patch of %s: %w", rt.name, err)
				}
			}
		}
	}
	if !bytes.Equal(original, raw) {
		ops, err := jsonpatch.CreatePatch(original, raw)
		if err != nil {
			return outcome{}, err
		}
		// The diff walks maps: sort its operations so that the same object gives the same patch.
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].Path < ops[j].Path })
		for _, op := range ops {
			out.Patch = append(out.Patch, op)
		}
	}
	return out, nil
}

// encode returns the object as the API server sends it to webhooks: built-in kinds go through
// their typed form, which writes the empty structs that patches refer to.
func (r *reviewer) encode(obj *unstructured.Unstructured) ([]byte, error) {
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	typed, _, err := r.codecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		return raw, nil // a kind of a CRD: as it is
	}
	return json.Marshal(typed)
}

// matches tells whether the API server would send the object to this webhook. matchConditions
// are not evaluated: they only spare the webhook calls its handlers answer with "allowed".
func (rt *route) matches(group, version, resource string, nsLabels map[string]string, namespace string, objLabels map[string]string) bool {
	ruleMatch := false
	for _, rule := range rt.rules {
		if createsMatch(rule.Operations) && containsString(rule.APIGroups, group) &&
			containsString(rule.APIVersions, version) && containsString(rule.Resources, resource) {
			ruleMatch = true
		}
	}
	if !ruleMatch {
		return false
	}
	withName := policy.NamespaceSelectorLabels(namespace, nsLabels)
	for sel, set := range map[*metav1.LabelSelector]labels.Set{rt.namespaceSelector: withName, rt.objectSelector: objLabels} {
		if sel == nil {
			continue
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || !s.Matches(set) {
			return false
		}
	}
	return true
}

func applyPatch(doc []byte, patches []jsonpatch.JsonPatchOperation) ([]byte, error) {
	ops, err := json.Marshal(patches)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch5.DecodePatch(ops)
	if err != nil {
		return nil, err
	}
	return p.Apply(doc)
}

// createsMatch tells whether a rule's operations include CREATE.
func createsMatch(ops []admissionregistrationv1.OperationType) bool {
	for _, op := range ops {
		if op == admissionregistrationv1.Create || op == admissionregistrationv1.OperationAll {
			return true
		}
	}
	return false
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v || x == "*" {
			return true
		}
	}
	return false
}

func ptrTrue() *bool { b := true; return &b }
