package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/mutators"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// NamespaceLookup tells what the rules need of a namespace: its ISS labels. A namespace that
// does not exist is one of no app.
type NamespaceLookup interface {
	Namespace(ctx context.Context, name string) (policy.Namespace, error)
}

// CachedNamespaces looks namespaces up in an informer cache of their metadata.
type CachedNamespaces struct {
	cache client.Reader
}

// NewCachedNamespaces returns a NamespaceLookup that reads cache, which must hold Namespaces as
// metav1.PartialObjectMetadata.
func NewCachedNamespaces(cache client.Reader) *CachedNamespaces {
	return &CachedNamespaces{cache: cache}
}

// NamespaceMetadata returns the empty object under which the cache holds namespaces.
func NamespaceMetadata() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

// Namespace implements NamespaceLookup.
func (c *CachedNamespaces) Namespace(ctx context.Context, name string) (policy.Namespace, error) {
	ns := NamespaceMetadata()
	if err := c.cache.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return policy.Namespace{Name: name}, nil
		}
		return policy.Namespace{}, err
	}
	return policy.NamespaceFromLabels(name, ns.Labels), nil
}

// InitiatorDefaulter is the mutating handler for ExternalSecrets and PushSecrets: it sets the
// iss.platform/initiator-id annotation to the requesting user when it is absent.
type InitiatorDefaulter struct{}

// Handle implements admission.Handler.
func (InitiatorDefaulter) Handle(_ context.Context, req admission.Request) admission.Response {
	// Exempt namespaces too: the initiator binding is an integrity rule that holds there.
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	// Unstructured, so that the patch touches the annotation and nothing of fields this build
	// does not know.
	obj, err := decodeGeneric(req.Object.Raw)
	if err != nil {
		return badRequest(req.Kind.Kind, err)
	}
	meta := metav1.ObjectMeta{Annotations: obj.GetAnnotations()}
	if !mutators.InitiatorID(&meta, req.UserInfo.Username) {
		return admission.Allowed("")
	}
	original, err := json.Marshal(obj.Object)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	obj.SetAnnotations(meta.Annotations)
	return patchFrom(original, obj.Object)
}

// PathVerifier tells whether a path exists in an OpenBao KV v2 mount; errors mean OpenBao did
// not answer.
type PathVerifier interface {
	Exists(ctx context.Context, cfg policy.OpenBaoPolicy, mount, path string) (bool, error)
}

// SecretsValidator is the validating handler for ExternalSecrets, PushSecrets and SecretStores.
type SecretsValidator struct {
	policies   policy.Provider
	namespaces NamespaceLookup
	metrics    *Metrics
	verifier   PathVerifier
}

// NewSecretsValidator returns the validating handler of the OpenBao secret rules. verifier
// checks that paths exist when the policy turns that on; nil never checks.
func NewSecretsValidator(policies policy.Provider, namespaces NamespaceLookup, metrics *Metrics, verifier PathVerifier) *SecretsValidator {
	return &SecretsValidator{policies: policies, namespaces: namespaces, metrics: metrics, verifier: verifier}
}

// Handle implements admission.Handler.
func (h *SecretsValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	// The path, binding and store rules isolate the apps' secrets from each other: they are
	// integrity rules, enforced in every mode and in exempt namespaces too, where the platform's
	// stores would otherwise read any app's tree. Only the existence check has the mode of the
	// secrets group.
	pol := h.policies.Current()
	v := newVerdict(ctx, pol, h.metrics, req.Resource.Resource)
	ns, err := h.namespaces.Namespace(ctx, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("iss-webhook cannot read namespace %s from its cache: %w; retry", req.Namespace, err))
	}
	trusted := pol.TrustedIdentities.Contains(req.UserInfo.Username, req.UserInfo.Groups)
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}

	if req.Kind.Kind == "SecretStore" {
		obj := &policy.SecretStore{}
		if err := json.Unmarshal(req.Object.Raw, obj); err != nil {
			return badRequest(req.Kind.Kind, err)
		}
		v.add(policy.RuleIntegrity, pol.ValidateSecretStore(obj, ns))
		if resp, denied := v.denied(gk, &obj.ObjectMeta); denied {
			return resp
		}
		return v.allow(admission.Allowed(""), policy.RuleSecrets, decisionAllowed)
	}
	if req.Kind.Kind != "ExternalSecret" && req.Kind.Kind != "PushSecret" {
		return admission.Allowed("")
	}

	cur, err := decodeGeneric(req.Object.Raw)
	if err != nil {
		return badRequest(req.Kind.Kind, err)
	}
	meta := &metav1.ObjectMeta{Name: cur.GetName(), GenerateName: cur.GetGenerateName(), Annotations: cur.GetAnnotations()}
	var oldMeta *metav1.ObjectMeta
	specChanged := true
	if req.Operation == admissionv1.Update {
		old, err := decodeGeneric(req.OldObject.Raw)
		if err != nil {
			return badRequest("previous "+req.Kind.Kind, err)
		}
		oldMeta = &metav1.ObjectMeta{Annotations: old.GetAnnotations()}
		specChanged = !equality.Semantic.DeepEqual(old.Object["spec"], cur.Object["spec"])
		if cur.GetDeletionTimestamp() != nil {
			// Being deleted: finalizers must be removable whatever changed since.
			return admission.Allowed("being deleted")
		}
	}
	errs := pol.ValidateInitiator(oldMeta, meta, req.UserInfo.Username, trusted)
	if !specChanged {
		// Status, finalizer and label updates (External Secrets' own among them) leave what the
		// object reads and writes as it was checked.
		v.add(policy.RuleIntegrity, errs)
		if resp, denied := v.denied(gk, meta); denied {
			return resp
		}
		return v.allow(admission.Allowed(""), policy.RuleSecrets, decisionAllowed)
	}
	if req.Operation == admissionv1.Update {
		errs = append(errs, policy.ValidateSpecChange(oldMeta, req.UserInfo.Username, trusted)...)
	}
	spec, _ := cur.Object["spec"].(map[string]any)
	errs = append(errs, policy.ValidateKnownSpecFields(req.Kind.Kind, spec)...)
	var es *policy.ExternalSecret
	switch req.Kind.Kind {
	case "ExternalSecret":
		es = &policy.ExternalSecret{}
		if err := json.Unmarshal(req.Object.Raw, es); err != nil {
			return badRequest(req.Kind.Kind, err)
		}
		errs = append(errs, pol.ValidateExternalSecret(es, ns)...)
	case "PushSecret":
		ps := &policy.PushSecret{}
		if err := json.Unmarshal(req.Object.Raw, ps); err != nil {
			return badRequest(req.Kind.Kind, err)
		}
		errs = append(errs, pol.ValidatePushSecret(ps, ns)...)
	}
	v.add(policy.RuleIntegrity, errs)
	if resp, denied := v.denied(gk, meta); denied {
		return resp
	}
	var warnings []string
	if es != nil && pol.OpenBao.Verify && h.verifier != nil {
		missing, unavailable := h.verifyPaths(ctx, pol, ns, es)
		v.add(policy.RuleSecrets, missing)
		if unavailable != nil {
			msg := fmt.Sprintf("iss-webhook could not check that the OpenBao paths of %s %s exist: %v", req.Kind.Kind, meta.Name, unavailable)
			switch {
			case pol.OpenBao.OnUnavailable != policy.UnavailableWarn && pol.Mode(policy.RuleSecrets) == v1alpha1.Enforce:
				h.metrics.count(pol, req.Resource.Resource, policy.RuleSecrets, decisionDenied)
				return admission.Denied(msg + "; the policy denies what it cannot verify (openbao.onUnavailable: Deny): retry, and if it persists ask the platform team")
			case pol.Mode(policy.RuleSecrets) == v1alpha1.Audit:
				logf.FromContext(ctx).Info("admitted unverified in Audit mode", "error", msg)
			default:
				warnings = append(warnings, msg+"; admitted unverified")
			}
		}
	}
	v.add(policy.RuleSecrets, errs)
	if resp, denied := v.denied(gk, meta); denied {
		return resp
	}
	return v.allow(admission.Allowed(""), policy.RuleSecrets, decisionAllowed).WithWarnings(warnings...)
}

// decodeGeneric decodes an object as unstructured, keeping every field.
func decodeGeneric(raw []byte) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal(raw, &obj.Object); err != nil {
		return nil, err
	}
	return obj, nil
}

// verifyPaths checks, all at once and within the policy's timeout, that every path the
// ExternalSecret reads exists in the environment's KV v2 mount. It returns the missing ones as
// violations, and the first failure to get an answer.
func (h *SecretsValidator) verifyPaths(ctx context.Context, pol *policy.Policy, ns policy.Namespace, es *policy.ExternalSecret) (field.ErrorList, error) {
	mount := pol.Secrets.Environments[ns.Environment].Mount
	ctx, cancel := context.WithTimeout(ctx, pol.OpenBao.Timeout)
	defer cancel()
	paths := policy.ExternalSecretPaths(es)
	type result struct {
		exists bool
		err    error
	}
	results := make([]result, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			exists, err := h.verifier.Exists(ctx, pol.OpenBao, mount, p.Key)
			results[i] = result{exists, err}
		})
	}
	wg.Wait()
	var errs field.ErrorList
	for i, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		if !r.exists {
			errs = append(errs, field.NotFound(paths[i].Field, paths[i].Key))
			errs[len(errs)-1].Detail = fmt.Sprintf("no secret at this path in OpenBao (KV v2 mount %q of environment %q): create it there first, or fix the path", mount, ns.Environment)
		}
	}
	return errs, nil
}

// NamespaceValidator is the validating handler for Namespaces: only trusted identities may set
// or change their iss.platform/app-id and iss.platform/environment labels.
type NamespaceValidator struct {
	policies policy.Provider
	metrics  *Metrics
}

// NewNamespaceValidator returns the validating handler for Namespaces.
func NewNamespaceValidator(policies policy.Provider, metrics *Metrics) *NamespaceValidator {
	return &NamespaceValidator{policies: policies, metrics: metrics}
}

// Handle implements admission.Handler.
func (h *NamespaceValidator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	if h.policies.Current().TrustedIdentities.Contains(req.UserInfo.Username, req.UserInfo.Groups) {
		return admission.Allowed("trusted identity")
	}
	cur := &metav1.PartialObjectMetadata{}
	if err := json.Unmarshal(req.Object.Raw, cur); err != nil {
		return badRequest("namespace", err)
	}
	var oldMeta *metav1.ObjectMeta
	if req.Operation == admissionv1.Update {
		old := &metav1.PartialObjectMetadata{}
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return badRequest("previous namespace", err)
		}
		oldMeta = &old.ObjectMeta
	}
	if errs := policy.ValidateNamespaceLabels(oldMeta, &cur.ObjectMeta); len(errs) > 0 {
		h.metrics.count(h.policies.Current(), "namespaces", policy.RuleIntegrity, decisionDenied)
		return denyInvalid(schema.GroupKind{Kind: "Namespace"}, &cur.ObjectMeta, errs)
	}
	return admission.Allowed("")
}
