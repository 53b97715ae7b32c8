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

// ResolveBackend turns BackendAuto into the first backend whose CRD the cluster serves (Cilium,
// then ClusterNetworkPolicy), else BackendNone. Other backends are returned as they are.
// It asks the API server, so it runs at start-up, never during a review.
func ResolveBackend(dc discovery.DiscoveryInterface, configured policy.FQDNBackend) (policy.FQDNBackend, error) {
	if configured != policy.BackendAuto {
		return configured, nil
	}
	for _, c := range []struct {
		backend  policy.FQDNBackend
		gvk      schema.GroupVersionKind
		resource string
	}{
		{policy.BackendCilium, CiliumNetworkPolicyGVK, "ciliumnetworkpolicies"},
		{policy.BackendClusterNetworkPolicy, ClusterNetworkPolicyGVK, "clusternetworkpolicies"},
	} {
		list, err := dc.ServerResourcesForGroupVersion(c.gvk.GroupVersion().String())
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("asking the API server for %s: %w", c.gvk.GroupVersion(), err)
		}
		if slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == c.resource }) {
			return c.backend, nil
		}
	}
	return policy.BackendNone, nil
}

// GVKs returns the kinds of the objects generated with the backend.
func GVKs(backend policy.FQDNBackend) []schema.GroupVersionKind {
	switch backend {
	case policy.BackendCilium:
		return []schema.GroupVersionKind{NetworkPolicyGVK, CiliumNetworkPolicyGVK}
	case policy.BackendClusterNetworkPolicy:
		return []schema.GroupVersionKind{NetworkPolicyGVK, ClusterNetworkPolicyGVK}
	default:
		return []schema.GroupVersionKind{NetworkPolicyGVK}
	}
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
