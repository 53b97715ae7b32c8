package webhook

import (
	"context"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/iss-platform/iss-webhook/mutators"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// Kind is one governed kind: what the API server sends of it, to which webhooks, and the rules
// that judge it. GovernedKinds is the one list of them: the handlers, the webhook
// configurations (make generate) and issctl audit follow it.
type Kind struct {
	// Group, Versions, Kind and Resource name the kind; the first version is the one issctl
	// audit lists.
	Group    string
	Versions []string
	Kind     string
	Resource string
	// Scope is Namespaced or Cluster.
	Scope admissionregistrationv1.ScopeType
	// Rules say which operations on the object and its subresources each webhook is sent.
	Rules []Rule
	// Groups are the rule groups that judge the kind; the first is the one its exemption is
	// counted under.
	Groups []policy.RuleGroup
	// PodTemplate tells whether the kind carries a pod template, which the engine pod rules
	// judge.
	PodTemplate bool
	// Exemptable kinds are admitted unchecked in the policy's exempt namespaces. The secrets'
	// and the integrity rules hold there too.
	Exemptable bool
	// Audited kinds are listed by issctl audit. Those left out are judged by who writes them
	// (network policies, namespaces), which an audit cannot know, or are the policy itself.
	Audited bool
	// Mutate and Validate are the kind's rules for the mutating and the validating webhooks.
	Mutate, Validate review
}

// Rule is what one webhook is sent of a kind.
type Rule struct {
	Webhook    *Endpoint
	Operations []admissionregistrationv1.OperationType
	// Subresources are "" for the object itself, else a subresource's name.
	Subresources []string
	// Review, when set, is the rule that judges what this webhook is sent instead of the kind's
	// Mutate or Validate: a webhook of its own path for one set of rules. The rules of a kind at
	// one path name the same review (one adapter serves them).
	Review *review
}

// Resources returns the resources a rule of the kind names: the kind's own for the object, and
// resource/subresource for each subresource.
func (k *Kind) Resources(r Rule) []string {
	resources := make([]string, 0, len(r.Subresources))
	for _, sub := range r.Subresources {
		if sub == "" {
			resources = append(resources, k.Resource)
		} else {
			resources = append(resources, k.Resource+"/"+sub)
		}
	}
	return resources
}

// GroupKind returns the kind's group and kind.
func (k *Kind) GroupKind() schema.GroupKind { return schema.GroupKind{Group: k.Group, Kind: k.Kind} }

// review is a rule of one kind with its object type erased: new returns an empty object to
// decode a request into, run judges the decoded objects (old nil on create, obj nil on delete).
type review struct {
	new func() metav1.Object
	run func(ctx context.Context, p *policy.Policy, req *policy.Request, obj, old metav1.Object) policy.Outcome
}

// reviewOf erases the object type of a rule; newObject returns the empty object it decodes.
func reviewOf[T metav1.Object](newObject func() T, fn func(context.Context, *policy.Policy, *policy.Request, T, T) policy.Outcome) review {
	return review{
		new: func() metav1.Object { return newObject() },
		run: func(ctx context.Context, p *policy.Policy, req *policy.Request, obj, old metav1.Object) policy.Outcome {
			var o, prev T
			if obj != nil {
				o = obj.(T)
			}
			if old != nil {
				prev = old.(T)
			}
			return fn(ctx, p, req, o, prev)
		},
	}
}

var (
	opCreate     = admissionregistrationv1.Create
	opUpdate     = admissionregistrationv1.Update
	opDelete     = admissionregistrationv1.Delete
	opConnect    = admissionregistrationv1.Connect
	createUpdate = []admissionregistrationv1.OperationType{opCreate, opUpdate}
	objectOnly   = []string{""}
)

func newPod() *corev1.Pod                         { return &corev1.Pod{} }
func newUnstructured() *unstructured.Unstructured { return &unstructured.Unstructured{} }
func newSecretObject() *policy.SecretObject       { return &policy.SecretObject{} }
func newHPA() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{}
}

// workload returns the row of a kind that carries a pod template.
func workload(group, kind, resource string, newObject func() metav1.Object) Kind {
	return Kind{
		Group: group, Versions: []string{"v1"}, Kind: kind, Resource: resource, Scope: admissionregistrationv1.NamespacedScope,
		Rules: []Rule{
			{Webhook: &mutateWorkloads, Operations: createUpdate, Subresources: objectOnly},
			{Webhook: &validateWorkloads, Operations: createUpdate, Subresources: objectOnly},
			{Webhook: &validateUserSecretWorkloads, Operations: createUpdate, Subresources: objectOnly, Review: ptr.To(reviewOf(newObject, policy.AdmitWorkloadSecrets))},
		},
		Groups: []policy.RuleGroup{policy.RuleEnginePods}, PodTemplate: true, Exemptable: true, Audited: true,
		Mutate:   reviewOf(newObject, mutators.DefaultWorkloadOwner),
		Validate: reviewOf(newObject, policy.AdmitWorkload),
	}
}

// networkPolicy returns the row of a kind of network policy.
func networkPolicy(group, version, kind, resource string, scope admissionregistrationv1.ScopeType) Kind {
	return Kind{
		Group: group, Versions: []string{version}, Kind: kind, Resource: resource, Scope: scope,
		Rules:    []Rule{{Webhook: &validateNetworkPolicies, Operations: []admissionregistrationv1.OperationType{opCreate, opUpdate, opDelete}, Subresources: objectOnly}},
		Groups:   []policy.RuleGroup{policy.RuleIntegrity},
		Validate: reviewOf(newUnstructured, policy.AdmitNetworkPolicy),
	}
}

// GovernedKinds returns the kinds iss-webhook governs, in the order in which the webhook
// configurations list their rules and issctl audit lists them.
func GovernedKinds() []Kind {
	namespaced, cluster := admissionregistrationv1.NamespacedScope, admissionregistrationv1.ClusterScope
	externalSecretRules := []Rule{
		{Webhook: &mutateExternalSecrets, Operations: []admissionregistrationv1.OperationType{opCreate}, Subresources: objectOnly},
		{Webhook: &validateExternalSecrets, Operations: createUpdate, Subresources: objectOnly},
	}
	podOwners, podSecrets := reviewOf(newPod, mutators.DefaultPodOwner), reviewOf(newPod, policy.AdmitPodSecrets)
	hpaRules := []Rule{
		{Webhook: &mutateHPAs, Operations: createUpdate, Subresources: objectOnly},
		{Webhook: &validateHPAs, Operations: createUpdate, Subresources: objectOnly},
	}
	kinds := append([]Kind{
		{
			Group: "", Versions: []string{"v1"}, Kind: "Pod", Resource: "pods", Scope: namespaced,
			Rules: []Rule{
				{Webhook: &mutateEnginePods, Operations: []admissionregistrationv1.OperationType{opCreate}, Subresources: objectOnly},
				{Webhook: &validateEnginePods, Operations: createUpdate, Subresources: objectOnly},
				{Webhook: &validateEnginePods, Operations: []admissionregistrationv1.OperationType{opUpdate}, Subresources: []string{"resize", "ephemeralcontainers"}},
				{Webhook: &validatePodStatus, Operations: []admissionregistrationv1.OperationType{opUpdate}, Subresources: []string{"status"}},
				{Webhook: &mutatePodOwners, Operations: []admissionregistrationv1.OperationType{opCreate}, Subresources: objectOnly, Review: &podOwners},
				{Webhook: &validateUserSecretPods, Operations: createUpdate, Subresources: objectOnly, Review: &podSecrets},
				{Webhook: &validateUserSecretPods, Operations: []admissionregistrationv1.OperationType{opUpdate}, Subresources: []string{"ephemeralcontainers"}, Review: &podSecrets},
				{Webhook: &validatePodConnect, Operations: []admissionregistrationv1.OperationType{opConnect}, Subresources: []string{"exec", "attach", "portforward", "proxy"}, Review: &podSecrets},
			},
			Groups: []policy.RuleGroup{policy.RuleEnginePods, policy.RuleIntegrity}, Exemptable: true, Audited: true,
			Mutate:   reviewOf(newPod, mutators.DefaultEnginePod),
			Validate: reviewOf(newPod, policy.AdmitPod),
		},
		workload("apps", "Deployment", "deployments", func() metav1.Object { return &appsv1.Deployment{} }),
		workload("apps", "StatefulSet", "statefulsets", func() metav1.Object { return &appsv1.StatefulSet{} }),
		workload("apps", "DaemonSet", "daemonsets", func() metav1.Object { return &appsv1.DaemonSet{} }),
		workload("apps", "ReplicaSet", "replicasets", func() metav1.Object { return &appsv1.ReplicaSet{} }),
		workload("batch", "Job", "jobs", func() metav1.Object { return &batchv1.Job{} }),
		workload("batch", "CronJob", "cronjobs", func() metav1.Object { return &batchv1.CronJob{} }),
		workload("", "ReplicationController", "replicationcontrollers", func() metav1.Object { return &corev1.ReplicationController{} }),
		workload("", "PodTemplate", "podtemplates", func() metav1.Object { return &corev1.PodTemplate{} }),
		{
			Group: "autoscaling", Versions: []string{"v2"}, Kind: "HorizontalPodAutoscaler", Resource: "horizontalpodautoscalers", Scope: namespaced,
			Rules: hpaRules, Groups: []policy.RuleGroup{policy.RuleAutoscaling}, Exemptable: true, Audited: true,
			Mutate:   reviewOf(newHPA, mutators.DefaultHPA),
			Validate: reviewOf(newHPA, policy.AdmitHPA),
		},
		{
			Group: "external-secrets.io", Versions: []string{"v1", "v1beta1"}, Kind: "ExternalSecret", Resource: "externalsecrets", Scope: namespaced,
			Rules: append(slices.Clone(externalSecretRules), Rule{Webhook: &validateExternalSecretDeletes, Operations: []admissionregistrationv1.OperationType{opDelete}, Subresources: objectOnly}), Groups: []policy.RuleGroup{policy.RuleIntegrity, policy.RuleSecrets}, Audited: true,
			Mutate:   reviewOf(newSecretObject, mutators.DefaultInitiator),
			Validate: reviewOf(newSecretObject, policy.AdmitExternalSecret),
		},
		{
			Group: "external-secrets.io", Versions: []string{"v1alpha1"}, Kind: "PushSecret", Resource: "pushsecrets", Scope: namespaced,
			Rules:  append(slices.Clone(externalSecretRules), Rule{Webhook: &validatePushSecretStatus, Operations: []admissionregistrationv1.OperationType{opUpdate}, Subresources: []string{"status"}}),
			Groups: []policy.RuleGroup{policy.RuleIntegrity}, Audited: true,
			Mutate:   reviewOf(newSecretObject, mutators.DefaultInitiator),
			Validate: reviewOf(newSecretObject, policy.AdmitExternalSecret),
		},
		{
			Group: "external-secrets.io", Versions: []string{"v1", "v1beta1"}, Kind: "SecretStore", Resource: "secretstores", Scope: namespaced,
			Rules:  []Rule{{Webhook: &validateExternalSecrets, Operations: createUpdate, Subresources: objectOnly}},
			Groups: []policy.RuleGroup{policy.RuleIntegrity}, Audited: true,
			Validate: reviewOf(func() *policy.SecretStore { return &policy.SecretStore{} }, policy.AdmitSecretStore),
		},
		{
			Group: "external-secrets.io", Versions: []string{"v1", "v1beta1"}, Kind: "ClusterExternalSecret", Resource: "clusterexternalsecrets", Scope: cluster,
			Rules:  []Rule{{Webhook: &validateExternalSecrets, Operations: createUpdate, Subresources: objectOnly}},
			Groups: []policy.RuleGroup{policy.RuleIntegrity}, Audited: true,
			Validate: reviewOf(newSecretObject, policy.AdmitClusterExternalSecret),
		},
		{
			Group: "external-secrets.io", Versions: []string{"v1alpha1"}, Kind: "ClusterPushSecret", Resource: "clusterpushsecrets", Scope: cluster,
			Rules:  []Rule{{Webhook: &validateExternalSecrets, Operations: createUpdate, Subresources: objectOnly}},
			Groups: []policy.RuleGroup{policy.RuleIntegrity}, Audited: true,
			Validate: reviewOf(newSecretObject, policy.AdmitClusterExternalSecret),
		},
		{
			// Judged by who writes it, which an audit cannot know.
			Group: "external-secrets.io", Versions: []string{"v1", "v1beta1"}, Kind: "ClusterSecretStore", Resource: "clustersecretstores", Scope: cluster,
			Rules:    []Rule{{Webhook: &validateExternalSecrets, Operations: createUpdate, Subresources: objectOnly}},
			Groups:   []policy.RuleGroup{policy.RuleIntegrity},
			Validate: reviewOf(newUnstructured, policy.AdmitClusterSecretStore),
		},
	}, generators()...)
	kinds = append(kinds, []Kind{
		networkPolicy("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", namespaced),
		networkPolicy("cilium.io", "v2", "CiliumNetworkPolicy", "ciliumnetworkpolicies", namespaced),
		networkPolicy("policy.networking.k8s.io", "v1beta1", "ClusterNetworkPolicy", "clusternetworkpolicies", cluster),
		{
			Group: "", Versions: []string{"v1"}, Kind: "Namespace", Resource: "namespaces", Scope: cluster,
			Rules:    []Rule{{Webhook: &validateNamespaces, Operations: createUpdate, Subresources: []string{"", "status", "finalize"}}},
			Groups:   []policy.RuleGroup{policy.RuleIntegrity},
			Validate: reviewOf(func() *metav1.PartialObjectMetadata { return &metav1.PartialObjectMetadata{} }, policy.AdmitNamespace),
		},
		{
			Group: "pulumi.com", Versions: []string{"v1", "v1alpha1"}, Kind: "Stack", Resource: "stacks", Scope: namespaced,
			Rules:  []Rule{{Webhook: &validateProvisioning, Operations: createUpdate, Subresources: objectOnly}},
			Groups: []policy.RuleGroup{policy.RuleProvisioning}, Exemptable: true, Audited: true,
			Validate: reviewOf(newUnstructured, policy.AdmitStack),
		},
		{
			Group: "infra.contrib.fluxcd.io", Versions: []string{"v1alpha2", "v1alpha1"}, Kind: "Terraform", Resource: "terraforms", Scope: namespaced,
			Rules:  []Rule{{Webhook: &validateProvisioning, Operations: createUpdate, Subresources: objectOnly}},
			Groups: []policy.RuleGroup{policy.RuleProvisioning}, Exemptable: true, Audited: true,
			Validate: reviewOf(newUnstructured, policy.AdmitTerraform),
		},
		{
			Group: "", Versions: []string{"v1"}, Kind: "ConfigMap", Resource: "configmaps", Scope: namespaced,
			Rules:    []Rule{{Webhook: &validateBuildRecords, Operations: []admissionregistrationv1.OperationType{opCreate, opUpdate, opDelete}, Subresources: objectOnly}},
			Groups:   []policy.RuleGroup{policy.RuleIntegrity},
			Validate: reviewOf(func() *corev1.ConfigMap { return &corev1.ConfigMap{} }, policy.AdmitBuildRecord),
		},
		{
			Group: v1alpha1.GroupVersion.Group, Versions: []string{v1alpha1.GroupVersion.Version}, Kind: "ISSPolicy", Resource: "isspolicies", Scope: cluster,
			Rules:    []Rule{{Webhook: &validateISSPolicies, Operations: createUpdate, Subresources: objectOnly}},
			Groups:   []policy.RuleGroup{policy.RuleIntegrity},
			Validate: reviewOf(func() *v1alpha1.ISSPolicy { return &v1alpha1.ISSPolicy{} }, policy.AdmitISSPolicy),
		},
	}...)
	return kinds
}

// generators returns the rows of External Secrets' namespaced generator kinds, which the policy
// lists (policy.GeneratorKinds), and of GeneratorState, which holds a generator of its own. A
// kind a newer External Secrets adds is not sent to the webhook until it is listed there.
func generators() []Kind {
	row := func(kind, resource string, versions []string) Kind {
		return Kind{
			Group: policy.GeneratorGroup, Versions: versions, Kind: kind, Resource: resource, Scope: admissionregistrationv1.NamespacedScope,
			Rules:  []Rule{{Webhook: &validateExternalSecrets, Operations: createUpdate, Subresources: objectOnly}},
			Groups: []policy.RuleGroup{policy.RuleIntegrity}, Audited: true,
			Validate: reviewOf(newUnstructured, policy.AdmitGenerator),
		}
	}
	var kinds []Kind
	for _, g := range policy.GeneratorKinds() {
		kinds = append(kinds, row(g.Kind, g.Resource, g.Versions))
	}
	return append(kinds, row("GeneratorState", "generatorstates", []string{"v1alpha1"}))
}

// FindKind returns the governed kind of a group and kind, or nil when iss-webhook does not
// govern it.
func FindKind(group, kind string) *Kind {
	for _, k := range GovernedKinds() {
		if k.Group == group && k.Kind == kind {
			return &k
		}
	}
	return nil
}
