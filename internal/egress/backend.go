package egress

import (
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/iss-platform/iss-webhook/policy"
)

// The kinds of the generated objects.
var (
	// NetworkPolicyGVK is the base policy every engine gets.
	NetworkPolicyGVK = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}
	// CiliumNetworkPolicyGVK carries FQDN allowances with the cilium backend.
	CiliumNetworkPolicyGVK = schema.GroupVersionKind{Group: "cilium.io", Version: "v2", Kind: "CiliumNetworkPolicy"}
	// ClusterNetworkPolicyGVK carries FQDN allowances with the clusternetworkpolicy backend.
	ClusterNetworkPolicyGVK = schema.GroupVersionKind{Group: "policy.networking.k8s.io", Version: "v1beta1", Kind: "ClusterNetworkPolicy"}
)

// Served says which FQDN policy kinds the cluster serves. The webhook asks once, at start-up,
// never during a review; a CRD installed later takes a restart.
type Served struct {
	// Cilium: the cluster serves cilium.io/v2 CiliumNetworkPolicy.
	Cilium bool
	// ClusterNetworkPolicy: the cluster serves policy.networking.k8s.io/v1beta1 ClusterNetworkPolicy.
	ClusterNetworkPolicy bool
}

// DiscoverServed asks the API server which FQDN policy kinds it serves.
func DiscoverServed(dc discovery.DiscoveryInterface) (Served, error) {
	var s Served
	var err error
	if s.Cilium, err = Serves(dc, CiliumNetworkPolicyGVK.GroupVersion(), "ciliumnetworkpolicies"); err != nil {
		return Served{}, err
	}
	if s.ClusterNetworkPolicy, err = Serves(dc, ClusterNetworkPolicyGVK.GroupVersion(), "clusternetworkpolicies"); err != nil {
		return Served{}, err
	}
	return s, nil
}

// Serves tells whether the API server serves a resource of a group version. It asks the API
// server, so it runs at start-up, never during a review.
func Serves(dc discovery.DiscoveryInterface, gv schema.GroupVersion, resource string) (bool, error) {
	list, err := dc.ServerResourcesForGroupVersion(gv.String())
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("asking the API server for %s: %w", gv, err)
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == resource }), nil
}

// Resolve returns the backend the policy's fqdnBackend means on this cluster: auto is the first
// served of cilium and clusternetworkpolicy, else none. A backend the cluster does not serve is
// an error, which denies engines rather than letting them run without their FQDN policy.
func (s Served) Resolve(want policy.FQDNBackend) (policy.FQDNBackend, error) {
	switch {
	case want == policy.BackendAuto && s.Cilium:
		return policy.BackendCilium, nil
	case want == policy.BackendAuto && s.ClusterNetworkPolicy:
		return policy.BackendClusterNetworkPolicy, nil
	case want == policy.BackendAuto:
		return policy.BackendNone, nil
	case want == policy.BackendCilium && !s.Cilium:
		return "", fmt.Errorf("the policy's network.fqdnBackend is cilium, but the cluster served no CiliumNetworkPolicy when iss-webhook started: install Cilium's CRDs and restart iss-webhook, or choose another backend")
	case want == policy.BackendClusterNetworkPolicy && !s.ClusterNetworkPolicy:
		return "", fmt.Errorf("the policy's network.fqdnBackend is clusternetworkpolicy, but the cluster served no ClusterNetworkPolicy when iss-webhook started: install the network-policy-api CRDs and restart iss-webhook, or choose another backend")
	case want == policy.BackendCilium, want == policy.BackendClusterNetworkPolicy, want == policy.BackendNone:
		return want, nil
	}
	return "", fmt.Errorf("unknown FQDN backend %q", want)
}

// GVKs returns the kinds of generated objects the cluster serves: NetworkPolicy, and each
// served FQDN kind. The webhook keeps informers for all of them, so that switching the backend
// in the policy needs no restart and the old backend's objects are still collected.
func (s Served) GVKs() []schema.GroupVersionKind {
	gvks := []schema.GroupVersionKind{NetworkPolicyGVK}
	if s.Cilium {
		gvks = append(gvks, CiliumNetworkPolicyGVK)
	}
	if s.ClusterNetworkPolicy {
		gvks = append(gvks, ClusterNetworkPolicyGVK)
	}
	return gvks
}

// NewObject returns an empty object of the kind, for the cache and the client.
func NewObject(gvk schema.GroupVersionKind) client.Object {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

// NewList returns an empty list of the kind.
func NewList(gvk schema.GroupVersionKind) *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	return l
}
