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
	// collector are trusted by default, so that namespaces and owners can be deleted, and the
	// Deployment and ReplicaSet controllers, which alone make the ReplicaSets and pods of
	// Temporal builds.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$`
	// +default=["kube-system/namespace-controller","kube-system/generic-garbage-collector","kube-system/deployment-controller","kube-system/replicaset-controller"]
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
	// Volumes says which volumes engine pods may have.
	// +optional
	Volumes *EngineVolumes `json:"volumes,omitempty"`
}

// EngineVolumes says which volumes engine pods may have. What an engine can write is bounded
// by its profile's storage: the ephemeral-storage limit bounds writable layers, logs and
// disk-backed emptyDirs, the memory limit memory-backed ones, and the claims of generic
// ephemeral volumes and a StatefulSet's volumeClaimTemplates may ask for no more than the
// profile's storage in all. Every volume type not listed is denied.
type EngineVolumes struct {
	// AllowedTypes are the volume types engine pods may use, named as in a pod's volumes.
	// persistentVolumeClaim (existing claims, whose size can change later without a review,
	// except a StatefulSet's own claims) and hostPath are not bounded by the profile; add
	// persistentVolumeClaim only where the claims' sizes are governed otherwise (ResourceQuota).
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Enum=hostPath;emptyDir;gcePersistentDisk;awsElasticBlockStore;gitRepo;secret;nfs;iscsi;glusterfs;persistentVolumeClaim;rbd;flexVolume;cinder;cephfs;flocker;downwardAPI;fc;azureFile;configMap;vsphereVolume;quobyte;azureDisk;photonPersistentDisk;projected;portworxVolume;scaleIO;storageos;csi;ephemeral;image
	// +default=["configMap","downwardAPI","emptyDir","ephemeral","hostPath","projected","secret"]
	AllowedTypes []string `json:"allowedTypes,omitempty"`
	// HostPathPrefixes are the prefixes of the node paths engines' hostPath volumes may mount,
	// when hostPath is an allowed type; a path with a ".." element is never admitted. The
	// default is the official Dagger chart's cache paths (/var/lib/dagger-<release>). Storage there is bounded by no
	// profile: pods that use it are admitted with a warning that says so.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=4096
	// +kubebuilder:validation:items:Pattern=`^/`
	// +kubebuilder:validation:XValidation:rule="self.all(p, p != '/')",message="the node's root directory would allow every hostPath: list the directories engines may use"
	// +default=["/var/lib/dagger","/var/run/dagger"]
	HostPathPrefixes []string `json:"hostPathPrefixes,omitempty"`
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
	// AllowedGeneratorKinds are the External Secrets generator kinds (generators.external-secrets.io)
	// that ExternalSecrets and PushSecrets may name and that may be created in the apps'
	// namespaces. The defaults make values without reading any secret; the others read
	// secrets or credentials from places the path rules do not check (VaultDynamicSecret reads
	// OpenBao itself). ClusterGenerator is never allowed: it wraps any generator.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +default=["Password","UUID"]
	AllowedGeneratorKinds []string `json:"allowedGeneratorKinds,omitempty"`
	// AllowedStoreProviders are the provider keys of spec.provider (aws, gcpsm, ...) that a
	// namespaced SecretStore in the apps' namespaces may use. None by default: a store of the
	// app's own reads with credentials of its own, so that no provider (the vault provider, the
	// webhook provider pointed at OpenBao's HTTP API) becomes a way around the platform's
	// stores and the path rules.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	AllowedStoreProviders []string `json:"allowedStoreProviders,omitempty"`
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
	// Kind is ClusterSecretStore (namespaced stores in governed namespaces are denied unless
	// allowedStoreProviders lists their provider) or SecretStore.
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
	// Hit is how long a path whose version External Secrets can read is remembered.
	// +default="5m"
	Hit *metav1.Duration `json:"hit,omitempty"`
	// Miss is how long any other answer is remembered: a path or version missing, deleted or
	// destroyed, and a path the webhook's token may not read.
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
	// WildcardBases adds to the check of the domains that "*." wildcards of the
	// iss.platform/network-access annotation stand before. A wildcard is admitted only over one
	// owner's domain: its base may not be a public suffix, nor have public suffixes below it, in
	// either section (ICANN and private) of the Public Suffix List built into iss-webhook, so
	// "*.co.uk" and "*.amazonaws.com" are denied and "*.pkg.dev" is admitted.
	// +default={}
	WildcardBases *WildcardBases `json:"wildcardBases,omitempty"`
	// PrivateRanges are the address ranges (CIDRs) that every generated FQDN policy denies, even
	// to an allowed name that resolves there: a CiliumNetworkPolicy egressDeny, a
	// ClusterNetworkPolicy Deny rule before the Accepts of the domain names. The default is RFC
	// 1918, shared address space, loopback, link-local (the cloud metadata servers) and their
	// IPv6 counterparts.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=25
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self) && cidr(self) == cidr(self).masked()",message="must be a CIDR with no bits set after the prefix, such as 10.0.0.0/8 or fc00::/7"
	// +default=["10.0.0.0/8","172.16.0.0/12","192.168.0.0/16","100.64.0.0/10","127.0.0.0/8","169.254.0.0/16","fc00::/7","fe80::/10","::1/128"]
	PrivateRanges []string `json:"privateRanges,omitempty"`
}

// WildcardBases are domains that "*." wildcards may or may not stand before, beside what the
// Public Suffix List says. An entry covers the domain and every domain below it; deny wins.
//
// +kubebuilder:validation:XValidation:rule="!has(self.allow) || !has(self.deny) || !self.allow.exists(a, a in self.deny)",message="a domain may not be in both allow and deny"
type WildcardBases struct {
	// Allow are bases admitted although the Public Suffix List has them as a public suffix or
	// has public suffixes below them, such as a cloud provider's domain that the platform trusts
	// as a whole. The other checks of hosts (IP addresses, cluster-internal names) still apply.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Allow []string `json:"allow,omitempty"`
	// Deny are bases denied although the Public Suffix List does not object to them. The default
	// lists wildcard DNS services whose names resolve to the address they spell
	// (10.0.0.1.nip.io) or to the loopback address.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +default=["nip.io","sslip.io","xip.io","traefik.me","localtest.me","lvh.me","vcap.me","localhost.direct"]
	Deny []string `json:"deny,omitempty"`
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

// TemporalWorkers says which Deployments are Temporal workers, and how their builds are held to
// one code each.
type TemporalWorkers struct {
	// Selector selects worker Deployments by their labels. A Deployment that carries an
	// iss.platform/build-id is held to the blue/green rules too.
	// +default={"matchLabels":{"iss.platform/component":"temporal-worker"}}
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// BuildRecordRetention is how long iss-webhook keeps the record of a build's code (a
	// ConfigMap in its own namespace) after the last Deployment and ReplicaSet of the build in
	// its namespace are gone. While the record is kept, the build id stands for that code: a
	// Deployment deleted and created anew with the same build id must have the same code.
	// +default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="must be at least 1m; keep it longer than a build's workflows may run, such as the default 720h (30 days)"
	BuildRecordRetention *metav1.Duration `json:"buildRecordRetention,omitempty"`
	// AllowImageTags admits worker images referenced by tag. By default they must be pinned by
	// digest (image@sha256:...), since a tag can be pushed again with other code under the same
	// build id.
	// +default=false
	AllowImageTags *bool `json:"allowImageTags,omitempty"`
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
	// ApprovedStorageAccounts are the Azure storage accounts whose containers the azblob://
	// entries of approvedBackends name: a Terraform's azurerm backend must name one as
	// storage_account_name, and a Stack with an azblob:// backend may set AZURE_STORAGE_ACCOUNT
	// only to one, as a literal. A container name alone does not say whose account it is in.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]{3,24}$`
	// +default=["issplatformstate"]
	ApprovedStorageAccounts []string `json:"approvedStorageAccounts,omitempty"`
	// AllowedEnv are the environment variables a Stack or Terraform may set in the pods that run
	// Pulumi or OpenTofu (a Stack's envRefs, accessTokenSecret and workspace template, a
	// Terraform's runnerPodTemplate): names, or prefixes ending in *. Every other name is denied,
	// so leave out what can send the state elsewhere or change its encryption: endpoints
	// (AWS_ENDPOINT_URL*), the tools' redirections (PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE*,
	// TF_CLI_ARGS*, TF_CLI_CONFIG_FILE, TF_ENCRYPTION), configuration files and profiles
	// (AWS_CONFIG_FILE, AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS), trust stores and proxies
	// (SSL_CERT_FILE, HTTPS_PROXY). AZURE_STORAGE_ACCOUNT, VAULT_ADDR and BAO_ADDR are checked by
	// value whatever this list says. The default: the clouds' credentials and regions, TF_VAR_*
	// (input variables, which cannot reach the literal backend block), and the tools' switches.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:Pattern=`^[-._a-zA-Z][-._a-zA-Z0-9]*\*?$`
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.all(n, ['PULUMI_BACKEND_URL', 'PULUMI_CONFIG_PASSPHRASE', 'AWS_ENDPOINT_URL', 'TF_CLI_ARGS', 'TF_CLI_CONFIG_FILE', 'TF_ENCRYPTION'].all(f, !n.startsWith(f) && !(n.endsWith('*') && f.startsWith(n.substring(0, size(n) - 1)))))",message="may not allow PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE*, AWS_ENDPOINT_URL*, TF_CLI_ARGS*, TF_CLI_CONFIG_FILE or TF_ENCRYPTION, nor a prefix that covers one: they send the state away from the approved backends or change its encryption"
	// +default=["AWS_ACCESS_KEY_ID","AWS_SECRET_ACCESS_KEY","AWS_SESSION_TOKEN","AWS_REGION","AWS_DEFAULT_REGION","AWS_ROLE_ARN","AWS_ROLE_SESSION_NAME","AWS_WEB_IDENTITY_TOKEN_FILE","GOOGLE_PROJECT","GOOGLE_REGION","GOOGLE_ZONE","ARM_SUBSCRIPTION_ID","ARM_TENANT_ID","ARM_CLIENT_ID","ARM_CLIENT_SECRET","ARM_ACCESS_KEY","ARM_USE_OIDC","ARM_USE_MSI","ARM_USE_AKS_WORKLOAD_IDENTITY","AZURE_CLIENT_ID","AZURE_TENANT_ID","AZURE_CLIENT_SECRET","AZURE_STORAGE_KEY","VAULT_TOKEN","PULUMI_ACCESS_TOKEN","PULUMI_SKIP_UPDATE_CHECK","PULUMI_SKIP_CONFIRMATIONS","TF_IN_AUTOMATION","TF_INPUT","CHECKPOINT_DISABLE","TF_VAR_*","TZ","LANG","LC_ALL","NO_COLOR"]
	AllowedEnv []string `json:"allowedEnv,omitempty"`
	// AllowedImages are the images a Stack's workspace and a Terraform's runner may run:
	// repositories as a registry client resolves them (docker.io/pulumi/pulumi, not
	// pulumi/pulumi), or prefixes ending in *; any tag or digest. An image's ENV lines and
	// entrypoint set variables that no object shows.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9][-a-z0-9._:/]*\*?$`
	// +kubebuilder:validation:items:MaxLength=255
	// +default=["docker.io/pulumi/pulumi","docker.io/pulumi/pulumi-*","ghcr.io/flux-iac/tf-runner","ghcr.io/flux-iac/tf-runner-*"]
	AllowedImages []string `json:"allowedImages,omitempty"`
	// AllowEnvFrom admits whole ConfigMaps and Secrets as environment: envFrom in the pod
	// templates, a Stack's envs and envSecrets. Their keys become variables that the webhook
	// cannot read when it admits the object (it reads no objects on the admission path), so
	// AllowedEnv does not hold for them: leave it false unless who writes those ConfigMaps and
	// Secrets is trusted.
	// +default=false
	AllowEnvFrom bool `json:"allowEnvFrom,omitempty"`
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
