package policy

import (
	"slices"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// Policy is the policy in force. With no ISSPolicy object installed it is Default(), which is
// ISS-001 as written; an ISSPolicy object overrides it field by field.
type Policy struct {
	// Enforcement is the mode of each configurable rule group; a group it leaves out is
	// enforced (see Mode).
	Enforcement map[RuleGroup]v1alpha1.EnforcementMode
	// ExemptNamespaces are admitted unchanged and unchecked (see Exempt).
	ExemptNamespaces []string
	// Engines says how Dagger engine pods are recognised and which quota profiles they may use.
	Engines EnginePolicy
	// Network says how engine egress is restricted.
	Network NetworkSection
	// Secrets says where each environment's OpenBao secrets live.
	Secrets SecretsPolicy
	// OpenBao is the optional existence check of ExternalSecret paths.
	OpenBao OpenBaoPolicy
	// Autoscaling says what HorizontalPodAutoscalers scale on.
	Autoscaling AutoscalingPolicy
	// Provisioning says where infrastructure state lives.
	Provisioning ProvisioningPolicy
	// TemporalWorkers says which Deployments are Temporal workers.
	TemporalWorkers TemporalPolicy
	// TrustedIdentities may do what the policy forbids others: change ISS labels and
	// annotations, change or delete generated objects.
	TrustedIdentities Identities
}

// Identities names users, groups and service accounts.
type Identities struct {
	// Users are user names, as the API server authenticates them.
	Users []string
	// Groups are group names; a user in any of them matches.
	Groups []string
	// ServiceAccounts are "namespace/name" pairs.
	ServiceAccounts []string
}

// Contains tells whether a requester with this user name and groups is one of the identities.
func (ids *Identities) Contains(username string, groups []string) bool {
	if slices.Contains(ids.Users, username) {
		return true
	}
	for _, g := range groups {
		if slices.Contains(ids.Groups, g) {
			return true
		}
	}
	if ns, name, ok := strings.Cut(strings.TrimPrefix(username, "system:serviceaccount:"), ":"); ok && strings.HasPrefix(username, "system:serviceaccount:") {
		return slices.Contains(ids.ServiceAccounts, ns+"/"+name)
	}
	return false
}

// EnginePolicy is the part of the policy about Dagger engines (design.md 4.1 and section 3).
type EnginePolicy struct {
	// Labels mark a pod as an engine: any one label with the given value is enough.
	Labels map[string]string
	// Images are the image repositories of engines, without tag or digest. A pod with a container
	// running one of them is an engine even without a label, so that the pods of the official
	// Dagger Helm chart are recognised without edits.
	Images []string
	// ContainerName is the name of the engine container when a pod has several containers.
	ContainerName string
	// Profiles are the quota profiles, in the order in which messages list them.
	Profiles []Profile
	// DefaultProfile is the profile of an engine without the profile annotation.
	DefaultProfile string
	// SecretsMountPath is where the engine container finds one file per secret key.
	SecretsMountPath string
	// Volumes says which volumes engine pods may have.
	Volumes VolumePolicy
}

// Profile is a quota profile of ISS-001 section 4: the requests and limits of the engine
// container. Its ephemeral-storage limit also bounds the sizeLimit of every disk-backed emptyDir
// of the pod, and its memory limit that of every memory-backed one.
type Profile struct {
	// Name is the value of the iss.platform/profile annotation that selects the profile.
	Name string
	// Requests are the container's resource requests under this profile.
	Requests corev1.ResourceList
	// Limits are the container's resource limits under this profile.
	Limits corev1.ResourceList
	// AllowedResources are the resource names besides those of Requests and Limits that an
	// engine pod of this profile may request; the profile does not bound them.
	AllowedResources []corev1.ResourceName
}

// Profile returns the profile with the given name, or nil when the policy has none by that name.
func (e *EnginePolicy) Profile(name string) *Profile {
	for i := range e.Profiles {
		if e.Profiles[i].Name == name {
			return &e.Profiles[i]
		}
	}
	return nil
}

// ProfileNames returns the names of the profiles, in policy order.
func (e *EnginePolicy) ProfileNames() []string {
	names := make([]string, 0, len(e.Profiles))
	for _, p := range e.Profiles {
		names = append(names, p.Name)
	}
	return names
}

// Default returns the built-in policy: ISS-001 as written (section 4's profile table) with the
// defaults of design.md section 3. Every call returns a new value that the caller may change.
func Default() *Policy {
	enforcement := map[RuleGroup]v1alpha1.EnforcementMode{}
	for _, g := range ConfigurableRuleGroups() {
		enforcement[g] = v1alpha1.Enforce
	}
	return &Policy{
		Enforcement: enforcement,
		Engines: EnginePolicy{
			Labels:           map[string]string{LabelEngine: EngineLabelValue},
			Images:           []string{"registry.dagger.io/engine", "ghcr.io/dagger/engine"},
			ContainerName:    "dagger-engine",
			DefaultProfile:   "standard",
			SecretsMountPath: DefaultSecretsMountPath,
			Volumes:          DefaultVolumePolicy(),
			Profiles: []Profile{
				profile("standard", "500m", "2000m", "1Gi", "4Gi", "10Gi"),
				profile("high-performance", "2000m", "4000m", "4Gi", "8Gi", "50Gi"),
			},
		},
		Network:         DefaultNetworkSection(),
		Secrets:         DefaultSecretsPolicy(),
		OpenBao:         DefaultOpenBaoPolicy(),
		Autoscaling:     DefaultAutoscalingPolicy(),
		Provisioning:    DefaultProvisioningPolicy(),
		TemporalWorkers: DefaultTemporalPolicy(),
		TrustedIdentities: Identities{
			Groups: []string{"system:masters"},
			// The namespace controller and the garbage collector delete generated objects with
			// their namespace or owner; denying them would leave namespaces stuck terminating.
			// The Deployment and ReplicaSet controllers make the ReplicaSets and pods of Temporal
			// builds, which nobody else may.
			ServiceAccounts: []string{"kube-system/namespace-controller", "kube-system/generic-garbage-collector", "kube-system/deployment-controller", "kube-system/replicaset-controller"},
		},
	}
}

func profile(name, cpuRequest, cpuLimit, memoryRequest, memoryLimit, storage string) Profile {
	return Profile{
		Name: name,
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse(cpuRequest),
			corev1.ResourceMemory:           resource.MustParse(memoryRequest),
			corev1.ResourceEphemeralStorage: resource.MustParse(storage),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse(cpuLimit),
			corev1.ResourceMemory:           resource.MustParse(memoryLimit),
			corev1.ResourceEphemeralStorage: resource.MustParse(storage),
		},
	}
}

// Provider hands out the policy in force. Callers take it once per review and never change it,
// so that a review sees one consistent policy even while a new one is being loaded.
type Provider interface {
	Current() *Policy
}

// Holder is a Provider whose policy can be replaced at any time, safely for concurrent readers.
type Holder struct {
	current atomic.Pointer[Policy]
}

// NewHolder returns a Holder that hands out p until Set is called.
func NewHolder(p *Policy) *Holder {
	h := &Holder{}
	h.current.Store(p)
	return h
}

// Current returns the policy in force.
func (h *Holder) Current() *Policy { return h.current.Load() }

// Set makes p the policy in force for every later review.
func (h *Holder) Set(p *Policy) { h.current.Store(p) }

// sortedResourceNames returns the names of a resource list in a stable order, so that messages
// and mutations do not depend on map iteration.
func sortedResourceNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
