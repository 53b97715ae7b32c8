package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	jsonpatch "gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// kindAdapter answers the reviews of one governed kind at one path. It owns everything a review
// has in common, so that no rule repeats it and every kind behaves alike: it decodes the
// objects once, admits exempt namespaces, tells the rule who is asking (trusted identities, the
// webhook itself), holds objects being deleted to metadata changes, runs the kind's rule, and
// turns its Outcome into a response: the verdict of each rule group's mode, the patch of a
// mutation, the egress objects to write, the metrics.
type kindAdapter struct {
	kind   Kind
	review review
	// sent are the operations and subresources the configurations send this path.
	sent    map[operationOn]bool
	decoder admission.Decoder
	// typed kinds are decoded with the scheme, as the API server writes them; the others
	// (unstructured objects, metadata, the policy's views of foreign kinds) as JSON.
	typed bool
	o     Options
}

// operationOn is an operation on an object ("") or one of its subresources.
type operationOn struct {
	op          admissionv1.Operation
	subresource string
}

// Handle implements admission.Handler.
func (a *kindAdapter) Handle(ctx context.Context, req admission.Request) admission.Response {
	if !a.sent[operationOn{req.Operation, req.SubResource}] {
		return admission.Allowed("iss-webhook does not review this operation")
	}
	// What each operation carries: the object on create and update, the stored one on update
	// and delete. The rules rely on it.
	needObject, needOld := req.Operation != admissionv1.Delete, req.Operation != admissionv1.Create
	if req.Operation == admissionv1.Connect {
		// A connect carries the options of the connection (PodExecOptions, ...), not the
		// object: the rule reads the object from the webhook's cache.
		req.Object, req.OldObject = runtime.RawExtension{}, runtime.RawExtension{}
		needObject, needOld = false, false
	}
	obj, err := a.decode(req.Object, needObject)
	if err != nil {
		return badRequest(a.kind.Kind, err)
	}
	old, err := a.decode(req.OldObject, needOld)
	if err != nil {
		return badRequest("previous "+a.kind.Kind, err)
	}
	pol := a.o.Policies.Current()
	if a.kind.Exemptable && pol.Exempt(req.Namespace) {
		a.o.Metrics.count(pol, a.kind.Resource, a.kind.Groups[0], decisionExempt)
		return admission.Allowed("namespace exempt by the ISSPolicy")
	}
	r := &policy.Request{
		Operation: policy.Operation(req.Operation), SubResource: req.SubResource,
		Namespace: req.Namespace, Name: req.Name,
		User: req.UserInfo.Username, Groups: req.UserInfo.Groups,
		Trusted: pol.TrustedIdentities.Contains(req.UserInfo.Username, req.UserInfo.Groups),
		Self:    a.o.Self != "" && req.UserInfo.Username == a.o.Self,
		DryRun:  req.DryRun != nil && *req.DryRun,
		Orphan:  orphansDependents(req),
		Facts: policy.Facts{Namespaces: a.o.Namespaces, Engines: a.o.Engines, Paths: a.o.OpenBao, BuildRecords: a.o.Builds,
			PrivateSecrets: a.o.PrivateSecrets, Pods: a.o.Pods},
	}
	if resp, done := a.whileDeleting(ctx, pol, req, r, obj, old); done {
		return resp
	}
	return a.respond(ctx, pol, r, req.Object.Raw, obj, old, a.review.run(ctx, pol, r, obj, old))
}

// decode reads one side of a request into the kind's object; an absent side is nil, and an
// error when the operation needs it.
func (a *kindAdapter) decode(raw runtime.RawExtension, needed bool) (metav1.Object, error) {
	if len(raw.Raw) == 0 {
		if needed {
			return nil, errors.New("the request carries no object")
		}
		return nil, nil
	}
	obj := a.review.new()
	if a.typed {
		return obj, a.decoder.DecodeRaw(raw, obj.(runtime.Object))
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if err := json.Unmarshal(raw.Raw, &u.Object); err != nil {
			return nil, err
		}
		// Every field is kept, and the metadata must still be metadata: accessors of an
		// unstructured object would silently read a malformed one as empty.
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(raw.Raw, &meta); err != nil {
			return nil, err
		}
	} else if err := json.Unmarshal(raw.Raw, obj); err != nil {
		return nil, err
	}
	// Read as JSON, the object says itself what it is: it must be what the request says, or a
	// view of another kind would judge it (an object without a kind, say, would pass unchecked).
	if k, ok := obj.(interface{ GetObjectKind() schema.ObjectKind }); ok {
		if got := k.GetObjectKind().GroupVersionKind().Kind; got != a.kind.Kind {
			return nil, fmt.Errorf("the object's kind is %q, not %s", got, a.kind.Kind)
		}
	}
	return obj, nil
}

// decodedWithScheme tells whether the scheme decodes a kind's objects: the built-in kinds and the
// ISSPolicy, but not unstructured objects, metadata or the policy's own views of foreign kinds.
func decodedWithScheme(scheme *runtime.Scheme, obj metav1.Object) bool {
	switch o := obj.(type) {
	case *unstructured.Unstructured, *metav1.PartialObjectMetadata, json.Unmarshaler:
		return false
	case runtime.Object:
		_, _, err := scheme.ObjectKinds(o)
		return err == nil
	}
	return false
}

// whileDeleting answers an update of an object that is being deleted, the same for every kind:
// only its metadata may change (policy.ValidateUpdateWhileDeleting), and of the kind's rules
// only those of the metadata hold (Outcome.WhileDeleting), so that no rule of the spec keeps a
// finalizer from being removed. Trusted identities and the webhook update such objects as any
// other. The stored object decides: a deletionTimestamp in the request is not yet the API
// server's, which refuses to set it on update.
func (a *kindAdapter) whileDeleting(ctx context.Context, pol *policy.Policy, req admission.Request, r *policy.Request, obj, old metav1.Object) (admission.Response, bool) {
	if req.Operation != admissionv1.Update || req.SubResource != "" || r.Self || r.Trusted || old.GetDeletionTimestamp() == nil {
		return admission.Response{}, false
	}
	var cur, prev map[string]any
	if err := json.Unmarshal(req.Object.Raw, &cur); err != nil {
		return badRequest(a.kind.Kind, err), true
	}
	if err := json.Unmarshal(req.OldObject.Raw, &prev); err != nil {
		return badRequest("previous "+a.kind.Kind, err), true
	}
	out := a.review.run(ctx, pol, r, obj, old).WhileDeleting(old, obj)
	if errs := policy.ValidateUpdateWhileDeleting(prev, cur, old.GetDeletionTimestamp()); len(errs) > 0 && out.Refusal == nil {
		// A refusal of the kind's (a generated object is the webhook's) says more.
		out = policy.Outcome{Group: a.kind.Groups[0]}
		out.Add(policy.RuleIntegrity, errs)
	}
	if out.Skip == "" && len(out.Findings) == 0 && out.Refusal == nil {
		out.Skip = "being deleted: only metadata changed"
	}
	return a.respond(ctx, pol, r, req.Object.Raw, obj, old, out), true
}

// respond turns a rule's outcome into the response; sent is the object as the request carries it.
func (a *kindAdapter) respond(ctx context.Context, pol *policy.Policy, r *policy.Request, sent []byte, obj, old metav1.Object, out policy.Outcome) admission.Response {
	if out.Skip != "" {
		return admission.Allowed(out.Skip)
	}
	meta := obj
	if meta == nil {
		meta = old
	}
	v := newVerdict(ctx, pol, a.o.Metrics, a.kind.Resource)
	if a.o.AllCauses {
		v.maxCauses = 0
	}
	for _, f := range out.Findings {
		v.add(f.Group, f.Errors)
	}
	if len(v.deny) > 0 {
		return v.deny422(a.kind, meta)
	}
	if out.Refusal != nil {
		v.log().Info("denied", "error", out.Refusal.Message)
		if out.Refusal.Unavailable {
			a.o.Metrics.count(pol, a.kind.Resource, out.Refusal.Group, decisionUnavailable)
			return admission.Errored(http.StatusServiceUnavailable, errors.New(out.Refusal.Message))
		}
		a.o.Metrics.count(pol, a.kind.Resource, out.Refusal.Group, decisionDenied)
		return admission.Denied(out.Refusal.Message)
	}
	for _, note := range out.Notes {
		v.log().Info(note)
	}
	warnings := append(v.warnings, out.Warnings...)
	resp := admission.Allowed("")
	decision := decisionAllowed
	if out.Mutate != nil {
		original, err := json.Marshal(obj)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		if changed := out.Mutate(); len(changed) > 0 {
			logf.FromContext(ctx).V(1).Info("mutated", "kind", a.kind.Kind, "mutators", changed)
			resp, decision = patchFrom(original, obj), decisionMutated
			// The patch is made from the object as decoded, which the API server's objects
			// equal; one that lacks what the patch adds to (a spec, say) would get a patch that
			// the API server cannot apply: refuse it as undecodable instead.
			if err := patchApplies(sent, original, resp.Patches); err != nil {
				return badRequest(a.kind.Kind, fmt.Errorf("it lacks what iss-webhook must change: %w", err))
			}
		}
	}
	if out.Egress != nil && a.o.Egress != nil && !r.DryRun {
		written, err := a.o.Egress.Ensure(ctx, out.Egress.Namespace, out.Egress.Engine, pol)
		if err != nil {
			a.o.Metrics.count(pol, a.kind.Resource, policy.RuleEgressWrite, decisionDenied)
			logf.FromContext(ctx).Error(err, "writing egress policies failed; denying the engine pod")
			return admission.Denied(fmt.Sprintf("iss-webhook could not write the egress policies of this engine (%v); "+
				"the pod is denied so that it never runs with open egress: retry, and if it persists ask the platform team", err))
		}
		warnings = append(warnings, written...)
	}
	if out.BuildRecord != nil && a.o.BuildRecords != nil && !r.DryRun {
		written, err := a.o.BuildRecords.Ensure(ctx, out.BuildRecord, pol)
		if err != nil {
			group := policy.RuleBuildRecords
			if errors.As(err, new(*policy.BuildRecordConflict)) {
				group = policy.RuleTemporalWorkers
			}
			a.o.Metrics.count(pol, a.kind.Resource, group, decisionDenied)
			logf.FromContext(ctx).Info("denied: build record", "error", err.Error())
			return admission.Denied(err.Error())
		}
		warnings = append(warnings, written...)
	}
	if !slices.Contains(v.admitted, out.Group) {
		a.o.Metrics.count(pol, a.kind.Resource, out.Group, decision)
	}
	return resp.WithWarnings(warnings...)
}

// patchApplies tells why a mutation's patch, made from original, does not apply to the object
// as sent, or nil. The API server sends built-in kinds as they encode again: then it applies.
func patchApplies(sent, original []byte, ops []jsonpatch.JsonPatchOperation) error {
	var compact bytes.Buffer
	if json.Compact(&compact, sent) == nil && bytes.Equal(compact.Bytes(), original) {
		return nil
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	patch, err := jsonpatch5.DecodePatch(raw)
	if err != nil {
		return err
	}
	_, err = patch.Apply(sent)
	return err
}

// pathHandler answers one path: it hands each review to the adapter of its kind.
type pathHandler map[schema.GroupKind]*kindAdapter

// Handle implements admission.Handler.
func (h pathHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	a, ok := h[schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}]
	if !ok && req.Operation == admissionv1.Connect {
		// A connect names the kind of its options (PodExecOptions): the resource says whose.
		a, ok = h.byResource(req.Resource.Group, req.Resource.Resource)
	}
	if !ok {
		// Only a configuration edited by hand sends a kind the table does not name here: fail
		// closed, and say so.
		return admission.Denied(fmt.Sprintf("iss-webhook does not govern %s %s at this path, which its webhook configurations do not send it: remove the kind from the configuration, or install the configurations of this build", req.Kind.Group, req.Kind.Kind))
	}
	return a.Handle(ctx, req)
}

// byResource returns the adapter of the kind with the given group and resource.
func (h pathHandler) byResource(group, resource string) (*kindAdapter, bool) {
	for gk, a := range h {
		if gk.Group == group && a.kind.Resource == resource {
			return a, true
		}
	}
	return nil, false
}

// newPathHandlers returns the handler of every path, with the adapter of every kind whose rules
// name a webhook served there.
func newPathHandlers(scheme *runtime.Scheme, o Options) map[string]pathHandler {
	decoder := admission.NewDecoder(scheme)
	paths := map[string]pathHandler{}
	for _, e := range Endpoints() {
		if paths[e.Path] == nil {
			paths[e.Path] = pathHandler{}
		}
	}
	for _, k := range GovernedKinds() {
		for _, r := range k.Rules {
			h := paths[r.Webhook.Path]
			key := k.GroupKind()
			a := h[key]
			if a == nil {
				rv := k.Validate
				if r.Webhook.Mutating {
					rv = k.Mutate
				}
				if r.Review != nil {
					rv = *r.Review
				}
				a = &kindAdapter{kind: k, review: rv, sent: map[operationOn]bool{}, decoder: decoder, typed: decodedWithScheme(scheme, rv.new()), o: o}
				h[key] = a
			}
			for _, op := range r.Operations {
				if op == admissionregistrationv1.OperationAll {
					panic("governed kinds name their operations")
				}
				for _, sub := range r.Subresources {
					a.sent[operationOn{admissionv1.Operation(op), sub}] = true
				}
			}
		}
	}
	return paths
}

// orphansDependents tells whether a deletion's options leave the object's dependents behind.
// Options that cannot be read count as orphaning, which only makes the rules stricter.
func orphansDependents(req admission.Request) bool {
	if req.Operation != admissionv1.Delete || len(req.Options.Raw) == 0 {
		return false
	}
	var opts metav1.DeleteOptions
	if err := json.Unmarshal(req.Options.Raw, &opts); err != nil {
		return true
	}
	return opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationOrphan ||
		opts.OrphanDependents != nil && *opts.OrphanDependents
}
