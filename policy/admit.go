package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// The validating rules of every governed kind, in the one shape of admission.go. The mutating
// ones are in package mutators.

// AdmitPod validates a pod: on create and in-place resize the engine rules; on create also the
// egress label that the mutating webhook set, and that only trusted identities (the ReplicaSet
// controller) make pods of a Temporal build; on update, unless a trusted identity makes it, ISS
// labels and annotations stay as they were, no pod becomes an engine, an engine still follows
// the engine rules and a pod of a Temporal build keeps its code; ephemeral containers may not
// run the engine image, nor be added by others than trusted identities to a build's pods.
func AdmitPod(ctx context.Context, p *Policy, req *Request, pod, old *corev1.Pod) Outcome {
	out := Outcome{Group: RuleEnginePods}
	switch {
	case req.Operation == Create && req.SubResource == "", req.Operation == Update && req.SubResource == "resize":
		eng, isEngine, errs := p.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
		var build field.ErrorList
		if req.SubResource == "" {
			out.Add(RuleIntegrity, ValidateEgressLabel(&pod.ObjectMeta, eng, isEngine))
			if !req.Trusted {
				errs = append(errs, ValidateStatefulSetClaims(eng, &pod.Spec, req.User)...)
			}
			out.Warnings = append(out.Warnings, eng.Warnings...)
			// On create the mutating webhook has already warned about or audited the same
			// violations; here they only need to deny.
			if p.Mode(RuleEnginePods) != v1alpha1.Enforce {
				errs = nil
			}
			if !req.Trusted {
				build = p.TemporalWorkers.ValidateWorkerPod(nil, pod)
			}
		}
		if !isEngine && req.SubResource == "" {
			// No mutating rule judged it: this one denies, warns or audits by itself.
			var refusal *Refusal
			if errs, refusal = privilegedInAppNamespace(ctx, req, &pod.Spec, nil); refusal != nil {
				return Outcome{Refusal: refusal}
			}
		}
		out.Add(RuleEnginePods, errs)
		out.Add(RuleTemporalWorkers, build)
		if !isEngine && len(out.Findings) == 0 && !out.Denies(p) {
			return Outcome{Skip: "not a Dagger engine pod"}
		}
		if !isEngine {
			out.Group = RuleTemporalWorkers
		}
	case req.Operation == Update && req.SubResource == "ephemeralcontainers":
		integrity, engine := p.ValidateEphemeralContainers(&pod.ObjectMeta, &pod.Spec)
		if _, isEngine := p.Engines.Match(&pod.ObjectMeta, &pod.Spec); !isEngine {
			privileged, refusal := privilegedInAppNamespace(ctx, req, &corev1.PodSpec{EphemeralContainers: pod.Spec.EphemeralContainers}, nil)
			if refusal != nil {
				return Outcome{Refusal: refusal}
			}
			engine = append(engine, privileged...)
		}
		out.Add(RuleIntegrity, integrity)
		out.Add(RuleEnginePods, engine)
		if !req.Trusted {
			out.Add(RuleTemporalWorkers, p.TemporalWorkers.ValidateWorkerEphemeralContainers(old, pod))
		}
	case req.Operation == Update && (req.SubResource == "" || req.SubResource == "status"):
		if req.Trusted {
			return Outcome{Skip: "trusted identity"}
		}
		// A status update can change only metadata besides the status, which the same
		// protection covers; an update of the pod itself also follows the engine rules, and a
		// pod of a Temporal build keeps its code.
		if req.SubResource == "" {
			integrity, engine := p.ReviewPodUpdate(old, pod)
			out.Add(RuleIntegrity, integrity)
			out.Add(RuleEnginePods, engine)
			out.Add(RuleTemporalWorkers, p.TemporalWorkers.ValidateWorkerPod(old, pod))
		} else {
			out.Add(RuleIntegrity, ValidateISSMetadataUnchanged(&old.ObjectMeta, &pod.ObjectMeta, nil))
		}
	default:
		return Outcome{Skip: "iss-webhook validates pods on create, update, resize and ephemeral containers only"}
	}
	return out
}

// privilegedInAppNamespace applies ValidatePrivilegedNonEngine in the apps' namespaces (those
// with an iss.platform/app-id label), where engines run; elsewhere privileged agents of the
// platform (a CNI, a storage driver) run as they are, and Pod Security admission limits them.
// The namespace is looked up only when there is something to deny.
func privilegedInAppNamespace(ctx context.Context, req *Request, spec *corev1.PodSpec, root *field.Path) (field.ErrorList, *Refusal) {
	errs := ValidatePrivilegedNonEngine(spec, root)
	if len(errs) == 0 {
		return nil, nil
	}
	ns, refusal := lookUpNamespace(ctx, req)
	if refusal != nil || !ns.Governed() {
		return nil, refusal
	}
	return errs, nil
}

// AdmitNetworkPolicy guards NetworkPolicies, CiliumNetworkPolicies and ClusterNetworkPolicies.
// The objects the webhook generated may be changed or deleted only by the webhook and trusted
// identities, and by those only once no running engine uses them; nobody else may take their
// names or label, and others' policies with egress rules must exclude engines.
func AdmitNetworkPolicy(ctx context.Context, _ *Policy, req *Request, obj, old *unstructured.Unstructured) Outcome {
	if req.Self {
		return Outcome{Skip: "iss-webhook"}
	}
	if req.Trusted {
		if req.Operation == Delete {
			// The namespace controller deletes a namespace's policies while its engines may still
			// be terminating: not before they are gone, or they would run with open egress.
			return generatedStillSelected(ctx, req, old)
		}
		return Outcome{Skip: "trusted identity"}
	}
	out := Outcome{Group: RuleIntegrity}
	if (req.Operation == Update || req.Operation == Delete) && old.GetLabels()[LabelManagedBy] == ManagedByValue {
		name := req.Name
		if req.Namespace != "" {
			name = req.Namespace + "/" + name
		}
		verb := map[Operation]string{Update: "change", Delete: "delete"}[req.Operation]
		out.Refusal = &Refusal{Group: RuleIntegrity, Message: fmt.Sprintf("%s %s is generated by iss-webhook from the %s annotation of engine pods (ISS-001 section 4) and only iss-webhook may %s it: "+
			"to change an engine's egress, create the engine with another annotation; unused policies are removed automatically", old.GetKind(), name, AnnotationNetworkAccess, verb)}
		return out
	}
	if req.Operation != Create && req.Operation != Update {
		return Outcome{Skip: "not a generated policy"}
	}
	out.Add(RuleIntegrity, ValidateUserNetworkPolicy(obj))
	return out
}

// generatedStillSelected refuses the deletion of a generated policy that running engines still
// select.
func generatedStillSelected(ctx context.Context, req *Request, old *unstructured.Unstructured) Outcome {
	hash := old.GetLabels()[LabelEgressPolicy]
	if req.Facts.Engines == nil || old.GetLabels()[LabelManagedBy] != ManagedByValue || hash == "" {
		return Outcome{Skip: "trusted identity"}
	}
	namespace := old.GetNamespace()
	if namespace == "" {
		namespace = old.GetLabels()[LabelEgressNamespace]
	}
	n, err := req.Facts.Engines.RunningEngines(ctx, namespace, hash)
	if err != nil {
		return Outcome{Refusal: &Refusal{Group: RuleIntegrity, Unavailable: true, Message: fmt.Sprintf("iss-webhook cannot tell whether engines still use this policy: %v; retry", err)}}
	}
	if n > 0 {
		return Outcome{Refusal: &Refusal{Group: RuleIntegrity, Message: fmt.Sprintf("%d engine pod(s) in %s still run with this egress policy: it is deleted once they are gone, so that no engine runs with open egress; retry then", n, namespace)}}
	}
	return Outcome{Skip: "trusted identity"}
}

// AdmitExternalSecret validates an ExternalSecret or PushSecret. The path, binding and store
// rules isolate the apps' secrets from each other: they are integrity rules, enforced in every
// mode and in exempt namespaces too, where the platform's stores would otherwise read any app's
// tree. Only the OpenBao existence check has the mode of the secrets group.
func AdmitExternalSecret(ctx context.Context, p *Policy, req *Request, obj, old *SecretObject) Outcome {
	if req.Operation == Delete {
		return admitExternalSecretDeletion(ctx, req, old)
	}
	ns, refusal := lookUpNamespace(ctx, req)
	if refusal != nil {
		return Outcome{Refusal: refusal}
	}
	out := Outcome{Group: RuleSecrets}
	if req.SubResource == "status" {
		// The paths a PushSecret's status records are those External Secrets deletes.
		if obj.PushSecret != nil {
			out.Add(RuleIntegrity, p.ValidatePushSecretStatus(obj.PushSecret, ns))
		}
		return out
	}
	meta := &metav1.ObjectMeta{Annotations: obj.GetAnnotations()}
	var oldMeta *metav1.ObjectMeta
	specChanged := true
	if old != nil {
		oldMeta = &metav1.ObjectMeta{Annotations: old.GetAnnotations()}
		specChanged = !equality.Semantic.DeepEqual(old.Object["spec"], obj.Object["spec"])
	}
	errs := p.ValidateInitiator(oldMeta, meta, req.User, req.Trusted)
	if !specChanged {
		// Status, finalizer and label updates (External Secrets' own among them) leave what the
		// object reads and writes as it was checked.
		out.Add(RuleIntegrity, errs)
		return out
	}
	if old != nil {
		errs = append(errs, ValidateSpecChange(oldMeta, req.User, req.Trusted)...)
	}
	es := obj.ExternalSecret
	switch {
	case obj.ExternalSecret != nil:
		errs = append(errs, p.ValidateExternalSecret(obj.ExternalSecret, ns)...)
	case obj.PushSecret != nil:
		errs = append(errs, p.ValidatePushSecret(obj.PushSecret, ns)...)
	}
	spec, _ := obj.Object["spec"].(map[string]any)
	errs = append(errs, ValidateSpecFields(obj.GetKind(), spec)...)
	out.Add(RuleIntegrity, errs)
	private, warnings, refusal := p.admitSecretObjectPrivacy(ctx, req, obj)
	if refusal != nil && !out.Denies(p) {
		return Outcome{Refusal: refusal}
	}
	out.Add(RuleIntegrity, private)
	out.Warnings = append(out.Warnings, warnings...)
	if out.Denies(p) || es == nil || !p.OpenBao.Verify || req.Facts.Paths == nil {
		// What integrity denies is not worth a question to OpenBao.
		return out
	}
	missing, unavailable := verifyPaths(ctx, p, req.Facts.Paths, ns, es)
	out.Add(RuleSecrets, missing)
	if unavailable != nil {
		msg := fmt.Sprintf("iss-webhook could not check that the OpenBao paths of %s %s exist: %v", obj.GetKind(), obj.GetName(), unavailable)
		switch {
		case p.OpenBao.OnUnavailable != UnavailableWarn && p.Mode(RuleSecrets) == v1alpha1.Enforce:
			out.Refusal = &Refusal{Group: RuleSecrets, Message: msg + "; the policy denies what it cannot verify (openbao.onUnavailable: Deny): retry, and if it persists ask the platform team"}
		case p.Mode(RuleSecrets) == v1alpha1.Audit:
			out.Notes = append(out.Notes, "admitted unverified in Audit mode: "+msg)
		default:
			out.Warnings = append(out.Warnings, msg+"; admitted unverified")
		}
	}
	return out
}

// SecretObject is an ExternalSecret, PushSecret, ClusterExternalSecret or ClusterPushSecret as
// its rules read it: every field, so that fields this build does not know are seen, and the
// typed view of its kind.
type SecretObject struct {
	*unstructured.Unstructured
	// The view of the object's kind is set; the others are nil.
	ExternalSecret        *ExternalSecret
	PushSecret            *PushSecret
	ClusterExternalSecret *ClusterExternalSecret
	ClusterPushSecret     *ClusterPushSecret
}

// UnmarshalJSON decodes both views of the object, so that an object one of them cannot read is
// refused as undecodable rather than half checked.
func (o *SecretObject) UnmarshalJSON(raw []byte) error {
	o.Unstructured = &unstructured.Unstructured{}
	if err := json.Unmarshal(raw, &o.Object); err != nil {
		return err
	}
	switch o.GetKind() {
	case "ExternalSecret":
		o.ExternalSecret = &ExternalSecret{}
		return json.Unmarshal(raw, o.ExternalSecret)
	case "PushSecret":
		o.PushSecret = &PushSecret{}
		return json.Unmarshal(raw, o.PushSecret)
	case "ClusterExternalSecret":
		o.ClusterExternalSecret = &ClusterExternalSecret{}
		return json.Unmarshal(raw, o.ClusterExternalSecret)
	case "ClusterPushSecret":
		o.ClusterPushSecret = &ClusterPushSecret{}
		return json.Unmarshal(raw, o.ClusterPushSecret)
	}
	return nil
}

// MarshalJSON encodes every field of the object.
func (o *SecretObject) MarshalJSON() ([]byte, error) { return json.Marshal(o.Object) }

// lookUpNamespace returns the ISS labels of the request's namespace, or the refusal to give
// when they cannot be had.
func lookUpNamespace(ctx context.Context, req *Request) (Namespace, *Refusal) {
	if req.Facts.Namespaces == nil {
		return Namespace{Name: req.Namespace}, nil
	}
	ns, err := req.Facts.Namespaces.Namespace(ctx, req.Namespace)
	if err != nil {
		return Namespace{}, &Refusal{Group: RuleIntegrity, Unavailable: true, Message: fmt.Sprintf("iss-webhook cannot read namespace %s from its cache: %v; retry", req.Namespace, err)}
	}
	return ns, nil
}

// verifyPaths checks, all at once and within the policy's timeout, that every path the
// ExternalSecret reads holds a value External Secrets can read in the environment's KV v2 mount:
// the pinned version, else the current one, neither deleted nor destroyed. It returns the
// others as violations, with the first failure to get an answer.
func verifyPaths(ctx context.Context, p *Policy, verifier PathVerifier, ns Namespace, es *ExternalSecret) (field.ErrorList, error) {
	mount := p.Secrets.Environments[ns.Environment].Mount
	ctx, cancel := context.WithTimeout(ctx, p.OpenBao.Timeout)
	defer cancel()
	paths := ExternalSecretPaths(es)
	type result struct {
		pinned  int
		answer  PathAnswer
		invalid error
		err     error
	}
	results := make([]result, len(paths))
	var wg sync.WaitGroup
	for i, path := range paths {
		pinned, err := ParseSecretVersion(path.Version)
		if err != nil {
			results[i] = result{invalid: err}
			continue
		}
		wg.Go(func() {
			answer, err := verifier.Check(ctx, p.OpenBao, mount, path.Key, pinned)
			results[i] = result{pinned: pinned, answer: answer, err: err}
		})
	}
	wg.Wait()
	var errs field.ErrorList
	var unavailable error
	for i, r := range results {
		path := paths[i]
		switch {
		case r.invalid != nil:
			errs = append(errs, field.Invalid(path.VersionField, path.Version, r.invalid.Error()))
		case r.err != nil:
			if unavailable == nil {
				unavailable = r.err
			}
		case r.answer.State != PathFound:
			fld, value := path.Field, path.Key
			if r.pinned != 0 && r.answer.State != PathMissing {
				fld, value = path.VersionField, path.Version
			}
			e := field.NotFound(fld, value)
			e.Detail = r.answer.detail(r.pinned, mount, ns.Environment, strings.TrimPrefix(path.Key, "/"))
			errs = append(errs, e)
		}
	}
	return errs, unavailable
}

// AdmitSecretStore admits namespaced SecretStores in the apps' namespaces only with a provider
// the policy allows (ValidateSecretStore) and fields the rules know.
func AdmitSecretStore(ctx context.Context, p *Policy, req *Request, store, old *SecretStore) Outcome {
	if old != nil && equality.Semantic.DeepEqual(old.spec, store.spec) {
		// Status, finalizer and label updates leave what the store reads as it was.
		return Outcome{Skip: "the spec is unchanged"}
	}
	ns, refusal := lookUpNamespace(ctx, req)
	if refusal != nil {
		return Outcome{Refusal: refusal}
	}
	out := Outcome{Group: RuleSecrets}
	errs := p.ValidateSecretStore(store, ns)
	if ns.Governed() && store.Kind == "SecretStore" {
		errs = append(errs, ValidateSpecFields("SecretStore", store.spec)...)
	}
	out.Add(RuleIntegrity, errs)
	return out
}

// AdmitNamespace lets only trusted identities set or change a namespace's ISS labels.
func AdmitNamespace(_ context.Context, _ *Policy, req *Request, ns, old *metav1.PartialObjectMetadata) Outcome {
	if req.Trusted {
		return Outcome{Skip: "trusted identity"}
	}
	var oldMeta *metav1.ObjectMeta
	if old != nil {
		oldMeta = &old.ObjectMeta
	}
	out := Outcome{Group: RuleIntegrity}
	out.Add(RuleIntegrity, ValidateNamespaceLabels(oldMeta, &ns.ObjectMeta))
	return out
}

// AdmitWorkload validates the workloads that create pods: their pod templates follow the engine
// pod rules, Deployments of Temporal builds the blue/green rules and the record of their build's
// code, and the other workloads of a build (its ReplicaSets) are the controllers' to make.
func AdmitWorkload(ctx context.Context, p *Policy, req *Request, obj, old metav1.Object) Outcome {
	out := Outcome{Group: RuleEnginePods}
	// An update that leaves the pod template as it was (scaling an old ReplicaSet down, a
	// finalizer, suspending a CronJob) creates no pod the rules have not seen.
	if old == nil || !equality.Semantic.DeepEqual(WorkloadTemplate(old), WorkloadTemplate(obj)) {
		errs, warnings := p.ValidateWorkload(obj)
		out.Add(RuleEnginePods, errs)
		out.Warnings = append(out.Warnings, warnings...)
		if tmpl, root, _ := PodTemplate(obj); tmpl != nil {
			if _, isEngine := p.Engines.Match(&tmpl.ObjectMeta, &tmpl.Spec); !isEngine {
				privileged, refusal := privilegedInAppNamespace(ctx, req, &tmpl.Spec, root)
				if refusal != nil {
					return Outcome{Refusal: refusal}
				}
				out.Add(RuleEnginePods, privileged)
			}
		}
	}
	admitBuild(ctx, p, req, obj, old, &out)
	return out
}

// admitBuild adds the Temporal rules of a workload to out: for a Deployment the blue/green rules
// against the record of its build, read from the cache, and the record to write; for other
// workloads that a requester who is not trusted writes, that they are not a build's.
func admitBuild(ctx context.Context, p *Policy, req *Request, obj, old metav1.Object, out *Outcome) {
	t := &p.TemporalWorkers
	cur, ok := obj.(*appsv1.Deployment)
	if !ok {
		if !req.Trusted {
			out.Add(RuleTemporalWorkers, t.ValidateBuildCarrier(obj, old))
		}
		return
	}
	prev, _ := old.(*appsv1.Deployment)
	if !t.Governs(cur) && !t.Governs(prev) {
		return
	}
	build := cur.Labels[LabelBuildID]
	asNew := !t.Governs(prev)
	var recorded *BuildRecord
	if asNew && build != "" && req.Facts.BuildRecords != nil {
		var err error
		if recorded, err = req.Facts.BuildRecords.BuildRecord(ctx, req.Namespace, build); err != nil {
			out.Refusal = &Refusal{Group: RuleTemporalWorkers, Unavailable: true, Message: fmt.Sprintf("iss-webhook cannot read the record of build %s=%s from its cache: %v; retry", LabelBuildID, build, err)}
			return
		}
	}
	out.Add(RuleTemporalWorkers, t.ValidateTemporalWorker(prev, cur, recorded))
	if build != "" && t.Governs(cur) && cur.Spec.Template.Labels[LabelBuildID] == build {
		out.BuildRecord = &BuildRecordWrite{Record: RecordOf(req.Namespace, cur), Judge: asNew}
	}
}

// AdmitHPA requires the saturation metric of HorizontalPodAutoscalers.
func AdmitHPA(_ context.Context, p *Policy, _ *Request, hpa, _ *autoscalingv2.HorizontalPodAutoscaler) Outcome {
	out := Outcome{Group: RuleAutoscaling}
	out.Add(RuleAutoscaling, p.Autoscaling.ValidateHPA(hpa))
	return out
}

// AdmitStack validates where a Pulumi Stack keeps its state and everything that could move it
// (ProvisioningPolicy.ValidateStack).
func AdmitStack(_ context.Context, p *Policy, _ *Request, obj, _ *unstructured.Unstructured) Outcome {
	out := Outcome{Group: RuleProvisioning}
	out.Add(RuleProvisioning, p.Provisioning.ValidateStack(obj, p.OpenBao.Address))
	return out
}

// AdmitTerraform validates where a tofu-controller Terraform keeps its state and everything that
// could move it (ProvisioningPolicy.ValidateTerraform).
func AdmitTerraform(_ context.Context, p *Policy, _ *Request, obj, _ *unstructured.Unstructured) Outcome {
	out := Outcome{Group: RuleProvisioning}
	out.Add(RuleProvisioning, p.Provisioning.ValidateTerraform(obj, p.OpenBao.Address))
	return out
}

// AdmitISSPolicy denies, with every field path at once, what the CRD's schema and CEL rules
// cannot check (the same checks the policy reload runs), so that an invalid policy is refused
// on apply rather than only reported in its status. A valid one is admitted with warnings about
// settings that take more than the policy to take effect.
func AdmitISSPolicy(_ context.Context, _ *Policy, _ *Request, obj, _ *v1alpha1.ISSPolicy) Outcome {
	out := Outcome{Group: RuleIntegrity}
	var errs field.ErrorList
	if obj.Name != v1alpha1.PolicyName {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), obj.Name, "iss-webhook reads only the ISSPolicy named default: name it default"))
	}
	pol, specErrs := FromISSPolicy(&obj.Spec)
	errs = append(errs, specErrs...)
	out.Add(RuleIntegrity, errs)
	if len(errs) == 0 {
		out.Warnings = issPolicyWarnings(pol)
	}
	return out
}

// issPolicyWarnings are the admission warnings of a valid policy: settings that take more than
// the policy to take effect.
func issPolicyWarnings(p *Policy) []string {
	var warnings []string
	def := Default()
	for k := range p.Engines.Labels {
		if _, ok := def.Engines.Labels[k]; !ok && !isISSKey(k) {
			warnings = append(warnings, fmt.Sprintf("spec.engines.labels: pods labelled %s reach iss-webhook only when the matchConditions of the engine-pods and workloads webhooks name the label: add it there (manifests/webhook/webhooks.yaml)", k))
		}
	}
	if sel := p.TemporalWorkers.Selector; sel != nil {
		keys := slices.Collect(maps.Keys(sel.MatchLabels))
		for _, e := range sel.MatchExpressions {
			keys = append(keys, e.Key)
		}
		for _, k := range keys {
			if !isISSKey(k) {
				warnings = append(warnings, fmt.Sprintf("spec.temporalWorkers.selector: Deployments selected by %s reach iss-webhook only when the matchConditions of the workloads webhook name the label: add it there (manifests/webhook/webhooks.yaml)", k))
			}
		}
	}
	for _, provider := range p.Secrets.AllowedStoreProviders {
		if reach, ok := providersPastThePathRules[provider]; ok {
			warnings = append(warnings, fmt.Sprintf("spec.secrets.allowedStoreProviders: a namespaced SecretStore with the %s provider %s, with credentials of its own: the ISS-001 path rules do not hold for it", provider, reach))
		}
	}
	slices.Sort(warnings)
	return warnings
}

// providersPastThePathRules are the store providers that reach OpenBao, or other namespaces'
// secrets, past the path rules: the policy warns when it allows them.
var providersPastThePathRules = map[string]string{
	"vault":      "reads any OpenBao or Vault path",
	"webhook":    "calls any HTTP API, OpenBao's among them",
	"kubernetes": "reads the Secrets of any namespace its service account may read",
}
