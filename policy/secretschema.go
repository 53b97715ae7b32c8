package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The External Secrets kinds are judged against what the rules know of their schema: every
// field of their specs is classified below, and a field that is not (one a newer External
// Secrets release adds) is denied, as is a value of a field with variants that is not listed (a
// new store kind, generator kind or policy). The classification follows the CRDs of External
// Secrets v0.16.2, every served version; a test reads them from the Go module and fails on a
// field or value that is not classified, so that an upgrade of External Secrets is reviewed
// here first.

// GeneratorGroup is the API group of External Secrets' generators.
const GeneratorGroup = "generators.external-secrets.io"

// ClusterGeneratorKind is the cluster-scoped generator that wraps a generator of any kind.
const ClusterGeneratorKind = "ClusterGenerator"

// GeneratorKind is one namespaced generator kind of External Secrets.
type GeneratorKind struct {
	Kind, Resource string
	// Versions are the served API versions.
	Versions []string
	// Reads says what the generator reads or calls to make its values, for the messages.
	Reads string
}

// generatorKinds are the namespaced generator kinds of External Secrets v0.16.2. A kind that is
// not listed is neither intercepted (the webhook configurations name only these resources) nor
// accepted in a reference.
var generatorKinds = []GeneratorKind{
	{"ACRAccessToken", "acraccesstokens", []string{"v1alpha1"}, "Azure Container Registry tokens, with Azure credentials"},
	{"ECRAuthorizationToken", "ecrauthorizationtokens", []string{"v1alpha1"}, "AWS ECR tokens, with AWS credentials"},
	{"Fake", "fakes", []string{"v1alpha1"}, "the values written in its spec"},
	{"GCRAccessToken", "gcraccesstokens", []string{"v1alpha1"}, "Google Container Registry tokens, with Google credentials"},
	{"GithubAccessToken", "githubaccesstokens", []string{"v1alpha1"}, "GitHub App tokens, with the App's private key"},
	{"Grafana", "grafanas", []string{"v1alpha1"}, "Grafana service account tokens, with Grafana credentials"},
	{"Password", "passwords", []string{"v1alpha1"}, "nothing: it makes random passwords"},
	{"QuayAccessToken", "quayaccesstokens", []string{"v1alpha1"}, "Quay robot tokens, with a service account token"},
	{"STSSessionToken", "stssessiontokens", []string{"v1alpha1"}, "AWS STS session tokens, with AWS credentials"},
	{"UUID", "uuids", []string{"v1alpha1"}, "nothing: it makes random UUIDs"},
	{"VaultDynamicSecret", "vaultdynamicsecrets", []string{"v1alpha1"}, "any Vault or OpenBao path, with credentials of its own"},
	{"Webhook", "webhooks", []string{"v1alpha1"}, "any HTTP endpoint, OpenBao's API among them, with Secrets of the namespace"},
}

// GeneratorKinds returns the namespaced generator kinds the rules know.
func GeneratorKinds() []GeneratorKind { return slices.Clone(generatorKinds) }

// GeneratorKindNames returns the names of the namespaced generator kinds the rules know.
func GeneratorKindNames() []string {
	names := make([]string, len(generatorKinds))
	for i, g := range generatorKinds {
		names[i] = g.Kind
	}
	return names
}

// generatorReads says what a generator kind reads, for the messages.
func generatorReads(kind string) string {
	for _, g := range generatorKinds {
		if g.Kind == kind {
			return g.Reads
		}
	}
	if kind == ClusterGeneratorKind {
		return "whatever the generator of any kind that it wraps reads"
	}
	return "what this build of iss-webhook does not know"
}

// storeProviders are the keys of a SecretStore's spec.provider in External Secrets v0.16.2.
var storeProviders = []string{
	"akeyless", "alibaba", "aws", "azurekv", "beyondtrust", "bitwardensecretsmanager", "chef", "cloudrusm", "conjur",
	"delinea", "device42", "doppler", "fake", "fortanix", "gcpsm", "github", "gitlab", "ibm", "infisical", "keepersecurity",
	"kubernetes", "onboardbase", "onepassword", "oracle", "passbolt", "passworddepot", "previder", "pulumi", "scaleway",
	"secretserver", "senhasegura", "vault", "webhook", "yandexcertificatemanager", "yandexlockbox",
}

// StoreProviders returns the SecretStore providers the rules know.
func StoreProviders() []string { return slices.Clone(storeProviders) }

// FieldClass says how the rules treat a field of an External Secrets object.
type FieldClass string

// The classes of fields.
const (
	// FieldFree fields neither read nor write a secret nor name a source: admitted as they are.
	FieldFree FieldClass = "free"
	// FieldChecked fields name an OpenBao path, a store, a generator or namespaces, which a rule
	// judges.
	FieldChecked FieldClass = "checked"
	// FieldNamespaceSecret fields name a Secret of the object's own namespace that the object
	// reads or writes (SecretReads and SecretWrites list them).
	FieldNamespaceSecret FieldClass = "namespace Secret"
	// FieldDenied fields are denied: what they read or write cannot be checked.
	FieldDenied FieldClass = "denied"
)

// FieldRule is what the rules know of one field of an External Secrets object, and of the
// fields below it.
type FieldRule struct {
	Class FieldClass
	// Note says what the field does; for a denied field it is the denial's message.
	Note string
	// Fields are the known fields of an object: any other is denied. Nil for a value.
	Fields map[string]*FieldRule
	// Items is the rule of an array's items.
	Items *FieldRule
	// Values are the known values of a field with variants: any other is denied.
	Values []string
	// Opaque objects are admitted whatever they hold (labels, annotations, templates' data,
	// provider-specific metadata): nothing below them reads a secret or names a source.
	Opaque bool
}

type fields = map[string]*FieldRule

func free(note string) *FieldRule    { return &FieldRule{Class: FieldFree, Note: note} }
func checked(note string) *FieldRule { return &FieldRule{Class: FieldChecked, Note: note} }
func opaque(note string) *FieldRule  { return &FieldRule{Class: FieldFree, Note: note, Opaque: true} }
func variants(note string, values ...string) *FieldRule {
	return &FieldRule{Class: FieldFree, Note: note, Values: values}
}
func object(class FieldClass, note string, f fields) *FieldRule {
	return &FieldRule{Class: class, Note: note, Fields: f}
}
func listOf(item *FieldRule) *FieldRule {
	return &FieldRule{Class: item.Class, Note: item.Note, Items: item}
}

// labelSelector is the rule of a label selector's fields.
func labelSelector(class FieldClass, note string) *FieldRule {
	return object(class, note, fields{
		"matchLabels": opaque("labels"),
		"matchExpressions": listOf(object(class, note, fields{
			"key": free("a label key"), "operator": free("In, NotIn, Exists or DoesNotExist"), "values": listOf(free("label values")),
		})),
	})
}

// storeRefRule is the rule of a reference to a store.
func storeRefRule(note string) *FieldRule {
	return object(FieldChecked, note, fields{
		"name": checked("the store's name"),
		"kind": &FieldRule{Class: FieldChecked, Note: "the store's kind", Values: []string{"SecretStore", "ClusterSecretStore"}},
	})
}

// generatorRefRule is the rule of a reference to a generator.
func generatorRefRule() *FieldRule {
	return object(FieldChecked, "a generator: its group must be "+GeneratorGroup+" and its kind one of the policy's allowedGeneratorKinds", fields{
		"apiVersion": checked("the generator's group and version"),
		"kind":       &FieldRule{Class: FieldChecked, Note: "the generator's kind", Values: append(GeneratorKindNames(), ClusterGeneratorKind)},
		"name":       free("the generator's name in the object's namespace"),
	})
}

// templateRule is the rule of the template of a Secret that External Secrets writes or pushes.
func templateRule() *FieldRule {
	items := listOf(object(FieldFree, "keys of the ConfigMap or Secret", fields{
		"key": free("a key"), "templateAs": variants("how the key is templated", "Values", "KeysAndValues"),
	}))
	return object(FieldFree, "the template of the Secret's content", fields{
		"type":          free("the Secret's type"),
		"engineVersion": variants("the template engine", "v2"),
		"mergePolicy":   variants("how the template merges with the data", "Replace", "Merge"),
		"metadata":      object(FieldFree, "the Secret's labels and annotations", fields{"labels": opaque("labels"), "annotations": opaque("annotations")}),
		"data":          opaque("templates of the Secret's keys, over the values read"),
		"templateFrom": listOf(object(FieldFree, "templates from a ConfigMap, a Secret or a literal", fields{
			"configMap": object(FieldFree, "a ConfigMap of the namespace", fields{"name": free("the ConfigMap's name"), "items": items}),
			"secret":    object(FieldNamespaceSecret, "a Secret of the namespace, read", fields{"name": &FieldRule{Class: FieldNamespaceSecret, Note: "the Secret read"}, "items": items}),
			"literal":   free("a template written out"),
			"target":    variants("what the template writes", "Data", "Annotations", "Labels"),
		})),
	})
}

// remoteRefRule is the rule of the reference to one path: ExternalSecret data[].remoteRef and
// dataFrom[].extract.
func remoteRefRule(note string) *FieldRule {
	return object(FieldChecked, note, fields{
		"key":                checked("the OpenBao path: the hierarchy, the namespace's app, the initiator's private paths only"),
		"property":           free("a key of the secret at the path"),
		"version":            free("a version of the secret at the path"),
		"conversionStrategy": variants("how keys are converted", "Default", "Unicode"),
		"decodingStrategy":   variants("how values are decoded", "Auto", "Base64", "Base64URL", "None"),
		"metadataPolicy":     variants("whether the path's metadata is read instead of its data", "None", "Fetch"),
	})
}

// externalSecretSpecRule is the rule of an ExternalSecret's spec, external-secrets.io v1 and
// v1beta1 alike, and of a ClusterExternalSecret's externalSecretSpec.
func externalSecretSpecRule() *FieldRule {
	sourceRef := object(FieldChecked, "another store, or a generator, for this entry", fields{
		"storeRef":     storeRefRule("the store of this entry: the environment's store"),
		"generatorRef": generatorRefRule(),
	})
	return object(FieldChecked, "the spec", fields{
		"secretStoreRef":  storeRefRule("the store: the environment's store"),
		"refreshInterval": free("how often the Secret is synced"),
		"refreshPolicy":   variants("when the Secret is synced", "CreatedOnce", "Periodic", "OnChange"),
		"target": object(FieldNamespaceSecret, "the Secret written", fields{
			"name":           &FieldRule{Class: FieldNamespaceSecret, Note: "the Secret written, in the object's namespace"},
			"creationPolicy": variants("whether the Secret is created, merged into or owned", "Owner", "Orphan", "Merge", "None"),
			"deletionPolicy": variants("what happens to the Secret when the data is gone", "Delete", "Merge", "Retain"),
			"immutable":      free("whether the Secret is immutable"),
			"template":       templateRule(),
		}),
		"data": listOf(object(FieldChecked, "one value read", fields{
			"secretKey": free("the key written in the Secret"),
			"remoteRef": remoteRefRule("the path read"),
			"sourceRef": sourceRef,
		})),
		"dataFrom": listOf(object(FieldChecked, "every key of a path read", fields{
			"extract": remoteRefRule("the path whose keys are read"),
			"find":    &FieldRule{Class: FieldDenied, Note: "find searches across OpenBao paths, beyond what the app may read: list each path with extract.key or data[].remoteRef.key", Opaque: true},
			"rewrite": listOf(object(FieldFree, "how the keys read are renamed", fields{
				"regexp":    object(FieldFree, "a rename by regular expression", fields{"source": free("the expression"), "target": free("the replacement")}),
				"transform": object(FieldFree, "a rename by template", fields{"template": free("the template")}),
			})),
			"sourceRef": sourceRef,
		})),
	})
}

// pushSecretSpecRule is the rule of a PushSecret's spec, external-secrets.io v1alpha1, and of a
// ClusterPushSecret's pushSecretSpec.
func pushSecretSpecRule() *FieldRule {
	storeRef := object(FieldChecked, "a store pushed to: the environment's store, named", fields{
		"name":          checked("the store's name"),
		"kind":          &FieldRule{Class: FieldChecked, Note: "the store's kind", Values: []string{"SecretStore", "ClusterSecretStore"}},
		"labelSelector": &FieldRule{Class: FieldDenied, Note: "stores selected by labels cannot be checked against the environment's store: name the store", Opaque: true},
	})
	return object(FieldChecked, "the spec", fields{
		"secretStoreRefs": listOf(storeRef),
		"selector": object(FieldChecked, "what is pushed: a Secret of the namespace or a generator's values", fields{
			"secret": object(FieldNamespaceSecret, "a Secret of the namespace, read", fields{
				"name":     &FieldRule{Class: FieldNamespaceSecret, Note: "the Secret read and pushed"},
				"selector": &FieldRule{Class: FieldDenied, Note: "External Secrets lists the Secrets a label selector matches in every namespace of the cluster, not only this one: name the Secret with selector.secret.name", Opaque: true},
			}),
			"generatorRef": generatorRefRule(),
		}),
		"data": listOf(object(FieldChecked, "one value pushed", fields{
			"match": object(FieldChecked, "which key goes to which path", fields{
				"secretKey": free("the key of the Secret pushed"),
				"remoteRef": object(FieldChecked, "the path written", fields{
					"remoteKey": checked("the OpenBao path: the hierarchy, the namespace's app, the initiator's private paths only"),
					"property":  free("a key of the secret at the path"),
				}),
			}),
			"metadata":           opaque("provider-specific metadata of the path written, in the environment's store"),
			"conversionStrategy": variants("how keys are converted", "None", "ReverseUnicode"),
		})),
		"deletionPolicy":  variants("whether the paths are deleted with the object", "Delete", "None"),
		"updatePolicy":    variants("whether existing paths are replaced", "Replace", "IfNotExists"),
		"refreshInterval": free("how often the Secret is pushed"),
		"template":        templateRule(),
	})
}

// clusterMetadataRule is the rule of the labels and annotations a cluster-scoped kind gives the
// objects it makes in each namespace.
func clusterMetadataRule(kind string) *FieldRule {
	return object(FieldChecked, "the metadata of each "+kind+" made: its "+AnnotationInitiatorID+" is the initiator its paths are checked for", fields{
		"labels": opaque("labels"), "annotations": opaque("annotations"),
	})
}

// specRules are the rules of each kind's spec.
var specRules = map[string]*FieldRule{
	"ExternalSecret": externalSecretSpecRule(),
	"PushSecret":     pushSecretSpecRule(),
	"ClusterExternalSecret": object(FieldChecked, "the spec", fields{
		"externalSecretSpec":     externalSecretSpecRule(),
		"externalSecretName":     free("the name of each ExternalSecret made"),
		"externalSecretMetadata": clusterMetadataRule("ExternalSecret"),
		"namespaceSelector":      labelSelector(FieldChecked, "namespaces selected: each must admit the ExternalSecret"),
		"namespaceSelectors":     listOf(labelSelector(FieldChecked, "namespaces selected: each must admit the ExternalSecret")),
		"namespaces":             listOf(checked("namespaces named: each must admit the ExternalSecret")),
		"refreshTime":            free("how often the namespaces are selected again"),
	}),
	"ClusterPushSecret": object(FieldChecked, "the spec", fields{
		"pushSecretSpec":     pushSecretSpecRule(),
		"pushSecretName":     free("the name of each PushSecret made"),
		"pushSecretMetadata": clusterMetadataRule("PushSecret"),
		"namespaceSelectors": listOf(labelSelector(FieldChecked, "namespaces selected: each must admit the PushSecret")),
		"refreshTime":        free("how often the namespaces are selected again"),
	}),
	"SecretStore": object(FieldChecked, "the spec", fields{
		"provider":        &FieldRule{Class: FieldChecked, Note: "exactly one provider, one of the policy's allowedStoreProviders", Opaque: true},
		"controller":      free("the External Secrets controller class that serves the store"),
		"refreshInterval": free("how often the store is checked"),
		"retrySettings":   opaque("how calls to the provider are retried"),
		"conditions":      opaque("the namespaces a ClusterSecretStore serves; a namespaced store serves its own"),
	}),
}

// SpecRule returns the rule of a kind's spec (ExternalSecret, PushSecret, ClusterExternalSecret,
// ClusterPushSecret, SecretStore), or nil.
func SpecRule(kind string) *FieldRule { return specRules[kind] }

// ValidateSpecFields denies the fields of an External Secrets object's spec that the rules do not
// know or deny, and the values of fields with variants that they do not know, with every field
// path at once.
func ValidateSpecFields(kind string, spec map[string]any) field.ErrorList {
	rule := specRules[kind]
	if rule == nil {
		return nil
	}
	return rule.validate(field.NewPath("spec"), spec, kind)
}

// validate checks value against the rule at path.
func (r *FieldRule) validate(path *field.Path, value any, kind string) field.ErrorList {
	if value == nil {
		return nil
	}
	if r.Class == FieldDenied {
		return field.ErrorList{field.Forbidden(path, r.Note)}
	}
	switch {
	case r.Opaque:
		return nil
	case r.Fields != nil:
		obj, ok := value.(map[string]any)
		if !ok {
			return field.ErrorList{field.Invalid(path, value, "must be an object")}
		}
		var errs field.ErrorList
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			child := r.Fields[name]
			if child == nil {
				errs = append(errs, field.Forbidden(path.Child(name), fmt.Sprintf(
					"iss-webhook does not know what %s %s reads or writes (a field of a newer External Secrets release?), so it cannot check it against ISS-001: remove it, or ask the platform team to support it",
					kind, path.Child(name))))
				continue
			}
			errs = append(errs, child.validate(path.Child(name), obj[name], kind)...)
		}
		return errs
	case r.Items != nil:
		items, ok := value.([]any)
		if !ok {
			return field.ErrorList{field.Invalid(path, value, "must be a list")}
		}
		var errs field.ErrorList
		for i, item := range items {
			errs = append(errs, r.Items.validate(path.Index(i), item, kind)...)
		}
		return errs
	case r.Values != nil:
		s, ok := value.(string)
		if !ok || !slices.Contains(r.Values, s) {
			return field.ErrorList{field.NotSupported(path, value, r.Values)}
		}
	}
	return nil
}

// RenderSpecRules writes the classification of every field of the External Secrets kinds as a
// Markdown table per kind, for docs/external-secrets-fields.md.
func RenderSpecRules() []byte {
	var b strings.Builder
	b.WriteString("# External Secrets fields\n\nGenerated by `make generate` from `policy.SpecRule`: edit that, not this file.\n\n")
	b.WriteString("Every field of the specs of the External Secrets kinds that iss-webhook governs, as the rules\n")
	b.WriteString("classify it. A field that is not listed is denied, and so is a value of a field with listed\n")
	b.WriteString("values that is not among them: what a newer External Secrets release adds fails closed until\n")
	b.WriteString("the rules know it. Classes: **free** fields neither read nor write a secret nor name a source;\n")
	b.WriteString("**checked** fields are judged by a rule ([rules.md](rules.md#externalsecrets-and-openbao-paths-iss-001-section-2));\n")
	b.WriteString("**namespace Secret** fields name a Secret of the object's own namespace that it reads or writes;\n")
	b.WriteString("**denied** fields are denied with the message given. Below an opaque field anything is admitted.\n")
	for _, kind := range []string{"ExternalSecret", "PushSecret", "ClusterExternalSecret", "ClusterPushSecret", "SecretStore"} {
		fmt.Fprintf(&b, "\n## %s\n\n| field | class | values | what it does |\n|---|---|---|---|\n", kind)
		specRules[kind].render(&b, "spec")
	}
	return []byte(b.String())
}

func (r *FieldRule) render(b *strings.Builder, path string) {
	class := string(r.Class)
	if r.Opaque && r.Class != FieldDenied {
		class += ", opaque"
	}
	values := ""
	if r.Values != nil {
		values = "`" + strings.Join(r.Values, "`, `") + "`"
	}
	if r.Items == nil || r.Items.Fields == nil {
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, class, values, strings.ReplaceAll(r.Note, "|", "\\|"))
	}
	switch {
	case r.Fields != nil:
		for _, name := range slices.Sorted(maps.Keys(r.Fields)) {
			r.Fields[name].render(b, path+"."+name)
		}
	case r.Items != nil && r.Items.Fields != nil:
		r.Items.render(b, path+"[]")
	}
}
