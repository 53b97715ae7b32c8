package policy

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The rules of the External Secrets kinds beside ExternalSecrets and PushSecrets: the
// cluster-scoped ClusterExternalSecrets and ClusterPushSecrets, which make ExternalSecrets and
// PushSecrets in the namespaces they select; ClusterSecretStores; the namespaced generators.

// ClusterExternalSecret is the governed part of a ClusterExternalSecret (external-secrets.io v1
// and v1beta1): the ExternalSecret it makes in each namespace it selects.
type ClusterExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		ExternalSecretSpec     ExternalSecretSpec `json:"externalSecretSpec"`
		ExternalSecretMetadata struct {
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"externalSecretMetadata"`
		NamespaceSelector  *metav1.LabelSelector   `json:"namespaceSelector,omitempty"`
		NamespaceSelectors []*metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
		Namespaces         []string                `json:"namespaces,omitempty"`
	} `json:"spec"`
}

// ClusterPushSecret is the governed part of a ClusterPushSecret (external-secrets.io v1alpha1):
// the PushSecret it makes in each namespace it selects.
type ClusterPushSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		PushSecretSpec     PushSecretSpec `json:"pushSecretSpec"`
		PushSecretMetadata struct {
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"pushSecretMetadata"`
		NamespaceSelectors []*metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	} `json:"spec"`
}

// selectedNamespace is a namespace that a cluster-scoped kind selects, and the field that
// selects it.
type selectedNamespace struct {
	ns    Namespace
	field *field.Path
}

// selectNamespaces returns the namespaces selected now, as External Secrets selects them: those
// named, and those any of the selectors match, each once.
func selectNamespaces(ctx context.Context, lookup NamespaceLookup, names []string, namesField *field.Path, selectors []*metav1.LabelSelector, selectorFields []*field.Path) ([]selectedNamespace, field.ErrorList, error) {
	var out []selectedNamespace
	var errs field.ErrorList
	seen := map[string]bool{}
	add := func(ns Namespace, path *field.Path) {
		if !seen[ns.Name] {
			seen[ns.Name] = true
			out = append(out, selectedNamespace{ns, path})
		}
	}
	for i, name := range names {
		ns, err := lookup.Namespace(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		add(ns, namesField.Index(i))
	}
	for i, s := range selectors {
		if s == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			errs = append(errs, field.Invalid(selectorFields[i], s.String(), err.Error()))
			continue
		}
		matched, err := lookup.SelectNamespaces(ctx, sel)
		if err != nil {
			return nil, nil, err
		}
		for _, ns := range matched {
			add(ns, selectorFields[i])
		}
	}
	return out, errs, nil
}

// AdmitClusterExternalSecret validates a ClusterExternalSecret or ClusterPushSecret. Only
// trusted identities may create one or change its spec: it writes into many namespaces at once.
// What it would make in each namespace it selects now follows the rules of that namespace, for
// the initiator its metadata gives the objects it makes, trusted or not; the fields of its
// spec follow ValidateSpecFields. The namespaces a selector matches change as namespaces are
// labelled: the admission warns that only those selected now were checked (the objects it makes
// later are judged when External Secrets creates them).
func AdmitClusterExternalSecret(ctx context.Context, p *Policy, req *Request, obj, old *SecretObject) Outcome {
	out := Outcome{Group: RuleIntegrity}
	if old != nil && equality.Semantic.DeepEqual(old.Object["spec"], obj.Object["spec"]) {
		return Outcome{Skip: "the spec is unchanged"}
	}
	kind := obj.GetKind()
	var errs field.ErrorList
	if !req.Trusted {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), fmt.Sprintf(
			"a %s writes into every namespace it selects, so only trusted identities (spec.trustedIdentities of the ISSPolicy) may create it or change its spec, and you are %q: create the %s in your namespace instead",
			kind, req.User, strings.TrimPrefix(kind, "Cluster"))))
	}
	spec, _ := obj.Object["spec"].(map[string]any)
	errs = append(errs, ValidateSpecFields(kind, spec)...)

	root := field.NewPath("spec")
	var names []string
	var selectors []*metav1.LabelSelector
	var selectorFields []*field.Path
	var initiator string
	var check func(c *secretsContext)
	switch {
	case obj.ClusterExternalSecret != nil:
		ces := obj.ClusterExternalSecret
		names = ces.Spec.Namespaces
		if ces.Spec.NamespaceSelector != nil {
			selectors, selectorFields = append(selectors, ces.Spec.NamespaceSelector), append(selectorFields, root.Child("namespaceSelector"))
		}
		for i, s := range ces.Spec.NamespaceSelectors {
			selectors, selectorFields = append(selectors, s), append(selectorFields, root.Child("namespaceSelectors").Index(i))
		}
		initiator = ces.Spec.ExternalSecretMetadata.Annotations[AnnotationInitiatorID]
		check = func(c *secretsContext) {
			c.validateExternalSecretSpec(p, &ces.Spec.ExternalSecretSpec, root.Child("externalSecretSpec"))
		}
	case obj.ClusterPushSecret != nil:
		cps := obj.ClusterPushSecret
		for i, s := range cps.Spec.NamespaceSelectors {
			selectors, selectorFields = append(selectors, s), append(selectorFields, root.Child("namespaceSelectors").Index(i))
		}
		initiator = cps.Spec.PushSecretMetadata.Annotations[AnnotationInitiatorID]
		check = func(c *secretsContext) {
			c.validatePushSecretSpec(p, &cps.Spec.PushSecretSpec, root.Child("pushSecretSpec"))
		}
	default:
		return Outcome{Skip: "not a cluster-scoped ExternalSecret or PushSecret"}
	}
	if req.Facts.Namespaces == nil {
		out.Add(RuleIntegrity, errs)
		out.Warnings = append(out.Warnings, fmt.Sprintf("%s %s: the namespaces it selects are not known here, so what it writes into them was not checked", kind, obj.GetName()))
		return out
	}
	selected, selErrs, err := selectNamespaces(ctx, req.Facts.Namespaces, names, root.Child("namespaces"), selectors, selectorFields)
	if err != nil {
		return Outcome{Refusal: &Refusal{Group: RuleIntegrity, Unavailable: true, Message: fmt.Sprintf("iss-webhook cannot read the namespaces from its cache: %v; retry", err)}}
	}
	errs = append(errs, selErrs...)
	made := strings.TrimPrefix(kind, "Cluster")
	for _, s := range selected {
		c := p.secretsContext(s.ns, initiator)
		c.nsField = s.field
		c.prefix = fmt.Sprintf("in namespace %s, which %s selects: ", s.ns.Name, s.field)
		check(c)
		errs = append(errs, c.errs...)
	}
	out.Add(RuleIntegrity, errs)
	if len(selectors) > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"%s %s: its namespace selectors match %d namespaces now, and iss-webhook checked what it writes into those; a namespace created or labelled later is checked only when External Secrets creates the %s in it, which is then denied if it breaks that namespace's rules",
			kind, obj.GetName(), len(selected), made))
	}
	return out
}

// AdmitClusterSecretStore lets only trusted identities create a ClusterSecretStore or change its
// spec: it serves every namespace its conditions admit, the platform's OpenBao stores among
// them, with credentials of its own.
func AdmitClusterSecretStore(_ context.Context, _ *Policy, req *Request, obj, old *unstructured.Unstructured) Outcome {
	if req.Trusted || (old != nil && equality.Semantic.DeepEqual(old.Object["spec"], obj.Object["spec"])) {
		return Outcome{Skip: "trusted identity, or the spec is unchanged"}
	}
	out := Outcome{Group: RuleIntegrity}
	out.Add(RuleIntegrity, field.ErrorList{field.Forbidden(field.NewPath("spec"), fmt.Sprintf(
		"a ClusterSecretStore serves every namespace its conditions admit with credentials of its own (the platform's OpenBao stores are ClusterSecretStores), so only trusted identities (spec.trustedIdentities of the ISSPolicy) may create it or change its spec, and you are %q",
		req.User))})
	return out
}

// AdmitGenerator admits a generator (generators.external-secrets.io) in an app's namespace only
// when the policy allows its kind (spec.secrets.allowedGeneratorKinds, Password and UUID by
// default): the others read secrets or credentials the path rules cannot check, as stores do.
// A GeneratorState, External Secrets' record of a generator's output, holds a generator of its
// own, judged the same. Updates that leave the spec as it is pass.
func AdmitGenerator(ctx context.Context, p *Policy, req *Request, obj, old *unstructured.Unstructured) Outcome {
	if old != nil && equality.Semantic.DeepEqual(old.Object["spec"], obj.Object["spec"]) {
		return Outcome{Skip: "the spec is unchanged"}
	}
	ns, refusal := lookUpNamespace(ctx, req)
	if refusal != nil {
		return Outcome{Refusal: refusal}
	}
	if !ns.Governed() {
		return Outcome{Skip: "not an app's namespace"}
	}
	c := p.secretsContext(ns, "")
	if obj.GetKind() == "GeneratorState" {
		resource, _, _ := unstructured.NestedMap(obj.Object, "spec", "resource")
		u := unstructured.Unstructured{Object: resource}
		c.checkGenerator(field.NewPath("spec", "resource"), &GeneratorRef{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()})
	} else {
		var top *field.Path // the object's own apiVersion and kind
		c.checkGenerator(top, &GeneratorRef{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind()})
	}
	out := Outcome{Group: RuleIntegrity}
	out.Add(RuleIntegrity, c.errs)
	return out
}

// SecretRead is a Secret of an object's own namespace that an External Secrets object reads (or
// writes), and the field that names it.
type SecretRead struct {
	// Field is where the object names it.
	Field *field.Path
	// Name is the Secret's name.
	Name string
}

// SecretReads returns the Secrets of its namespace that obj reads: a PushSecret's
// selector.secret.name, and the templateFrom[].secret.name of an ExternalSecret's target
// template and of a PushSecret's template; for a ClusterExternalSecret or ClusterPushSecret,
// those its objects read in each namespace they are made in. PushSecret secrets selected by
// labels are not listed: ValidateSpecFields denies them.
func SecretReads(obj *SecretObject) []SecretRead {
	var out []SecretRead
	template := func(t *SecretTemplate, path *field.Path) {
		if t == nil {
			return
		}
		for i, from := range t.TemplateFrom {
			if from.Secret != nil {
				out = append(out, SecretRead{Field: path.Child("templateFrom").Index(i).Child("secret", "name"), Name: from.Secret.Name})
			}
		}
	}
	es := func(spec *ExternalSecretSpec, root *field.Path) {
		if spec.Target != nil {
			template(spec.Target.Template, root.Child("target", "template"))
		}
	}
	ps := func(spec *PushSecretSpec, root *field.Path) {
		if s := spec.Selector.Secret; s != nil && s.Name != "" {
			out = append(out, SecretRead{Field: root.Child("selector", "secret", "name"), Name: s.Name})
		}
		template(spec.Template, root.Child("template"))
	}
	spec := field.NewPath("spec")
	switch {
	case obj.ExternalSecret != nil:
		es(&obj.ExternalSecret.Spec, spec)
	case obj.PushSecret != nil:
		ps(&obj.PushSecret.Spec, spec)
	case obj.ClusterExternalSecret != nil:
		es(&obj.ClusterExternalSecret.Spec.ExternalSecretSpec, spec.Child("externalSecretSpec"))
	case obj.ClusterPushSecret != nil:
		ps(&obj.ClusterPushSecret.Spec.PushSecretSpec, spec.Child("pushSecretSpec"))
	}
	return out
}

// SecretWrites returns the Secret of its namespace that an ExternalSecret writes (its
// target.name, else its own name, as External Secrets defaults it), or that a
// ClusterExternalSecret's ExternalSecrets write (else externalSecretName, else its own name).
// Other kinds write none.
func SecretWrites(obj *SecretObject) []SecretRead {
	target := field.NewPath("spec", "target", "name")
	switch {
	case obj.ExternalSecret != nil:
		if t := obj.ExternalSecret.Spec.Target; t != nil && t.Name != "" {
			return []SecretRead{{Field: target, Name: t.Name}}
		}
		return []SecretRead{{Field: target, Name: obj.GetName()}}
	case obj.ClusterExternalSecret != nil:
		target = field.NewPath("spec", "externalSecretSpec", "target", "name")
		if t := obj.ClusterExternalSecret.Spec.ExternalSecretSpec.Target; t != nil && t.Name != "" {
			return []SecretRead{{Field: target, Name: t.Name}}
		}
		name, _, _ := unstructured.NestedString(obj.Object, "spec", "externalSecretName")
		if name == "" {
			name = obj.GetName()
		}
		return []SecretRead{{Field: target, Name: name}}
	}
	return nil
}
