package policy

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
}

// ExternalSecret is the governed part of an ExternalSecret.
type ExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		SecretStoreRef *StoreRef `json:"secretStoreRef,omitempty"`
		Data           []struct {
			RemoteRef RemoteRef  `json:"remoteRef"`
			SourceRef *SourceRef `json:"sourceRef,omitempty"`
		} `json:"data,omitempty"`
		DataFrom []struct {
			Extract   *RemoteRef `json:"extract,omitempty"`
			Find      *struct{}  `json:"find,omitempty"`
			SourceRef *SourceRef `json:"sourceRef,omitempty"`
		} `json:"dataFrom,omitempty"`
	} `json:"spec"`
}

// PushSecret is the governed part of a PushSecret.
type PushSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		SecretStoreRefs []struct {
			Name          string                `json:"name,omitempty"`
			Kind          string                `json:"kind,omitempty"`
			LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
		} `json:"secretStoreRefs"`
		Data []struct {
			Match struct {
				RemoteRef struct {
					RemoteKey string `json:"remoteKey"`
				} `json:"remoteRef"`
			} `json:"match"`
		} `json:"data,omitempty"`
	} `json:"spec"`
}

// SecretStore is the governed part of a SecretStore: whether its provider is Vault (which
// OpenBao serves too).
type SecretStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Provider struct {
			Vault *struct{} `json:"vault,omitempty"`
		} `json:"provider"`
	} `json:"spec"`
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
	return SecretsPolicy{Environments: envs, PathRoot: DefaultPathRoot}
}

// secretsContext is what every path check of one object needs.
type secretsContext struct {
	ns        Namespace
	env       SecretEnvironment
	envKnown  bool
	initiator string
	root      string
	errs      field.ErrorList
}

func (p *Policy) secretsContext(ns Namespace, initiator string) *secretsContext {
	env, ok := p.Secrets.Environments[ns.Environment]
	return &secretsContext{ns: ns, env: env, envKnown: ok, initiator: initiator, root: p.Secrets.PathRoot}
}

// checkPath checks one OpenBao path against the hierarchy and the object's app and initiator.
func (c *secretsContext) checkPath(path *field.Path, key string) {
	sp, err := ParseSecretPath(c.root, key)
	if err != nil {
		c.errs = append(c.errs, field.Invalid(path, key, err.Error()))
		return
	}
	if sp.AppID != c.ns.AppID {
		c.errs = append(c.errs, field.Forbidden(path, fmt.Sprintf("path %q belongs to the app %q, but namespace %s belongs to %q (its %s label): use artifacts/%s/...",
			key, sp.AppID, c.ns.Name, c.ns.AppID, LabelAppID, c.ns.AppID)))
	}
	if sp.Scope == ScopeUser && sp.UserID != c.initiator {
		c.errs = append(c.errs, field.Forbidden(path, fmt.Sprintf("path %q is the private path of user %q, but this object's %s is %q: use artifacts/%s/users/%s/secrets/... or a public path",
			key, sp.UserID, AnnotationInitiatorID, c.initiator, c.ns.AppID, c.initiator)))
	}
}

// checkStore checks that a store reference is the one the policy maps to the environment.
func (c *secretsContext) checkStore(path *field.Path, ref StoreRef) {
	if !c.envKnown {
		return // reported once, by checkEnvironment
	}
	if ref.kind() != c.env.Store.kind() || ref.Name != c.env.Store.Name {
		c.errs = append(c.errs, field.Forbidden(path, fmt.Sprintf("store %s is not the store of environment %q: use %s (kind: %s, name: %s), which the platform maps to it",
			ref, c.ns.Environment, c.env.Store, c.env.Store.kind(), c.env.Store.Name)))
	}
}

// checkNamespace reports a namespace that belongs to no app, or whose environment has no
// store in the policy. It tells whether the object's paths can be checked at all.
func (p *Policy) checkNamespace(c *secretsContext, root *field.Path) bool {
	if !c.ns.Governed() {
		c.errs = append(c.errs, field.Forbidden(root.Child("metadata", "namespace"), fmt.Sprintf(
			"namespace %s has no %s label, so it belongs to no app and may not read or write OpenBao secrets: ask the platform team to label it", c.ns.Name, LabelAppID)))
		return false
	}
	if !c.envKnown {
		c.errs = append(c.errs, field.Forbidden(root.Child("metadata", "namespace"), fmt.Sprintf(
			"namespace %s has the %s label %q, which the policy maps to no store: it must be one of %s", c.ns.Name, LabelEnvironment, c.ns.Environment, quotedList(p.environmentNames()))))
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

// safeGenerators are the generator kinds that make values without reading any secret store.
var safeGenerators = []string{"Password", "UUID"}

// knownSpecFields are the spec fields of each kind whose effect the rules know. Others are
// denied, so that a field a newer External Secrets adds (PushSecret's dataTo writes to paths of
// its own) fails closed until the rules know it.
var knownSpecFields = map[string][]string{
	"ExternalSecret": {"secretStoreRef", "target", "refreshPolicy", "refreshInterval", "data", "dataFrom"},
	"PushSecret":     {"secretStoreRefs", "selector", "data", "deletionPolicy", "refreshInterval", "template", "updatePolicy"},
}

// ValidateKnownSpecFields denies spec fields of an ExternalSecret or PushSecret that the rules
// do not know.
func ValidateKnownSpecFields(kind string, spec map[string]any) field.ErrorList {
	known, ok := knownSpecFields[kind]
	if !ok {
		return nil
	}
	var errs field.ErrorList
	names := make([]string, 0, len(spec))
	for name := range spec {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(known, name) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", name), fmt.Sprintf(
				"iss-webhook does not know what %s.spec.%s reads or writes, so it cannot check it against ISS-001: remove it, or ask the platform team to support it", kind, name)))
		}
	}
	return errs
}

// ValidateExternalSecret checks every path and store an ExternalSecret reads from (design.md
// 4.4): paths of the hierarchy, of the namespace's app, private paths of the object's initiator
// only; no find across paths; the environment's store; no Vault dynamic-secret generators.
func (p *Policy) ValidateExternalSecret(es *ExternalSecret, ns Namespace) field.ErrorList {
	c := p.secretsContext(ns, es.Annotations[AnnotationInitiatorID])
	if !p.checkNamespace(c, nil) {
		return c.errs
	}
	spec := field.NewPath("spec")
	if es.Spec.SecretStoreRef != nil {
		c.checkStore(spec.Child("secretStoreRef"), *es.Spec.SecretStoreRef)
	}
	checkSource := func(path *field.Path, src *SourceRef) {
		if src == nil {
			return
		}
		if src.StoreRef != nil {
			c.checkStore(path.Child("storeRef"), *src.StoreRef)
		}
		if src.GeneratorRef != nil && !slices.Contains(safeGenerators, src.GeneratorRef.Kind) {
			c.errs = append(c.errs, field.Forbidden(path.Child("generatorRef"), fmt.Sprintf(
				"generator kind %q may read secrets outside the ISS-001 path hierarchy (only %s make values without reading any): read a path of your app with remoteRef.key instead",
				src.GeneratorRef.Kind, quotedList(safeGenerators))))
		}
	}
	for i, d := range es.Spec.Data {
		path := spec.Child("data").Index(i)
		c.checkPath(path.Child("remoteRef", "key"), d.RemoteRef.Key)
		checkSource(path.Child("sourceRef"), d.SourceRef)
	}
	for i, d := range es.Spec.DataFrom {
		path := spec.Child("dataFrom").Index(i)
		if d.Find != nil {
			c.errs = append(c.errs, field.Forbidden(path.Child("find"),
				"find searches across OpenBao paths, beyond what the app may read: list each path with extract.key or data[].remoteRef.key"))
		}
		if d.Extract != nil {
			c.checkPath(path.Child("extract", "key"), d.Extract.Key)
		}
		checkSource(path.Child("sourceRef"), d.SourceRef)
	}
	return c.errs
}

// ValidatePushSecret checks every path and store a PushSecret writes to: the same rules as
// ValidateExternalSecret, and stores named, not selected by labels.
func (p *Policy) ValidatePushSecret(ps *PushSecret, ns Namespace) field.ErrorList {
	c := p.secretsContext(ns, ps.Annotations[AnnotationInitiatorID])
	if !p.checkNamespace(c, nil) {
		return c.errs
	}
	spec := field.NewPath("spec")
	for i, ref := range ps.Spec.SecretStoreRefs {
		path := spec.Child("secretStoreRefs").Index(i)
		if ref.LabelSelector != nil {
			c.errs = append(c.errs, field.Forbidden(path.Child("labelSelector"),
				"stores selected by labels cannot be checked against the environment's store: name the store"))
			continue
		}
		c.checkStore(path, StoreRef{Name: ref.Name, Kind: ref.Kind})
	}
	for i, d := range ps.Spec.Data {
		c.checkPath(spec.Child("data").Index(i).Child("match", "remoteRef", "remoteKey"), d.Match.RemoteRef.RemoteKey)
	}
	return c.errs
}

// ValidateSecretStore denies a namespaced SecretStore with the Vault provider (which OpenBao
// serves too) in an app's namespace: it would read OpenBao with credentials of its own,
// bypassing the platform's store and every path rule.
func (p *Policy) ValidateSecretStore(store *SecretStore, ns Namespace) field.ErrorList {
	if store.Kind != "SecretStore" || !ns.Governed() || store.Spec.Provider.Vault == nil {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "provider", "vault"), fmt.Sprintf(
		"a namespaced Vault/OpenBao SecretStore in %s would bypass the platform's store and the ISS-001 path rules: use the ClusterSecretStore of your environment in your ExternalSecrets", ns.Name))}
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
