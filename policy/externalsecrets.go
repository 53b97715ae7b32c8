package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The External Secrets objects are decoded into the views below: the fields ISS-001 governs, in
// the JSON shape of external-secrets.io v1 and v1beta1 (ExternalSecret, SecretStore) and
// v1alpha1 (PushSecret). Other fields are ignored, so the views read every served version.

// StoreRef names a SecretStore or ClusterSecretStore.
type StoreRef struct {
	Name string `json:"name"`
	// Kind is SecretStore (the default when empty) or ClusterSecretStore.
	Kind string `json:"kind,omitempty"`
}

// kind returns the kind, with External Secrets' default.
func (r StoreRef) kind() string {
	if r.Kind == "" {
		return "SecretStore"
	}
	return r.Kind
}

func (r StoreRef) String() string { return r.kind() + "/" + r.Name }

// SourceRef overrides the store of one data entry, or names a generator instead.
type SourceRef struct {
	StoreRef     *StoreRef     `json:"storeRef,omitempty"`
	GeneratorRef *GeneratorRef `json:"generatorRef,omitempty"`
}

// GeneratorRef names a generator, such as a VaultDynamicSecret.
type GeneratorRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

// RemoteRef is where a value comes from in the provider: for OpenBao, the path.
type RemoteRef struct {
	Key string `json:"key"`
	// Version pins a KV v2 version; empty reads the current one.
	Version string `json:"version,omitempty"`
}

// ExternalSecret is the governed part of an ExternalSecret.
type ExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ExternalSecretSpec `json:"spec"`
}

// ExternalSecretSpec is the governed part of an ExternalSecret's spec, and of a
// ClusterExternalSecret's externalSecretSpec.
type ExternalSecretSpec struct {
	SecretStoreRef *StoreRef             `json:"secretStoreRef,omitempty"`
	Target         *ExternalSecretTarget `json:"target,omitempty"`
	Data           []ExternalSecretData  `json:"data,omitempty"`
	DataFrom       []struct {
		Extract   *RemoteRef `json:"extract,omitempty"`
		Find      *struct{}  `json:"find,omitempty"`
		SourceRef *SourceRef `json:"sourceRef,omitempty"`
	} `json:"dataFrom,omitempty"`
}

// ExternalSecretData is one value an ExternalSecret reads.
type ExternalSecretData struct {
	RemoteRef RemoteRef  `json:"remoteRef"`
	SourceRef *SourceRef `json:"sourceRef,omitempty"`
}

// ExternalSecretTarget is the Secret an ExternalSecret writes.
type ExternalSecretTarget struct {
	Name     string          `json:"name,omitempty"`
	Template *SecretTemplate `json:"template,omitempty"`
}

// SecretTemplate is the template of the Secret an ExternalSecret writes or a PushSecret pushes:
// the Secrets of the namespace it reads.
type SecretTemplate struct {
	TemplateFrom []struct {
		Secret *struct {
			Name string `json:"name"`
		} `json:"secret,omitempty"`
	} `json:"templateFrom,omitempty"`
}

// PushSecret is the governed part of a PushSecret.
type PushSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PushSecretSpec `json:"spec"`
	Status            struct {
		// SyncedPushSecrets are the paths pushed, by store ("Kind/Name") and entry: External
		// Secrets deletes them from OpenBao when they leave the spec or the object is deleted
		// (deletionPolicy Delete).
		SyncedPushSecrets map[string]map[string]struct {
			Match struct {
				RemoteRef struct {
					RemoteKey string `json:"remoteKey"`
				} `json:"remoteRef"`
			} `json:"match"`
		} `json:"syncedPushSecrets,omitempty"`
	} `json:"status"`
}

// PushSecretSpec is the governed part of a PushSecret's spec, and of a ClusterPushSecret's
// pushSecretSpec.
type PushSecretSpec struct {
	SecretStoreRefs []struct {
		Name          string                `json:"name,omitempty"`
		Kind          string                `json:"kind,omitempty"`
		LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
	} `json:"secretStoreRefs"`
	Selector struct {
		Secret *struct {
			Name     string                `json:"name,omitempty"`
			Selector *metav1.LabelSelector `json:"selector,omitempty"`
		} `json:"secret,omitempty"`
		GeneratorRef *GeneratorRef `json:"generatorRef,omitempty"`
	} `json:"selector"`
	Data []struct {
		Match struct {
			RemoteRef struct {
				RemoteKey string `json:"remoteKey"`
			} `json:"remoteRef"`
		} `json:"match"`
	} `json:"data,omitempty"`
	Template *SecretTemplate `json:"template,omitempty"`
}

// SecretStore is the governed part of a SecretStore or ClusterSecretStore: its providers, by
// key of spec.provider.
type SecretStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Provider map[string]json.RawMessage `json:"provider"`
	} `json:"spec"`
	// spec is every field of the spec, so that fields this build does not know are seen.
	spec map[string]any
}

// UnmarshalJSON decodes the view and every field of the spec.
func (s *SecretStore) UnmarshalJSON(raw []byte) error {
	type view SecretStore
	var whole struct {
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(raw, (*view)(s)); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &whole); err != nil {
		return err
	}
	s.spec = whole.Spec
	return nil
}

// Namespace is what the rules need of a namespace: the labels the platform set on it.
type Namespace struct {
	Name string
	// AppID and Environment are its iss.platform/app-id and iss.platform/environment labels.
	AppID, Environment string
}

// NamespaceFromLabels reads a namespace's ISS labels.
func NamespaceFromLabels(name string, labels map[string]string) Namespace {
	return Namespace{Name: name, AppID: labels[LabelAppID], Environment: labels[LabelEnvironment]}
}

// Governed tells whether the namespace belongs to an app.
func (n Namespace) Governed() bool { return n.AppID != "" }

// SecretsPolicy is the part of the policy about OpenBao secrets (ISS-001 section 2).
type SecretsPolicy struct {
	// Environments maps each runtime environment to its store and OpenBao KV mount, as the
	// Secret Broker does. A namespace's iss.platform/environment label picks one.
	Environments map[string]SecretEnvironment
	// PathRoot is the first segment of every OpenBao path (ISS-001 section 2.1: "artifacts").
	PathRoot string
	// AllowedGeneratorKinds are the generator kinds that ExternalSecrets and PushSecrets may
	// name, and that may be created in the apps' namespaces: by default Password and UUID,
	// which make values without reading any secret. Never ClusterGenerator.
	AllowedGeneratorKinds []string
	// AllowedStoreProviders are the providers (keys of spec.provider) of namespaced
	// SecretStores admitted in the apps' namespaces: by default none.
	AllowedStoreProviders []string
}

// SecretEnvironment is where one runtime environment's secrets live.
type SecretEnvironment struct {
	// Store is the only store ExternalSecrets and PushSecrets of the environment may use.
	Store StoreRef
	// Mount is the OpenBao KV v2 mount that holds the environment's artifacts/ tree.
	Mount string
}

// DefaultSecretsPolicy maps dev, staging and prod to the ClusterSecretStore openbao-<env> and
// the KV v2 mount kv-<env>.
func DefaultSecretsPolicy() SecretsPolicy {
	envs := map[string]SecretEnvironment{}
	for _, env := range []string{"dev", "staging", "prod"} {
		envs[env] = SecretEnvironment{Store: StoreRef{Kind: "ClusterSecretStore", Name: "openbao-" + env}, Mount: "kv-" + env}
	}
	return SecretsPolicy{Environments: envs, PathRoot: DefaultPathRoot, AllowedGeneratorKinds: []string{"Password", "UUID"}}
}

// secretsContext is what every path check of one object needs: the namespace whose rules hold,
// and the field that names it (metadata.namespace, or the selector of a cluster-scoped kind).
type secretsContext struct {
	ns         Namespace
	nsField    *field.Path
	env        SecretEnvironment
	envKnown   bool
	initiator  string
	root       string
	generators []string
	// prefix starts every message: which of the namespaces a cluster-scoped kind selects the
	// violation is in.
	prefix string
	errs   field.ErrorList
}

func (p *Policy) secretsContext(ns Namespace, initiator string) *secretsContext {
	env, ok := p.Secrets.Environments[ns.Environment]
	return &secretsContext{ns: ns, nsField: field.NewPath("metadata", "namespace"), env: env, envKnown: ok, initiator: initiator,
		root: p.Secrets.PathRoot, generators: p.Secrets.AllowedGeneratorKinds}
}

// forbid adds a violation.
func (c *secretsContext) forbid(path *field.Path, detail string) {
	c.errs = append(c.errs, field.Forbidden(path, c.prefix+detail))
}

// checkPath checks one OpenBao path against the hierarchy and the object's app and initiator.
func (c *secretsContext) checkPath(path *field.Path, key string) {
	sp, err := ParseSecretPath(c.root, key)
	if err != nil {
		c.errs = append(c.errs, field.Invalid(path, key, c.prefix+err.Error()))
		return
	}
	if sp.AppID != c.ns.AppID {
		c.forbid(path, fmt.Sprintf("path %q belongs to the app %q, but namespace %s belongs to %q (its %s label): use artifacts/%s/...",
			key, sp.AppID, c.ns.Name, c.ns.AppID, LabelAppID, c.ns.AppID))
	}
	if sp.Scope == ScopeUser && sp.UserID != c.initiator {
		c.forbid(path, fmt.Sprintf("path %q is the private path of user %q, but this object's %s is %q: use artifacts/%s/users/%s/secrets/... or a public path",
			key, sp.UserID, AnnotationInitiatorID, c.initiator, c.ns.AppID, c.initiator))
	}
}

// checkStore checks that a store reference is the one the policy maps to the environment.
func (c *secretsContext) checkStore(path *field.Path, ref StoreRef) {
	if !c.envKnown {
		return // reported once, by checkNamespace
	}
	if ref.kind() != c.env.Store.kind() || ref.Name != c.env.Store.Name {
		c.forbid(path, fmt.Sprintf("store %s is not the store of environment %q: use %s (kind: %s, name: %s), which the platform maps to it",
			ref, c.ns.Environment, c.env.Store, c.env.Store.kind(), c.env.Store.Name))
	}
}

// checkGenerator checks a reference to a generator: of External Secrets' generator group and a
// version it serves, of a kind the policy allows, never a ClusterGenerator.
func (c *secretsContext) checkGenerator(path *field.Path, ref *GeneratorRef) {
	if ref == nil {
		return
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	known := slices.IndexFunc(generatorKinds, func(g GeneratorKind) bool { return g.Kind == ref.Kind })
	switch {
	case err != nil || gv.Group != GeneratorGroup:
		c.errs = append(c.errs, field.Invalid(path.Child("apiVersion"), ref.APIVersion, c.prefix+"generators are of the group "+GeneratorGroup+": use apiVersion "+GeneratorGroup+"/v1alpha1"))
	case known >= 0 && !slices.Contains(generatorKinds[known].Versions, gv.Version):
		c.errs = append(c.errs, field.NotSupported(path.Child("apiVersion"), ref.APIVersion, prefixed(GeneratorGroup+"/", generatorKinds[known].Versions)))
	}
	switch {
	case ref.Kind == ClusterGeneratorKind:
		c.forbid(path.Child("kind"), fmt.Sprintf("a ClusterGenerator wraps a generator of any kind, which may read secrets outside the ISS-001 path hierarchy: use a generator of your namespace of an allowed kind (%s)", quotedList(c.generators)))
	case !slices.Contains(c.generators, ref.Kind):
		c.forbid(path.Child("kind"), fmt.Sprintf("generator kind %q reads %s, which the ISS-001 path rules cannot check; the policy allows only %s (spec.secrets.allowedGeneratorKinds): read a path of your app instead, or ask the platform team to allow the kind",
			ref.Kind, generatorReads(ref.Kind), quotedList(c.generators)))
	}
}

// checkSource checks the store or generator that a data entry reads instead of the object's store.
func (c *secretsContext) checkSource(path *field.Path, src *SourceRef) {
	if src == nil {
		return
	}
	if src.StoreRef != nil {
		c.checkStore(path.Child("storeRef"), *src.StoreRef)
	}
	c.checkGenerator(path.Child("generatorRef"), src.GeneratorRef)
}

// checkNamespace reports a namespace that belongs to no app, or whose environment has no
// store in the policy. It tells whether the object's paths can be checked at all.
func (p *Policy) checkNamespace(c *secretsContext) bool {
	if !c.ns.Governed() {
		c.forbid(c.nsField, fmt.Sprintf(
			"namespace %s has no %s label, so it belongs to no app and may not read or write OpenBao secrets: ask the platform team to label it", c.ns.Name, LabelAppID))
		return false
	}
	if !c.envKnown {
		c.forbid(c.nsField, fmt.Sprintf(
			"namespace %s has the %s label %q, which the policy maps to no store: it must be one of %s", c.ns.Name, LabelEnvironment, c.ns.Environment, quotedList(p.environmentNames())))
	}
	return true
}

func (p *Policy) environmentNames() []string {
	names := make([]string, 0, len(p.Secrets.Environments))
	for n := range p.Secrets.Environments {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// prefixed returns the items with a prefix each.
func prefixed(prefix string, items []string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = prefix + it
	}
	return out
}

// ValidateExternalSecret checks every path, store and generator an ExternalSecret reads from
// (design.md 4.4): paths of the hierarchy, of the namespace's app, private paths of the object's
// initiator only; the environment's store; generators of the kinds the policy allows. The fields
// denied whatever the namespace (dataFrom[].find, fields the rules do not know) are
// ValidateSpecFields'.
func (p *Policy) ValidateExternalSecret(es *ExternalSecret, ns Namespace) field.ErrorList {
	c := p.secretsContext(ns, es.Annotations[AnnotationInitiatorID])
	c.validateExternalSecretSpec(p, &es.Spec, field.NewPath("spec"))
	return c.errs
}

// validateExternalSecretSpec checks an ExternalSecret's spec, at root, in the context's namespace.
func (c *secretsContext) validateExternalSecretSpec(p *Policy, spec *ExternalSecretSpec, root *field.Path) {
	if !p.checkNamespace(c) {
		return
	}
	if spec.SecretStoreRef != nil {
		c.checkStore(root.Child("secretStoreRef"), *spec.SecretStoreRef)
	}
	for i, d := range spec.Data {
		path := root.Child("data").Index(i)
		c.checkPath(path.Child("remoteRef", "key"), d.RemoteRef.Key)
		c.checkSource(path.Child("sourceRef"), d.SourceRef)
	}
	for i, d := range spec.DataFrom {
		path := root.Child("dataFrom").Index(i)
		if d.Extract != nil {
			c.checkPath(path.Child("extract", "key"), d.Extract.Key)
		}
		c.checkSource(path.Child("sourceRef"), d.SourceRef)
	}
}

// ValidatePushSecret checks every path and store a PushSecret writes to, and the generator it
// pushes the values of: the same rules as ValidateExternalSecret.
func (p *Policy) ValidatePushSecret(ps *PushSecret, ns Namespace) field.ErrorList {
	c := p.secretsContext(ns, ps.Annotations[AnnotationInitiatorID])
	c.validatePushSecretSpec(p, &ps.Spec, field.NewPath("spec"))
	return c.errs
}

// validatePushSecretSpec checks a PushSecret's spec, at root, in the context's namespace.
func (c *secretsContext) validatePushSecretSpec(p *Policy, spec *PushSecretSpec, root *field.Path) {
	if !p.checkNamespace(c) {
		return
	}
	for i, ref := range spec.SecretStoreRefs {
		if ref.LabelSelector == nil { // denied by ValidateSpecFields
			c.checkStore(root.Child("secretStoreRefs").Index(i), StoreRef{Name: ref.Name, Kind: ref.Kind})
		}
	}
	c.checkGenerator(root.Child("selector", "generatorRef"), spec.Selector.GeneratorRef)
	for i, d := range spec.Data {
		c.checkPath(root.Child("data").Index(i).Child("match", "remoteRef", "remoteKey"), d.Match.RemoteRef.RemoteKey)
	}
}

// ValidatePushSecretStatus checks the paths a PushSecret's status records as pushed, which
// External Secrets deletes from OpenBao when they leave the spec or the object is deleted: the
// same rules as the paths of its spec, so that whoever may write the status subresource cannot
// have another app's secrets deleted.
func (p *Policy) ValidatePushSecretStatus(ps *PushSecret, ns Namespace) field.ErrorList {
	c := p.secretsContext(ns, ps.Annotations[AnnotationInitiatorID])
	if !p.checkNamespace(c) {
		return c.errs
	}
	synced := field.NewPath("status", "syncedPushSecrets")
	for _, key := range slices.Sorted(maps.Keys(ps.Status.SyncedPushSecrets)) {
		kind, name, ok := strings.Cut(key, "/")
		if !ok {
			c.errs = append(c.errs, field.Invalid(synced.Key(key), key, "External Secrets names a store Kind/Name here"))
			continue
		}
		c.checkStore(synced.Key(key), StoreRef{Kind: kind, Name: name})
		entries := ps.Status.SyncedPushSecrets[key]
		for _, entry := range slices.Sorted(maps.Keys(entries)) {
			c.checkPath(synced.Key(key).Key(entry).Child("match", "remoteRef", "remoteKey"), entries[entry].Match.RemoteRef.RemoteKey)
		}
	}
	return c.errs
}

// ValidateSecretStore admits a namespaced SecretStore in an app's namespace only with exactly
// one provider, which the policy allows (spec.secrets.allowedStoreProviders, none by default):
// a store of the app's own reads with credentials of its own, past the platform's stores and
// every path rule (the vault provider reads OpenBao; the webhook provider calls any HTTP API,
// OpenBao's among them). Stores elsewhere are not the rules' concern.
func (p *Policy) ValidateSecretStore(store *SecretStore, ns Namespace) field.ErrorList {
	if store.Kind != "SecretStore" || !ns.Governed() {
		return nil
	}
	path := field.NewPath("spec", "provider")
	allowed := p.Secrets.AllowedStoreProviders
	howToFix := "use the ClusterSecretStore of your environment in your ExternalSecrets"
	if len(allowed) > 0 {
		howToFix += ", or a provider the policy allows (" + quotedList(allowed) + ")"
	}
	var errs field.ErrorList
	if len(store.Spec.Provider) != 1 {
		errs = append(errs, field.Invalid(path, fmt.Sprintf("%d providers", len(store.Spec.Provider)), "a store has exactly one provider: "+howToFix))
	}
	for _, name := range slices.Sorted(maps.Keys(store.Spec.Provider)) {
		switch {
		case !slices.Contains(storeProviders, name):
			errs = append(errs, field.Forbidden(path.Child(name), fmt.Sprintf("iss-webhook does not know the provider %q (one of a newer External Secrets release?), so it cannot tell what it reads: %s", name, howToFix)))
		case !slices.Contains(allowed, name):
			errs = append(errs, field.Forbidden(path.Child(name), fmt.Sprintf("a namespaced SecretStore in %s reads with credentials of its own, past the platform's stores and the ISS-001 path rules, and the policy allows no %q stores in the apps' namespaces (spec.secrets.allowedStoreProviders): %s",
				ns.Name, name, howToFix)))
		}
	}
	return errs
}

// ValidateInitiator checks the iss.platform/initiator-id annotation of an ExternalSecret or
// PushSecret: a requester that is not trusted may only name itself, and nobody untrusted may
// change it once set. old is nil on create.
func (p *Policy) ValidateInitiator(old, cur *metav1.ObjectMeta, username string, trusted bool) field.ErrorList {
	return validateInitiatorAnnotation(field.NewPath("metadata", "annotations").Key(AnnotationInitiatorID), old, cur, username, trusted,
		"the paths of this object were checked for it", true)
}

// ValidateSpecChange denies a change of what an ExternalSecret or PushSecret reads or writes
// (its spec) by an untrusted requester who is not its initiator: otherwise another member of the
// namespace could point someone's object at that person's private paths.
func ValidateSpecChange(meta *metav1.ObjectMeta, username string, trusted bool) field.ErrorList {
	initiator, ok := meta.Annotations[AnnotationInitiatorID]
	if trusted || !ok || initiator == username {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec"), fmt.Sprintf(
		"only its initiator %q (or a trusted identity) may change what this object reads or writes, and you are %q: create an object of your own", initiator, username))}
}

// ValidateNamespaceLabels denies adding, changing or removing a namespace's
// iss.platform/app-id and iss.platform/environment labels: they decide which app's secrets the
// namespace may read. old is nil on create. Callers let trusted identities through.
func ValidateNamespaceLabels(old, cur *metav1.ObjectMeta) field.ErrorList {
	var errs field.ErrorList
	for _, label := range []string{LabelAppID, LabelEnvironment} {
		var before string
		var had bool
		if old != nil {
			before, had = old.Labels[label]
		}
		after, has := cur.Labels[label]
		if had == has && before == after {
			continue
		}
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "labels").Key(label), fmt.Sprintf(
			"only the platform (trusted identities) may set or change %s (from %q to %q): it decides which app's secrets the namespace may read", label, before, after)))
	}
	return errs
}
