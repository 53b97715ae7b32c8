package v1alpha1

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ISSPolicy is the cluster admin's policy for the Infrastructure & Secrets Standard. The webhook
// reads the one named "default"; without it, it enforces the built-in default (ISS-001 as
// written). `issctl policy default` prints that default as an ISSPolicy.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=isspol,categories=iss
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="the webhook reads only the ISSPolicy named default: name it default"
type ISSPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the policy. Every field is optional and defaults to the built-in default.
	// +default={}
	Spec ISSPolicySpec `json:"spec,omitempty"`
	// Status says whether the webhook enforces this policy.
	Status ISSPolicyStatus `json:"status,omitempty"`
}

// ISSPolicyList is a list of ISSPolicy objects.
//
// +kubebuilder:object:root=true
type ISSPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the policies.
	Items []ISSPolicy `json:"items"`
}

// EnforcementMode is what the webhook does with a violation of a rule group.
//
// +kubebuilder:validation:Enum=Enforce;Warn;Audit
type EnforcementMode string

// The enforcement modes.
const (
	// Enforce denies the request.
	Enforce EnforcementMode = "Enforce"
	// Warn admits the request with an admission warning per violation, which kubectl prints.
	Warn EnforcementMode = "Warn"
	// Audit admits the request, logs the violations and counts them in the metrics.
	Audit EnforcementMode = "Audit"
)

// ISSPolicySpec is the policy.
type ISSPolicySpec struct {
	// Enforcement is the mode of each rule group. The integrity rules (ISS labels and
	// annotations immutable, generated policies, namespace labels, user NetworkPolicies that
	// would open engine egress, the secrets' paths, bindings and stores) have no mode: they
	// always deny, since a warning would let anyone switch the other rules off or read another
	// app's secrets.
	// +default={}
	Enforcement *Enforcement `json:"enforcement,omitempty"`

	// ExemptNamespaces are namespaces whose pods, workloads, HPAs and provisioning objects the
	// webhook admits unchanged and unchecked. ExternalSecrets, PushSecrets and SecretStores are
	// checked there too. The namespaces of the control plane and of iss-webhook itself are never
	// sent to it.
	// +listType=set
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	ExemptNamespaces []string `json:"exemptNamespaces,omitempty"`

	// TrustedIdentities may do what the policy forbids others: change ISS labels and
	// annotations, change or delete generated objects, set another user's initiator-id.
	// +default={}
	TrustedIdentities *TrustedIdentities `json:"trustedIdentities,omitempty"`

	// Engines says how Dagger engine pods are recognised and which quota profiles they may use.
	// +default={}
	Engines *Engines `json:"engines,omitempty"`

	// Secrets says where each environment's OpenBao secrets live.
	// +default={}
	Secrets *Secrets `json:"secrets,omitempty"`

	// OpenBao is the optional check that every path an ExternalSecret reads exists.
	// +default={}
	OpenBao *OpenBao `json:"openbao,omitempty"`

	// Network says how engine egress is restricted.
	// +default={}
	Network *Network `json:"network,omitempty"`

	// Autoscaling says what HorizontalPodAutoscalers scale on.
	// +default={}
	Autoscaling *Autoscaling `json:"autoscaling,omitempty"`

	// TemporalWorkers says which Deployments are Temporal workers.
	// +default={}
	TemporalWorkers *TemporalWorkers `json:"temporalWorkers,omitempty"`

	// Provisioning says where infrastructure state may live.
	// +default={}
	Provisioning *Provisioning `json:"provisioning,omitempty"`
}

// Enforcement is the mode of each rule group.
type Enforcement struct {
	// EnginePods: quota profiles, secret keys and sidecars, network access, on engine pods and
	// on the pod templates of workloads.
	// +default="Enforce"
	EnginePods EnforcementMode `json:"enginePods,omitempty"`
	// Secrets: the OpenBao existence check (a path that is missing). The path, app and
	// initiator binding and store rules of ExternalSecrets, PushSecrets and SecretStores isolate
	// the apps from each other: they always deny, in exempt namespaces too.
	// +default="Enforce"
	Secrets EnforcementMode `json:"secrets,omitempty"`
	// Autoscaling: the saturation metric on HorizontalPodAutoscalers.
	// +default="Enforce"
	Autoscaling EnforcementMode `json:"autoscaling,omitempty"`
	// TemporalWorkers: the blue/green rules of Temporal worker Deployments.
	// +default="Enforce"
	TemporalWorkers EnforcementMode `json:"temporalWorkers,omitempty"`
	// Provisioning: state backends and deprovisioning of Pulumi Stacks and Terraforms.
	// +default="Enforce"
	Provisioning EnforcementMode `json:"provisioning,omitempty"`
}

// TrustedIdentities names users, groups and service accounts.
type TrustedIdentities struct {
	// Users are user names as the API server authenticates them.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	Users []string `json:"users,omitempty"`
	// Groups are group names; a user in any of them is trusted.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +default=["system:masters"]
	Groups []string `json:"groups,omitempty"`
	// ServiceAccounts are "namespace/name" pairs. The namespace controller and the garbage
	// collector are trusted by default, so that namespaces and owners can be deleted.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$`
	// +default=["kube-system/namespace-controller","kube-system/generic-garbage-collector"]
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
}

// Engines says how Dagger engine pods are recognised and what they may use.
//
// +kubebuilder:validation:XValidation:rule="!has(self.profiles) || !has(self.defaultProfile) || self.profiles.exists(p, p.name == self.defaultProfile)",message="defaultProfile must name one of the profiles",fieldPath=".defaultProfile"
type Engines struct {
	// Labels mark a pod as an engine: any one of them, with its value, is enough.
	// +kubebuilder:validation:MaxProperties=16
	// +default={"iss.platform/engine":"dagger"}
	Labels map[string]string `json:"labels,omitempty"`
	// Images are the image repositories of engines, without tag or digest. A pod with a
	// container that runs one is an engine even without a label.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +default=["registry.dagger.io/engine","ghcr.io/dagger/engine"]
	Images []string `json:"images,omitempty"`
	// ContainerName is the engine container's name in a pod with several containers.
	// +default="dagger-engine"
	ContainerName string `json:"containerName,omitempty"`
	// Profiles are the quota profiles, in the order messages list them.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +default=[{"name":"standard","requests":{"cpu":"500m","memory":"1Gi","ephemeral-storage":"10Gi"},"limits":{"cpu":"2000m","memory":"4Gi","ephemeral-storage":"10Gi"}},{"name":"high-performance","requests":{"cpu":"2000m","memory":"4Gi","ephemeral-storage":"50Gi"},"limits":{"cpu":"4000m","memory":"8Gi","ephemeral-storage":"50Gi"}}]
	Profiles []Profile `json:"profiles,omitempty"`
	// DefaultProfile is the profile of an engine without the iss.platform/profile annotation.
	// +default="standard"
	DefaultProfile string `json:"defaultProfile,omitempty"`
	// SecretMountPath is the directory where the engine container finds one file per secret key.
	// +kubebuilder:validation:Pattern=`^/`
	// +default="/var/run/secrets/iss"
	SecretMountPath string `json:"secretMountPath,omitempty"`
}

// Profile is a quota profile: the requests and limits of the engine container. Its
// ephemeral-storage limit also bounds every disk-backed emptyDir, and its memory limit every
// memory-backed one.
//
// +kubebuilder:validation:XValidation:rule="quantity(self.requests.cpu).compareTo(quantity(self.limits.cpu)) <= 0",message="the cpu request may not be above its limit",fieldPath=".requests.cpu"
// +kubebuilder:validation:XValidation:rule="quantity(self.requests.memory).compareTo(quantity(self.limits.memory)) <= 0",message="the memory request may not be above its limit",fieldPath=".requests.memory"
// +kubebuilder:validation:XValidation:rule="quantity(self.requests.ephemeral__dash__storage).compareTo(quantity(self.limits.ephemeral__dash__storage)) <= 0",message="the ephemeral-storage request may not be above its limit"
type Profile struct {
	// Name is the value of the iss.platform/profile annotation that selects the profile.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Requests are the engine container's requests.
	// +required
	Requests ProfileResources `json:"requests"`
	// Limits are the engine container's limits.
	// +required
	Limits ProfileResources `json:"limits"`
	// AllowedResources are the resource names besides cpu, memory and ephemeral-storage that
	// the containers of an engine pod of this profile may request, such as nvidia.com/gpu. The
	// profile does not bound them. Any other resource name is denied on engines.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +optional
	AllowedResources []string `json:"allowedResources,omitempty"`
}

// ProfileResources are the resources a profile sets. They are quantities written as strings,
// such as "500m", "2" or "4Gi" (quote whole numbers in YAML), so that the CRD's CEL rules can
// compare them within the API server's cost budget.
type ProfileResources struct {
	// CPU, such as "500m" or "2".
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="isQuantity(self)",message="must be a quantity, such as 500m or 2"
	// +required
	CPU string `json:"cpu"`
	// Memory, such as "1Gi".
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="isQuantity(self)",message="must be a quantity, such as 1Gi"
	// +required
	Memory string `json:"memory"`
	// EphemeralStorage, such as "10Gi".
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="isQuantity(self)",message="must be a quantity, such as 10Gi"
	// +required
	EphemeralStorage string `json:"ephemeral-storage"`
}

// Secrets says where each environment's secrets live.
type Secrets struct {
	// PathRoot is the first segment of every OpenBao path: PathRoot/{appId}/public/secrets/{name}
	// or PathRoot/{appId}/users/{userId}/secrets/{name}.
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`
	// +default="artifacts"
	PathRoot string `json:"pathRoot,omitempty"`
	// Environments map each runtime environment (a namespace's iss.platform/environment) to its
	// store and OpenBao KV v2 mount, as the Secret Broker does.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +default=[{"name":"dev","store":{"kind":"ClusterSecretStore","name":"openbao-dev"},"mount":"kv-dev"},{"name":"staging","store":{"kind":"ClusterSecretStore","name":"openbao-staging"},"mount":"kv-staging"},{"name":"prod","store":{"kind":"ClusterSecretStore","name":"openbao-prod"},"mount":"kv-prod"}]
	Environments []SecretEnvironment `json:"environments,omitempty"`
}

// SecretEnvironment is where one runtime environment's secrets live.
type SecretEnvironment struct {
	// Name is the value of the namespace label iss.platform/environment.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Store is the only store ExternalSecrets and PushSecrets of the environment may use.
	// +required
	Store StoreRef `json:"store"`
	// Mount is the OpenBao KV v2 mount that holds the environment's tree.
	// +kubebuilder:validation:MinLength=1
	// +required
	Mount string `json:"mount"`
}

// StoreRef names an External Secrets store.
type StoreRef struct {
	// Kind is ClusterSecretStore (namespaced stores of OpenBao are denied in governed
	// namespaces) or SecretStore.
	// +kubebuilder:validation:Enum=ClusterSecretStore;SecretStore
	// +default="ClusterSecretStore"
	Kind string `json:"kind,omitempty"`
	// Name is the store's name.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`
}

// OnUnavailable is what the webhook does when OpenBao cannot answer in time.
//
// +kubebuilder:validation:Enum=Deny;Warn
type OnUnavailable string

// OpenBao is the optional existence check of the paths an ExternalSecret reads.
//
// +kubebuilder:validation:XValidation:rule="!has(self.verify) || !self.verify || (has(self.address) && size(self.address) > 0)",message="verify needs the address of OpenBao",fieldPath=".address"
type OpenBao struct {
	// Verify turns the check on.
	// +default=false
	Verify bool `json:"verify,omitempty"`
	// Address is OpenBao's URL, such as https://openbao.openbao.svc:8200.
	// +kubebuilder:validation:Pattern=`^https?://[^/?#]+(/.*)?$`
	Address string `json:"address,omitempty"`
	// Auth is how the webhook logs in to OpenBao.
	// +default={}
	Auth *OpenBaoAuth `json:"auth,omitempty"`
	// Timeout bounds the check of one object, all its paths together; at most 4s, within the
	// API server's 5s webhook timeout.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('4s')",message="must be above 0s and at most 4s"
	// +default="1s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// CacheTTL is how long an answer of OpenBao is remembered.
	// +default={}
	CacheTTL *OpenBaoCacheTTL `json:"cacheTTL,omitempty"`
	// OnUnavailable is Deny (the default) or Warn: admit with a warning when OpenBao does not
	// answer in time.
	// +default="Deny"
	OnUnavailable OnUnavailable `json:"onUnavailable,omitempty"`
}

// OpenBaoAuth is how the webhook logs in to OpenBao. The files it logs in with are the
// Deployment's (the flags --openbao-service-account-token-file and --openbao-token-file), never
// the policy's, so that editing the policy cannot make the webhook send a file elsewhere.
type OpenBaoAuth struct {
	// Method is kubernetes (the Kubernetes auth method, with the webhook's service account
	// token) or token (a token read from the file of --openbao-token-file).
	// +kubebuilder:validation:Enum=kubernetes;token
	// +default="kubernetes"
	Method string `json:"method,omitempty"`
	// KubernetesMount is the mount of the Kubernetes auth method.
	// +default="kubernetes"
	KubernetesMount string `json:"kubernetesMount,omitempty"`
	// Role is the role of the Kubernetes auth method.
	// +default="iss-webhook"
	Role string `json:"role,omitempty"`
}

// OpenBaoCacheTTL is how long answers of OpenBao are remembered.
type OpenBaoCacheTTL struct {
	// Hit is how long a path found is remembered.
	// +default="5m"
	Hit *metav1.Duration `json:"hit,omitempty"`
	// Miss is how long a missing path is remembered.
	// +default="30s"
	Miss *metav1.Duration `json:"miss,omitempty"`
}

// FQDNBackend is the kind of object that carries an engine's FQDN allowances.
//
// +kubebuilder:validation:Enum=auto;cilium;clusternetworkpolicy;none
type FQDNBackend string

// Network says how engine egress is restricted.
type Network struct {
	// FQDNBackend is cilium (CiliumNetworkPolicy toFQDNs), clusternetworkpolicy
	// (ClusterNetworkPolicy domainNames), none (FQDNs unreachable, with a warning) or auto (the
	// first whose CRD the cluster serves, in that order, checked when the webhook starts).
	// +default="auto"
	FQDNBackend FQDNBackend `json:"fqdnBackend,omitempty"`
	// DNS is the cluster DNS that engines may query.
	// +default={}
	DNS *DNS `json:"dns,omitempty"`
	// ClusterNetworkPolicyPriority is the Admin-tier priority of generated ClusterNetworkPolicies.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +default=500
	ClusterNetworkPolicyPriority *int32 `json:"clusterNetworkPolicyPriority,omitempty"`
	// GCGracePeriod is how long a generated policy may select no pod before it is deleted.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be at least 1s; keep it well above the time between admission and the pod's creation, such as the default 5m"
	// +default="5m"
	GCGracePeriod *metav1.Duration `json:"gcGracePeriod,omitempty"`
}

// DNS selects the cluster DNS pods.
type DNS struct {
	// Namespace is the namespace of the DNS pods.
	// +default="kube-system"
	Namespace string `json:"namespace,omitempty"`
	// PodSelector are the labels of the DNS pods.
	// +kubebuilder:validation:MaxProperties=16
	// +default={"k8s-app":"kube-dns"}
	PodSelector map[string]string `json:"podSelector,omitempty"`
	// Ports are the DNS ports, allowed over UDP and TCP.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +default=[53]
	Ports []int32 `json:"ports,omitempty"`
}

// Autoscaling says what HorizontalPodAutoscalers scale on.
type Autoscaling struct {
	// Metric is the GOS saturation metric every HPA must scale on.
	// +default={}
	Metric *SaturationMetric `json:"metric,omitempty"`
	// Behavior is what an HPA without behavior gets: scale-up limits against thundering herds
	// and a scale-down stabilisation window.
	// +default={"scaleUp":{"stabilizationWindowSeconds":0,"selectPolicy":"Min","policies":[{"type":"Percent","value":100,"periodSeconds":60},{"type":"Pods","value":4,"periodSeconds":60}]},"scaleDown":{"stabilizationWindowSeconds":300}}
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
	// AllowedMetrics are the metrics an HPA may have beside the saturation metric. The HPA
	// scales on the largest proposal of all its metrics, so each one listed here can scale the
	// workload up when the saturation signal does not. None by default: an HPA scales on the
	// saturation metric alone.
	// +listType=map
	// +listMapKey=type
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	AllowedMetrics []AllowedMetric `json:"allowedMetrics,omitempty"`
	// MaxScaleUp is the fastest an HPA may scale up: the `behavior.scaleUp` of every HPA, its
	// own or the one it gets from `behavior`, must keep within it. Set as a whole, it replaces
	// the default: a bound with only `pods` has no percent limit (kubectl apply over a policy in
	// force keeps the limits it does not name: set `percent: null` to drop that one).
	// +default={"pods":4,"percent":100,"periodSeconds":60,"stabilizationWindowSeconds":0}
	MaxScaleUp *ScaleUpBound `json:"maxScaleUp,omitempty"`
	// ScaleTargets are the kinds an HPA may scale, by API group and kind (any version).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +default=[{"group":"apps","kind":"Deployment"},{"group":"apps","kind":"StatefulSet"}]
	ScaleTargets []ScaleTarget `json:"scaleTargets,omitempty"`
}

// AllowedMetric is a metric an HPA may have beside the saturation metric.
type AllowedMetric struct {
	// Type is the metric's source type.
	// +kubebuilder:validation:Enum=Resource;ContainerResource;Pods;Object;External
	// +required
	Type autoscalingv2.MetricSourceType `json:"type"`
	// Name is the resource's name (`cpu`, `memory`) for Resource and ContainerResource metrics,
	// the metric's name for the others. The HPA chooses the selector and target.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// ScaleUpBound is the fastest an HPA may scale up: from any number of replicas, at most `pods`
// replicas and at most `percent` of the replicas (rounded up) more within any `periodSeconds`,
// the lesser of the two when both are set, after a stabilization window of at least
// `stabilizationWindowSeconds`.
// +kubebuilder:validation:XValidation:rule="has(self.pods) || has(self.percent)",message="set pods, percent or both: a bound without either bounds nothing"
type ScaleUpBound struct {
	// Pods is the most replicas an HPA may add within a period.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Pods *int32 `json:"pods,omitempty"`
	// Percent is the most an HPA may add within a period, in percent of the replicas at the
	// period's start, rounded up.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Percent *int32 `json:"percent,omitempty"`
	// PeriodSeconds is the length of the period.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1800
	// +default=60
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// StabilizationWindowSeconds is the least scale-up stabilization window an HPA may have.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +default=0
	StabilizationWindowSeconds *int32 `json:"stabilizationWindowSeconds,omitempty"`
}

// ScaleTarget is a kind an HPA may scale.
type ScaleTarget struct {
	// Group is the kind's API group, empty for the core group.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
	// Kind is the kind.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Kind string `json:"kind"`
}

// SaturationMetric is the metric of the saturation signal.
type SaturationMetric struct {
	// Type is External (a metric of the workload as a whole) or Pods (a per-pod metric, averaged).
	// +kubebuilder:validation:Enum=External;Pods
	// +default="External"
	Type autoscalingv2.MetricSourceType `json:"type,omitempty"`
	// Name is the metric's name.
	// +kubebuilder:validation:MinLength=1
	// +default="gos_saturation"
	Name string `json:"name,omitempty"`
	// SelectorLabel is the metric label whose value is the HPA's scale target name.
	// +kubebuilder:validation:MinLength=1
	// +default="workload"
	SelectorLabel string `json:"selectorLabel,omitempty"`
	// Target is the value the HPA keeps the metric at.
	// +default="800m"
	Target *resource.Quantity `json:"target,omitempty"`
}

// TemporalWorkers says which Deployments are Temporal workers.
type TemporalWorkers struct {
	// Selector selects worker Deployments by their labels.
	// +default={"matchLabels":{"iss.platform/component":"temporal-worker"}}
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// Provisioning says where infrastructure state may live.
type Provisioning struct {
	// ApprovedBackends are the platform's encrypted, object-locked state buckets, as
	// scheme://bucket with scheme s3, gs or azblob; any prefix inside one is approved.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^(s3|gs|azblob)://[^/?#]+$`
	// +default=["s3://iss-platform-state","gs://iss-platform-state","azblob://iss-platform-state"]
	ApprovedBackends []string `json:"approvedBackends,omitempty"`
}

// ISSPolicyStatus says whether the webhook enforces the policy.
type ISSPolicyStatus struct {
	// ObservedGeneration is the generation the webhook last read.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready is True when the webhook enforces this generation, and False, with the
	// reason Invalid and the errors, when it keeps enforcing the last good policy instead.
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// EnforcedGeneration is the last generation the webhook found valid and enforced.
	EnforcedGeneration int64 `json:"enforcedGeneration,omitempty"`
	// EnforcedSpec is the spec of EnforcedGeneration: while the current spec is invalid, every
	// replica enforces this one, a replica that starts meanwhile too.
	EnforcedSpec *ISSPolicySpec `json:"enforcedSpec,omitempty"`
}

// ConditionReady is the condition that says whether the webhook enforces the policy.
const ConditionReady = "Ready"

// Reasons of the Ready condition.
const (
	// ReasonEnforced: the webhook enforces this generation.
	ReasonEnforced = "Enforced"
	// ReasonInvalid: the policy is invalid; the last good policy stays in force.
	ReasonInvalid = "Invalid"
)
