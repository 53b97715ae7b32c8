package webhook

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/iss-platform/iss-webhook/internal/configsync"
	"github.com/iss-platform/iss-webhook/policy"
)

// The paths the webhook serves; the webhook configurations, rendered from the endpoints below,
// name them.
const (
	// MutateEnginePodsPath serves the mutating webhook for pods.
	MutateEnginePodsPath = "/mutate-engine-pods"
	// ValidateEnginePodsPath serves the validating webhooks for pods and their subresources.
	ValidateEnginePodsPath = "/validate-engine-pods"
	// ValidateNetworkPoliciesPath serves the validating webhook for network policies.
	ValidateNetworkPoliciesPath = "/validate-network-policies"
	// MutateExternalSecretsPath serves the mutating webhook for ExternalSecrets and PushSecrets.
	MutateExternalSecretsPath = "/mutate-external-secrets"
	// ValidateSecretsPath serves the validating webhook for the External Secrets kinds:
	// ExternalSecrets, PushSecrets, their cluster-scoped kinds, stores and generators.
	ValidateSecretsPath = "/validate-secrets"
	// ValidateNamespacesPath serves the validating webhook for Namespaces.
	ValidateNamespacesPath = "/validate-namespaces"
	// ValidateWorkloadsPath serves the validating webhook for the workloads that create pods.
	ValidateWorkloadsPath = "/validate-workloads"
	// MutateWorkloadsPath serves the mutating webhook that records the owner of workloads' pod
	// templates.
	MutateWorkloadsPath = "/mutate-workloads"
	// ValidateUserSecretWorkloadsPath serves the validating webhook of the user-private Secret
	// rules for the workloads that create pods.
	ValidateUserSecretWorkloadsPath = "/validate-user-secret-workloads"
	// MutatePodOwnersPath serves the mutating webhook that records the owner of pods.
	MutatePodOwnersPath = "/mutate-pod-owners"
	// ValidateUserSecretPodsPath serves the validating webhooks of the user-private Secret rules
	// for pods, their debug containers and exec, attach and port-forward.
	ValidateUserSecretPodsPath = "/validate-user-secret-pods"
	// MutateHPAsPath serves the mutating webhook for HorizontalPodAutoscalers.
	MutateHPAsPath = "/mutate-hpas"
	// ValidateHPAsPath serves the validating webhook for HorizontalPodAutoscalers.
	ValidateHPAsPath = "/validate-hpas"
	// ValidateProvisioningPath serves the validating webhook for Pulumi Stacks and Terraforms.
	ValidateProvisioningPath = "/validate-provisioning"
	// ValidateISSPoliciesPath serves the validating webhook for ISSPolicies.
	ValidateISSPoliciesPath = "/validate-isspolicies"
	// ValidateBuildRecordsPath serves the validating webhook for the build records.
	ValidateBuildRecordsPath = "/validate-build-records"
)

// Endpoint is one webhook of the configurations. Several may share a path (the pods' status
// webhook has its own matchConditions); the kinds' rules say what each is sent.
type Endpoint struct {
	// Name is the webhook's name in its configuration.
	Name string
	// Path is where the webhook server serves it.
	Path string
	// Mutating webhooks go into the MutatingWebhookConfiguration.
	Mutating bool
	// SideEffects is None unless the webhook writes objects (NoneOnDryRun), said in
	// SideEffectsComment.
	SideEffects        admissionregistrationv1.SideEffectClass
	SideEffectsComment string
	// AppNamespacesOnly sends only objects of namespaces with an iss.platform/app-id label.
	AppNamespacesOnly bool
	// OwnNamespaceOnly sends only objects of iss-webhook's own namespace, which every other
	// webhook excludes; ObjectSelector must then narrow them to the objects it guards, so that
	// nothing iss-webhook runs on waits for it.
	OwnNamespaceOnly bool
	// ObjectSelector, when set, is the label that the objects sent (or, on update and delete,
	// their stored version) carry.
	ObjectSelector string
	// NamespaceComment explains the namespace selector, where it needs explaining.
	NamespaceComment string
	// FailureComment explains the failure policy, where it needs explaining.
	FailureComment string
	// MatchConditions spare the webhook the calls it would answer with allowed.
	MatchConditions []MatchCondition
}

// MatchCondition is a CEL condition of a webhook, with the comment that says what it spares.
type MatchCondition struct {
	Name, Comment string
	// Expression renders the condition for the engine image test of a policy (see
	// configsync.ImageTest); conditions without one ignore it.
	Expression func(imageTest string) string
}

// engineOrISSMetadata is the condition of the pod webhooks: pods that are (or were, on update)
// engines or carry ISS labels or annotations.
var engineOrISSMetadata = MatchCondition{
	Name: "engine-or-iss-metadata",
	Comment: `Only pods that are (or were, on update) Dagger engines, carry iss.platform/ labels or
annotations, or have a container that runs privileged or adds capabilities (outside engines they
are denied) reach the webhook; a plain pod costs no call. The image test is that of
the policy's engine images, in any spelling of their registry host: iss-webhook
rewrites it in every webhook when the policy's images change.`,
	Expression: func(image string) string {
		return `[object, oldObject].exists(o, o != null && (
  (has(o.metadata.labels) && o.metadata.labels.exists(k, k.startsWith('iss.platform/'))) ||
  (has(o.metadata.annotations) && o.metadata.annotations.exists(k, k.startsWith('iss.platform/'))) ||
  (has(o.spec.containers) && o.spec.containers.exists(c, has(c.image) && ` + image + `)) ||
  (has(o.spec.initContainers) && o.spec.initContainers.exists(c, has(c.image) && ` + image + `)) ||
  (has(o.spec.ephemeralContainers) && o.spec.ephemeralContainers.exists(c, has(c.image) && ` + image + `)) ||
  ` + privilegedContainers("o.spec") + `
))`
	},
}

// secretReferences is the CEL test of a pod spec that references a Secret: image pull secrets,
// env and envFrom of any container, and every volume but those of the types known to name none
// (so that a volume type newer than the webhook reaches it too). It is a superset of
// policy.PodSpecSecretReferences, which decides.
func secretReferences(spec string) string {
	tests := []string{
		`size(` + spec + `.?imagePullSecrets.orValue([])) > 0`,
		spec + `.?volumes.orValue([]).exists(v, !(has(v.emptyDir) || has(v.configMap) || has(v.downwardAPI) || has(v.hostPath) ||
    has(v.persistentVolumeClaim) || has(v.ephemeral) || has(v.image) || has(v.nfs) ||
    (has(v.projected) && !v.projected.?sources.orValue([]).exists(s, has(s.secret)))))`,
	}
	for _, list := range []string{"containers", "initContainers", "ephemeralContainers"} {
		tests = append(tests, spec+`.?`+list+`.orValue([]).exists(c, c.?envFrom.orValue([]).exists(e, has(e.secretRef)) ||
    c.?env.orValue([]).exists(e, has(e.valueFrom) && has(e.valueFrom.secretKeyRef)))`)
	}
	return "(" + strings.Join(tests, " ||\n  ") + ")"
}

// privilegedContainers is the CEL test of a pod spec with a container (init and ephemeral ones
// too) that runs privileged or adds capabilities: outside engines they are denied, so that a
// renamed engine image reaches the webhook without a label. It is a superset of what
// policy.ValidatePrivilegedNonEngine denies, which decides.
func privilegedContainers(spec string) string {
	var tests []string
	for _, list := range []string{"containers", "initContainers", "ephemeralContainers"} {
		tests = append(tests, `(has(`+spec+`.`+list+`) && `+spec+`.`+list+`.exists(c, has(c.securityContext) && (
    c.securityContext.?privileged.orValue(false) || size(c.securityContext.?capabilities.?add.orValue([])) > 0)))`)
	}
	return strings.Join(tests, " ||\n  ")
}

// templateOrLabelsChanged is the condition of the validating workloads webhooks on update.
var templateOrLabelsChanged = MatchCondition{
	Name: "template-or-labels-changed",
	Comment: `Updates that leave the pod template and the labels as they were (scaling a ReplicaSet,
the controllers' bookkeeping) create no pod the rules have not seen: they never wait
on the webhook.`,
	Expression: func(string) string {
		return `request.operation != 'UPDATE' ||
object.metadata.?labels.orValue({}) != oldObject.metadata.?labels.orValue({}) ||
object.?spec.?template.orValue({}) != oldObject.?spec.?template.orValue({}) ||
object.?spec.?jobTemplate.orValue({}) != oldObject.?spec.?jobTemplate.orValue({}) ||
object.?template.orValue({}) != oldObject.?template.orValue({})`
	},
}

// workloadTemplates is the CEL test of a workload whose pod template passes test, which
// renders the test of a template at a CEL path: spec.template, a CronJob's
// spec.jobTemplate.spec.template, or a PodTemplate's template.
func workloadTemplates(test func(template string) string) string {
	return `(has(object.spec) && has(object.spec.template) && (` + test("object.spec.template") + `)) ||
(has(object.spec) && has(object.spec.jobTemplate) && has(object.spec.jobTemplate.spec) && has(object.spec.jobTemplate.spec.template) &&
  (` + test("object.spec.jobTemplate.spec.template") + `)) ||
(has(object.template) && (` + test("object.template") + `))`
}

// inAppNamespaces explains the namespace selector of the user-private Secret webhooks.
const inAppNamespaces = `The apps' namespaces only: ExternalSecrets elsewhere may read no OpenBao path, so no Secret
is private to a user outside them, and the platform's own pods never wait on these webhooks.`

// hpasInAppNamespaces explains the namespace selector of the HPA webhooks.
const hpasInAppNamespaces = "The apps' namespaces only: HPAs of the platform's own components scale as they like."

// writesBuildRecords is the side effect of the workloads webhook.
const writesBuildRecords = "It writes the records of Temporal builds' code, except on dry run."

// The endpoints, in the order of the configurations.
var (
	mutateEnginePods = Endpoint{
		Name: "engine-pods.mutate.iss.platform", Path: MutateEnginePodsPath, Mutating: true,
		SideEffects: admissionregistrationv1.SideEffectClassNoneOnDryRun, SideEffectsComment: "It writes the engine's egress NetworkPolicies, except on dry run.",
		MatchConditions: []MatchCondition{engineOrISSMetadata},
	}
	mutateExternalSecrets = Endpoint{Name: "external-secrets.mutate.iss.platform", Path: MutateExternalSecretsPath, Mutating: true}
	mutateHPAs            = Endpoint{Name: "hpas.mutate.iss.platform", Path: MutateHPAsPath, Mutating: true, AppNamespacesOnly: true, NamespaceComment: hpasInAppNamespaces}
	mutateWorkloads       = Endpoint{
		Name: "workloads.mutate.iss.platform", Path: MutateWorkloadsPath, Mutating: true, AppNamespacesOnly: true, NamespaceComment: inAppNamespaces,
		MatchConditions: []MatchCondition{{
			Name: "template-needs-owner",
			Comment: `Only workloads whose pod template references a Secret and has no owner
(iss.platform/initiator-id), which the webhook then records: the requester, or on update
the owner it had. A PodTemplate has no spec: every test of a field is guarded.`,
			Expression: func(string) string {
				return workloadTemplates(func(t string) string {
					return `!(has(` + t + `.metadata) && has(` + t + `.metadata.annotations) && 'iss.platform/initiator-id' in ` + t + `.metadata.annotations) &&
  has(` + t + `.spec) && ` + secretReferences(t+".spec")
				})
			},
		}},
	}
	mutatePodOwners = Endpoint{
		Name: "pod-owners.mutate.iss.platform", Path: MutatePodOwnersPath, Mutating: true, AppNamespacesOnly: true, NamespaceComment: inAppNamespaces,
		MatchConditions: []MatchCondition{{
			Name:    "pod-needs-owner",
			Comment: "Only pods that reference a Secret and have no owner (iss.platform/initiator-id), which the webhook then records.",
			Expression: func(string) string {
				return `!(has(object.metadata.annotations) && 'iss.platform/initiator-id' in object.metadata.annotations) &&
` + secretReferences("object.spec")
			},
		}},
	}
	validateEnginePods = Endpoint{Name: "engine-pods.validate.iss.platform", Path: ValidateEnginePodsPath, MatchConditions: []MatchCondition{engineOrISSMetadata}}
	validatePodStatus  = Endpoint{Name: "pod-status.validate.iss.platform", Path: ValidateEnginePodsPath, MatchConditions: []MatchCondition{{
		Name: "metadata-changed",
		Comment: `Status updates (the kubelet's, many a minute) reach the webhook only when they also
change labels or annotations, which the status subresource keeps.`,
		Expression: func(string) string {
			return `object.metadata.?labels.orValue({}) != oldObject.metadata.?labels.orValue({}) ||
object.metadata.?annotations.orValue({}) != oldObject.metadata.?annotations.orValue({})`
		},
	}}}
	validateUserSecretPods = Endpoint{
		Name: "user-secret-pods.validate.iss.platform", Path: ValidateUserSecretPodsPath, AppNamespacesOnly: true, NamespaceComment: inAppNamespaces,
		MatchConditions: []MatchCondition{{
			Name:    "uses-secrets",
			Comment: "Only pods that reference a Secret (which may be private to a user); a plain pod costs no call.",
			Expression: func(string) string {
				return `[object, oldObject].exists(o, o != null &&
` + secretReferences("o.spec") + `)`
			},
		}},
	}
	validatePodConnect = Endpoint{
		Name: "pod-connect.validate.iss.platform", Path: ValidateUserSecretPodsPath, AppNamespacesOnly: true,
		NamespaceComment: `Exec, attach, port-forward and proxy into pods of the apps' namespaces, where Secrets synced from
users' private paths are: only their user may connect to a pod that uses one. The review
carries no pod: the webhook reads it from its cache.`,
		MatchConditions: []MatchCondition{{
			Name: "not-cluster-admin",
			Comment: `Members of system:masters pass RBAC and may read every Secret themselves: their
connections cost no call.`,
			Expression: func(string) string {
				return `!(has(request.userInfo.groups) && 'system:masters' in request.userInfo.groups)`
			},
		}},
	}
	validateNetworkPolicies = Endpoint{Name: "network-policies.validate.iss.platform", Path: ValidateNetworkPoliciesPath, MatchConditions: []MatchCondition{{
		Name: "generated-or-egress",
		Comment: `Policies that allow egress (which could widen an engine's), that use the names or the
label of generated objects, and changes to generated objects.`,
		Expression: func(string) string {
			return `(object != null && (object.metadata.name.startsWith('iss-egress-') ||
  (has(object.metadata.labels) && 'app.kubernetes.io/managed-by' in object.metadata.labels) ||
  (has(object.spec) && has(object.spec.egress)) || has(object.specs))) ||
(oldObject != null && has(oldObject.metadata.labels) && 'app.kubernetes.io/managed-by' in oldObject.metadata.labels)`
		},
	}}}
	validateExternalSecrets       = Endpoint{Name: "external-secrets.validate.iss.platform", Path: ValidateSecretsPath}
	validateExternalSecretDeletes = Endpoint{
		Name: "external-secret-deletes.validate.iss.platform", Path: ValidateSecretsPath, AppNamespacesOnly: true,
		NamespaceComment: `Deletions of ExternalSecrets in the apps' namespaces, where Secrets synced from users'
private paths are: one that orphans such a Secret (propagationPolicy Orphan) is denied.`,
		MatchConditions: []MatchCondition{{
			Name: "not-the-controllers",
			Comment: `The namespace controller and the garbage collector delete the Secrets with their
ExternalSecrets, and members of system:masters read every Secret anyway: deleting a
namespace never waits on the webhook.`,
			Expression: func(string) string {
				return `!(request.userInfo.username in ['system:serviceaccount:kube-system:namespace-controller', 'system:serviceaccount:kube-system:generic-garbage-collector']) &&
!(has(request.userInfo.groups) && 'system:masters' in request.userInfo.groups)`
			},
		}},
	}
	validatePushSecretStatus = Endpoint{Name: "pushsecret-status.validate.iss.platform", Path: ValidateSecretsPath, MatchConditions: []MatchCondition{{
		Name: "synced-paths-changed",
		Comment: `Status updates (External Secrets' own, at every refresh) reach the webhook only when they
change the paths recorded as pushed, which External Secrets deletes from OpenBao.`,
		Expression: func(string) string {
			return `object.?status.?syncedPushSecrets.orValue({}) != oldObject.?status.?syncedPushSecrets.orValue({})`
		},
	}}}
	validateNamespaces = Endpoint{Name: "namespaces.validate.iss.platform", Path: ValidateNamespacesPath, MatchConditions: []MatchCondition{
		{
			Name:    "iss-labels",
			Comment: "Only namespaces that have, or had, ISS labels reach the webhook.",
			Expression: func(string) string {
				return `[object, oldObject].exists(o, o != null && has(o.metadata.labels) &&
  o.metadata.labels.exists(k, k.startsWith('iss.platform/')))`
			},
		},
		{
			Name: "labels-changed",
			Comment: `Updates that leave the labels as they were, the namespace controller's status and
finalize updates among them, never wait on the webhook: deleting a namespace works
while the webhook is down.`,
			Expression: func(string) string {
				return `request.operation != 'UPDATE' ||
object.metadata.?labels.orValue({}) != oldObject.metadata.?labels.orValue({})`
			},
		},
	}}
	validateWorkloads = Endpoint{Name: "workloads.validate.iss.platform", Path: ValidateWorkloadsPath, SideEffects: admissionregistrationv1.SideEffectClassNoneOnDryRun, SideEffectsComment: writesBuildRecords, MatchConditions: []MatchCondition{
		{
			Name: "engine-template-or-iss-labels",
			Comment: `Only workloads whose pod template is an engine or carries ISS labels or annotations,
and those (Temporal workers) that have or had ISS labels themselves, and templates with a container that
runs privileged or adds capabilities (outside engines they are denied). A PodTemplate has no spec:
every test of a field is guarded, since an error would refuse the object (failurePolicy Fail).`,
			Expression: func(image string) string {
				template := func(t string) string {
					return `(has(` + t + `.metadata) && has(` + t + `.metadata.labels) && ` + t + `.metadata.labels.exists(k, k.startsWith('iss.platform/'))) ||
  (has(` + t + `.metadata) && has(` + t + `.metadata.annotations) && ` + t + `.metadata.annotations.exists(k, k.startsWith('iss.platform/'))) ||
  (has(` + t + `.spec.containers) && ` + t + `.spec.containers.exists(c, has(c.image) && ` + image + `)) ||
  (has(` + t + `.spec.initContainers) && ` + t + `.spec.initContainers.exists(c, has(c.image) && ` + image + `)) ||
  (has(` + t + `.spec) && (` + privilegedContainers(t+".spec") + `))`
				}
				return `[object, oldObject].exists(o, o != null && has(o.metadata.labels) && o.metadata.labels.exists(k, k.startsWith('iss.platform/'))) ||
(has(object.spec) && has(object.spec.template) && (
  ` + template("object.spec.template") + `)) ||
(has(object.spec) && has(object.spec.jobTemplate) && (
  ` + template("object.spec.jobTemplate.spec.template") + `)) ||
(has(object.template) && (
  ` + template("object.template") + `))`
			},
		},
		templateOrLabelsChanged,
	}}
	validateUserSecretWorkloads = Endpoint{
		Name: "user-secret-workloads.validate.iss.platform", Path: ValidateUserSecretWorkloadsPath, AppNamespacesOnly: true, NamespaceComment: inAppNamespaces,
		MatchConditions: []MatchCondition{
			{
				Name:    "template-uses-secrets",
				Comment: "Only workloads whose pod template references a Secret (which may be private to a user).",
				Expression: func(string) string {
					return workloadTemplates(func(t string) string { return `has(` + t + `.spec) && ` + secretReferences(t+".spec") })
				},
			},
			templateOrLabelsChanged,
		},
	}
	validateHPAs         = Endpoint{Name: "hpas.validate.iss.platform", Path: ValidateHPAsPath, AppNamespacesOnly: true, NamespaceComment: hpasInAppNamespaces}
	validateProvisioning = Endpoint{Name: "provisioning.validate.iss.platform", Path: ValidateProvisioningPath}
	validateISSPolicies  = Endpoint{
		Name: "isspolicies.validate.iss.platform", Path: ValidateISSPoliciesPath,
		FailureComment: `The checks the CRD's schema cannot make; the webhook's policy reload makes them too, so
that a policy applied while the webhook was down is reported in its status, not enforced.`,
	}
	validateBuildRecords = Endpoint{
		Name: "build-records.validate.iss.platform", Path: ValidateBuildRecordsPath,
		OwnNamespaceOnly: true, ObjectSelector: policy.LabelBuildNamespace,
		NamespaceComment: `The one webhook sent objects of iss-webhook's own namespace: the ConfigMaps labelled as
the records of Temporal builds' code, which only iss-webhook may write. Nothing the webhook
runs on carries the label, so it cannot lock out its own recovery.`,
	}
)

// Endpoints returns every webhook of the configurations, mutating ones first.
func Endpoints() []*Endpoint {
	return []*Endpoint{
		&mutateEnginePods, &mutatePodOwners, &mutateExternalSecrets, &mutateHPAs, &mutateWorkloads,
		&validateEnginePods, &validatePodStatus, &validateUserSecretPods, &validatePodConnect, &validateNetworkPolicies, &validateExternalSecrets, &validateExternalSecretDeletes, &validatePushSecretStatus,
		&validateNamespaces, &validateWorkloads, &validateUserSecretWorkloads, &validateHPAs, &validateProvisioning, &validateISSPolicies,
		&validateBuildRecords,
	}
}

// excludedNamespaces are never sent to any webhook: the control plane's and iss-webhook's own,
// so that the webhook cannot lock out its own recovery.
var excludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", ownNamespace}

// ExcludedNamespaces returns the namespaces that no webhook is sent: their objects are never
// reviewed, so the webhook's caches need not hold them.
func ExcludedNamespaces() []string { return slices.Clone(excludedNamespaces) }

// ownNamespace is iss-webhook's own namespace, where the install runs it and keeps the build
// records.
const ownNamespace = "iss-system"

// RenderConfigurations returns manifests/webhook/webhooks.yaml: the webhook configurations of
// every endpoint, their rules from the governed kinds, their image tests those of the default
// policy's engine images (iss-webhook rewrites them when the policy's differ).
func RenderConfigurations() []byte {
	imageTest := configsync.ImageTest(policy.EngineImagePattern(policy.Default().Engines.Images))
	var b strings.Builder
	b.WriteString(`# The webhook configurations of iss-webhook, written by make generate from the governed kinds
# and endpoints of package webhook: edit those, not this file. The API server calls the webhook
# only for objects that can concern ISS-001: namespaces of the control plane and of iss-webhook
# itself are never sent (so the webhook cannot lock out its own recovery), but for the build
# records in iss-system that the last webhook guards, and pods reach it only when they are
# Dagger engines or carry ISS labels or annotations (matchConditions).
`)
	for _, mutating := range []bool{true, false} {
		kind := "ValidatingWebhookConfiguration"
		if mutating {
			kind = "MutatingWebhookConfiguration"
		} else {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: admissionregistration.k8s.io/v1\nkind: %s\nmetadata:\n  name: iss-webhook\n  labels:\n    app.kubernetes.io/name: iss-webhook\nwebhooks:\n", kind)
		for _, e := range Endpoints() {
			if e.Mutating == mutating {
				e.render(&b, imageTest)
			}
		}
	}
	return []byte(b.String())
}

// render writes one webhook of a configuration.
func (e *Endpoint) render(b *strings.Builder, imageTest string) {
	fmt.Fprintf(b, "  - name: %s\n    admissionReviewVersions: [\"v1\"]\n", e.Name)
	fmt.Fprintf(b, "    clientConfig:\n      service:\n        name: iss-webhook\n        namespace: iss-system\n        path: %s\n        port: 443\n", e.Path)
	b.WriteString("    rules:\n")
	for _, r := range e.rules() {
		fmt.Fprintf(b, "      - apiGroups: %s\n        apiVersions: %s\n        resources: %s\n        operations: %s\n        scope: %s\n",
			flowList(r.APIGroups), flowList(r.APIVersions), flowList(r.Resources), flowList(r.Operations), *r.Scope)
	}
	comment(b, "    ", e.FailureComment)
	b.WriteString("    failurePolicy: Fail\n")
	comment(b, "    ", e.SideEffectsComment)
	sideEffects := e.SideEffects
	if sideEffects == "" {
		sideEffects = admissionregistrationv1.SideEffectClassNone
	}
	fmt.Fprintf(b, "    sideEffects: %s\n    timeoutSeconds: 5\n    matchPolicy: Equivalent\n", sideEffects)
	if e.Mutating {
		b.WriteString("    reinvocationPolicy: IfNeeded\n")
	}
	comment(b, "    ", e.NamespaceComment)
	if e.OwnNamespaceOnly {
		fmt.Fprintf(b, "    namespaceSelector:\n      matchExpressions:\n        - key: kubernetes.io/metadata.name\n          operator: In\n          values: %s\n", flowList([]string{ownNamespace}))
	} else {
		fmt.Fprintf(b, "    namespaceSelector:\n      matchExpressions:\n        - key: kubernetes.io/metadata.name\n          operator: NotIn\n          values: %s\n", flowList(excludedNamespaces))
	}
	if e.AppNamespacesOnly {
		fmt.Fprintf(b, "        - key: %s\n          operator: Exists\n", policy.LabelAppID)
	}
	if e.ObjectSelector != "" {
		fmt.Fprintf(b, "    objectSelector:\n      matchExpressions:\n        - key: %s\n          operator: Exists\n", e.ObjectSelector)
	}
	if len(e.MatchConditions) > 0 {
		b.WriteString("    matchConditions:\n")
	}
	for _, c := range e.MatchConditions {
		fmt.Fprintf(b, "      - name: %s\n", c.Name)
		comment(b, "        ", c.Comment)
		b.WriteString("        expression: >-\n")
		for _, line := range strings.Split(c.Expression(imageTest), "\n") {
			fmt.Fprintf(b, "          %s\n", line)
		}
	}
}

// rules returns the rules of the webhook, from every governed kind that names it; rules of one
// API group, versions, operations and scope in a row are merged into one.
func (e *Endpoint) rules() []admissionregistrationv1.RuleWithOperations {
	var out []admissionregistrationv1.RuleWithOperations
	for _, k := range GovernedKinds() {
		for _, r := range k.Rules {
			if r.Webhook != e {
				continue
			}
			resources := k.Resources(r)
			scope := k.Scope
			rule := admissionregistrationv1.RuleWithOperations{Operations: r.Operations, Rule: admissionregistrationv1.Rule{
				APIGroups: []string{k.Group}, APIVersions: k.Versions, Resources: resources, Scope: &scope,
			}}
			if n := len(out); n > 0 && sameRuleButResources(out[n-1], rule) {
				out[n-1].Resources = append(out[n-1].Resources, resources...)
				continue
			}
			out = append(out, rule)
		}
	}
	return out
}

func sameRuleButResources(a, b admissionregistrationv1.RuleWithOperations) bool {
	return flowList(a.APIGroups) == flowList(b.APIGroups) && flowList(a.APIVersions) == flowList(b.APIVersions) &&
		flowList(a.Operations) == flowList(b.Operations) && *a.Scope == *b.Scope
}

// flowList writes a list of strings in YAML flow style: ["a", "b"].
func flowList[S ~string](items []S) string {
	quoted := make([]string, len(items))
	for i, it := range items {
		quoted[i] = fmt.Sprintf("%q", string(it))
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// comment writes text as YAML comment lines.
func comment(b *strings.Builder, indent, text string) {
	if text == "" {
		return
	}
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintf(b, "%s# %s\n", indent, line)
	}
}
