package policy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// This file holds the one shape every rule of the webhook has, in policy and in mutators:
//
//	func(ctx, pol *Policy, req *Request, obj, old T) Outcome
//
// obj is the object as it would be stored (nil for a deletion), old the stored one (nil for a
// creation). The admission adapter of package webhook decodes, exempts, checks objects being
// deleted and turns the Outcome into a response; issctl calls the same functions through it.

// Operation is what a request does to an object, as the API server names it.
type Operation string

// The operations.
const (
	Create  Operation = "CREATE"
	Update  Operation = "UPDATE"
	Delete  Operation = "DELETE"
	Connect Operation = "CONNECT"
)

// Request is what a rule knows of a request besides the objects.
type Request struct {
	Operation Operation
	// SubResource is empty for the object itself, else status, resize, scale, and so on.
	SubResource string
	// Namespace and Name are those of the request; Namespace is empty for cluster-scoped kinds.
	Namespace, Name string
	// User and Groups are the requester's, as the API server authenticated them.
	User   string
	Groups []string
	// Trusted tells whether the requester is one of the policy's trusted identities.
	Trusted bool
	// Self tells whether the requester is the webhook itself (it writes the generated objects).
	Self bool
	// DryRun requests have no side effects: nothing is written for them.
	DryRun bool
	// Orphan tells whether a deletion leaves the object's dependents behind (propagationPolicy
	// Orphan, or orphanDependents), instead of having the garbage collector delete them.
	Orphan bool
	// Facts are what the webhook knows beside the request; every part may be nil offline.
	Facts Facts
}

// Facts are the read-only facts rules may consult: what the webhook caches of the cluster, and
// the OpenBao existence check. A nil part means the fact cannot be had (issctl offline): rules
// that need it skip the check it serves.
type Facts struct {
	// Namespaces tells a namespace's ISS labels.
	Namespaces NamespaceLookup
	// Engines counts the running engines of a generated egress policy.
	Engines EngineLookup
	// Paths tells what OpenBao holds at a path.
	Paths PathVerifier
	// BuildRecords reads the records of the code each Temporal build id stands for.
	BuildRecords BuildRecordLookup
	// PrivateSecrets tells which Secrets are private to users (synced from users/ paths).
	PrivateSecrets PrivateSecretLookup
	// Pods tells what the webhook caches of pods: their owners and the Secrets they use.
	Pods PodLookup
}

// NamespaceLookup tells what the rules need of namespaces: their ISS labels. A namespace that
// does not exist is one of no app.
type NamespaceLookup interface {
	Namespace(ctx context.Context, name string) (Namespace, error)
	// SelectNamespaces returns the namespaces whose labels (kubernetes.io/metadata.name among
	// them) the selector matches, by name: those a ClusterExternalSecret selects.
	SelectNamespaces(ctx context.Context, selector labels.Selector) ([]Namespace, error)
}

// NamespaceLabels is a NamespaceLookup over a fixed set of namespaces, by name, with their
// labels: issctl's list of a cluster's namespaces, tests.
type NamespaceLabels map[string]map[string]string

// Namespace implements NamespaceLookup.
func (n NamespaceLabels) Namespace(_ context.Context, name string) (Namespace, error) {
	return NamespaceFromLabels(name, n[name]), nil
}

// SelectNamespaces implements NamespaceLookup.
func (n NamespaceLabels) SelectNamespaces(_ context.Context, selector labels.Selector) ([]Namespace, error) {
	var out []Namespace
	for _, name := range slices.Sorted(maps.Keys(n)) {
		if selector.Matches(NamespaceSelectorLabels(name, n[name])) {
			out = append(out, NamespaceFromLabels(name, n[name]))
		}
	}
	return out, nil
}

// NamespaceSelectorLabels are the labels a namespace selector matches: the namespace's, with the
// kubernetes.io/metadata.name label that the API server sets on every namespace.
func NamespaceSelectorLabels(name string, nsLabels map[string]string) labels.Set {
	set := labels.Set{corev1.LabelMetadataName: name}
	for k, v := range nsLabels {
		if k != corev1.LabelMetadataName {
			set[k] = v
		}
	}
	return set
}

// EngineLookup counts the running engine pods that a generated policy selects: those of a
// namespace with an egress-policy hash.
type EngineLookup interface {
	RunningEngines(ctx context.Context, namespace, hash string) (int, error)
}

// BuildRecordLookup reads what the webhook keeps of Temporal builds, from its informer caches:
// the record of a build id's code in a namespace (nil when there is none), and how many
// Deployments and ReplicaSets of the build the namespace still has.
type BuildRecordLookup interface {
	BuildRecord(ctx context.Context, namespace, buildID string) (*BuildRecord, error)
	BuildInUse(ctx context.Context, namespace, buildID string) (int, error)
}

// PathVerifier tells what an OpenBao KV v2 mount holds at a path for one version of it (0: the
// current one); errors mean OpenBao could not answer, and say why.
type PathVerifier interface {
	Check(ctx context.Context, cfg OpenBaoPolicy, mount, path string, version int) (PathAnswer, error)
}

// Outcome is what a rule decides about one request. The zero Outcome admits without a count.
type Outcome struct {
	// Skip says why the rules do not concern the object (not an engine, say): admitted,
	// counted nowhere.
	Skip string
	// Group is the rule group an admission is counted under.
	Group RuleGroup
	// Findings are the violations, by rule group; each group's mode decides what they do.
	Findings []Finding
	// Refusal denies the request without field violations, whatever the findings' modes.
	Refusal *Refusal
	// Warnings are admission warnings besides those of findings in Warn mode.
	Warnings []string
	// Notes are logged: what was admitted unchecked in Audit mode.
	Notes []string
	// Mutate changes the object in place and names what it changed; it runs only when nothing
	// denied the request.
	Mutate func() []string
	// Egress names the engine whose generated egress objects must exist before it is admitted.
	Egress *EgressWrite
	// BuildRecord is the record of a Temporal build's code that must exist before the
	// Deployment is admitted.
	BuildRecord *BuildRecordWrite
}

// Finding is the violations of one rule group.
type Finding struct {
	Group  RuleGroup
	Errors field.ErrorList
}

// Refusal is a denial without field violations: a check that failed as a whole.
type Refusal struct {
	// Group is the rule group the denial is counted under.
	Group RuleGroup
	// Message says what happened and what to do.
	Message string
	// Unavailable marks a fact that could not be had: the API server may retry.
	Unavailable bool
}

// EgressWrite is an engine whose egress objects the adapter writes during admission.
type EgressWrite struct {
	Namespace string
	Engine    Engine
}

// Add appends the violations of a group, if any.
func (o *Outcome) Add(group RuleGroup, errs field.ErrorList) {
	if len(errs) > 0 {
		o.Findings = append(o.Findings, Finding{Group: group, Errors: errs})
	}
}

// Denies tells whether a group that always denies found violations: the integrity rules, or a
// group in Enforce mode.
func (o *Outcome) Denies(p *Policy) bool {
	for _, f := range o.Findings {
		if p.Mode(f.Group) == v1alpha1.Enforce {
			return true
		}
	}
	return false
}

// ValidateUpdateWhileDeleting checks an update of an object that is being deleted (it has a
// deletionTimestamp and waits for its finalizers): only its metadata may change, since its
// controller may still act on the spec (a PushSecret keeps pushing, a Stack still destroys).
// old and cur are the objects' JSON fields.
func ValidateUpdateWhileDeleting(old, cur map[string]any, deleted *metav1.Time) field.ErrorList {
	var errs field.ErrorList
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range cur {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		switch k {
		case "metadata", "status", "apiVersion", "kind":
			continue
		}
		if !equality.Semantic.DeepEqual(old[k], cur[k]) {
			errs = append(errs, field.Forbidden(field.NewPath(k), fmt.Sprintf("the object is being deleted (deletionTimestamp %s) and waits for its finalizers: only its metadata may change, so that nothing acts on a changed %s meanwhile; create a new object once this one is gone", deleted.UTC().Format("2006-01-02T15:04:05Z"), k)))
		}
	}
	return errs
}

// metadataChanged tells whether the metadata field at path differs between the two objects, so
// that only what an update changes is judged on an object on its way out. Paths it cannot read
// count as changed.
func metadataChanged(path string, oldMeta, curMeta metav1.Object) bool {
	entry := func(prefix string, old, cur map[string]string) (bool, bool) {
		key, ok := strings.CutPrefix(path, prefix+"[")
		if !ok || !strings.HasSuffix(key, "]") {
			return false, false
		}
		key = strings.TrimSuffix(key, "]")
		before, had := old[key]
		after, has := cur[key]
		return had != has || before != after, true
	}
	if changed, ok := entry("metadata.labels", oldMeta.GetLabels(), curMeta.GetLabels()); ok {
		return changed
	}
	if changed, ok := entry("metadata.annotations", oldMeta.GetAnnotations(), curMeta.GetAnnotations()); ok {
		return changed
	}
	switch path {
	case "metadata.name":
		return oldMeta.GetName() != curMeta.GetName()
	case "metadata.generateName":
		return oldMeta.GetGenerateName() != curMeta.GetGenerateName()
	}
	return true
}

// WhileDeleting is what of a rule's outcome holds for an update of an object being deleted that
// changes only its metadata: the integrity rules of the metadata it changes (ISS labels and
// annotations stay as they were, reserved labels stay reserved) and the refusals (generated
// objects stay the webhook's). The rules of the spec were met when it was admitted and it has not
// changed since; holding them again could keep a finalizer from being removed from an object
// admitted in Warn mode. Nothing is mutated or written for an object on its way out.
func (o Outcome) WhileDeleting(oldMeta, curMeta metav1.Object) Outcome {
	if o.Refusal != nil {
		return Outcome{Refusal: o.Refusal}
	}
	kept := Outcome{Skip: o.Skip, Group: o.Group}
	var errs field.ErrorList
	seen := map[string]bool{}
	keep := func(e *field.Error) {
		if strings.HasPrefix(e.Field, "metadata.") && metadataChanged(e.Field, oldMeta, curMeta) && !seen[e.Field] {
			seen[e.Field] = true
			errs = append(errs, e)
		}
	}
	for _, f := range o.Findings {
		if f.Group == RuleIntegrity {
			for _, e := range f.Errors {
				keep(e)
			}
		}
	}
	prev := metav1.ObjectMeta{Labels: oldMeta.GetLabels(), Annotations: oldMeta.GetAnnotations()}
	cur := metav1.ObjectMeta{Labels: curMeta.GetLabels(), Annotations: curMeta.GetAnnotations()}
	for _, e := range ValidateISSMetadataUnchanged(&prev, &cur, nil) {
		keep(e)
	}
	if len(errs) > 0 {
		kept.Skip = ""
		kept.Add(RuleIntegrity, errs)
	}
	return kept
}
