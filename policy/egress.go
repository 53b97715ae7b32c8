package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// FQDNBackend names the kind of object that carries the FQDN allowances of an engine's egress.
type FQDNBackend string

// The FQDN backends of design.md 4.3.
const (
	// BackendAuto picks Cilium when the cluster serves CiliumNetworkPolicy, else
	// ClusterNetworkPolicy when it serves that, else none.
	BackendAuto FQDNBackend = "auto"
	// BackendCilium writes a cilium.io/v2 CiliumNetworkPolicy with toFQDNs and the DNS proxy rule.
	BackendCilium FQDNBackend = "cilium"
	// BackendClusterNetworkPolicy writes a policy.networking.k8s.io/v1beta1 ClusterNetworkPolicy
	// in the Admin tier with domainNames.
	BackendClusterNetworkPolicy FQDNBackend = "clusternetworkpolicy"
	// BackendNone writes no FQDN object: the listed hosts are unreachable, and admission warns.
	BackendNone FQDNBackend = "none"
)

// NetworkSection is the section of the policy about engine egress (design.md 4.3).
type NetworkSection struct {
	// FQDNBackend is the backend of FQDN allowances; BackendAuto by default.
	FQDNBackend FQDNBackend
	// DNSNamespace and DNSPodLabels select the cluster DNS pods that engines may query.
	DNSNamespace string
	DNSPodLabels map[string]string
	// DNSPorts are the ports of the cluster DNS service, over UDP and TCP.
	DNSPorts []int32
	// ClusterNetworkPolicyPriority is the Admin-tier priority of generated ClusterNetworkPolicies.
	ClusterNetworkPolicyPriority int32
	// GCGracePeriod is how long a generated object may select no pod before it is deleted. It
	// covers the time between admission, which writes the objects, and the pod's creation.
	GCGracePeriod time.Duration
	// WildcardBases adds to the Public Suffix List check of the bases of "*." wildcards.
	WildcardBases WildcardBasePolicy
	// PrivateRanges are the address ranges that every generated FQDN object denies, even to an
	// allowed name that resolves there: a name's DNS records are its owner's to change, so an
	// allowance for a name is no allowance for the metadata server or the cluster's network.
	PrivateRanges []netip.Prefix
	// Suffixes is the Public Suffix List that wildcard bases are checked against;
	// BuiltinSuffixes() when nil.
	Suffixes *SuffixIndex
}

// DefaultPrivateRanges returns the ranges the generated FQDN objects deny by default: the
// private networks of RFC 1918, shared address space (RFC 6598, carrier-grade NAT and some pod
// networks), loopback, link-local (the cloud metadata servers at 169.254.169.254), IPv6 unique
// local and link-local addresses, and the IPv6 loopback.
func DefaultPrivateRanges() []netip.Prefix {
	var ranges []netip.Prefix
	for _, r := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128"} {
		ranges = append(ranges, netip.MustParsePrefix(r))
	}
	return ranges
}

// DefaultNetworkSection returns the built-in network section of the policy.
func DefaultNetworkSection() NetworkSection {
	return NetworkSection{
		FQDNBackend:                  BackendAuto,
		DNSNamespace:                 "kube-system",
		DNSPodLabels:                 map[string]string{"k8s-app": "kube-dns"},
		DNSPorts:                     []int32{53},
		ClusterNetworkPolicyPriority: 500,
		GCGracePeriod:                5 * time.Minute,
		WildcardBases:                WildcardBasePolicy{Deny: DefaultWildcardBaseDeny()},
		PrivateRanges:                DefaultPrivateRanges(),
		Suffixes:                     BuiltinSuffixes(),
	}
}

// EgressPolicyName is the name of the generated objects of an allowlist in a namespace. The
// names of namespaced objects need no namespace: pods with equal allowlists share them.
func EgressPolicyName(hash string) string { return "iss-egress-" + hash }

// ClusterEgressPolicyName is the name of the cluster-scoped ClusterNetworkPolicy of an allowlist
// in a namespace.
func ClusterEgressPolicyName(namespace, hash string) string {
	return "iss-egress-" + namespace + "-" + hash
}

// generatedLabels are the labels of every generated object: managed-by marks them as the
// webhook's, the egress-policy label ties them to the pods they select.
func generatedLabels(hash string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelEgressPolicy: hash}
}

// AnnotationLastUsed is the annotation of a generated object that says when an engine was last
// admitted with it. The collector keeps an object for the grace period after that time, so that
// it never deletes the policy of a pod that is being admitted.
const AnnotationLastUsed = Prefix + "last-used"

// LabelEgressNamespace is the label of a generated cluster-scoped object that names the
// namespace of the pods it selects, so that it can be collected with them.
const LabelEgressNamespace = Prefix + "egress-namespace"

// BaseEgressPolicy returns the NetworkPolicy that every engine gets: all egress denied but DNS
// to the cluster DNS pods. It selects the pods labelled with the allowlist's hash.
func (n *NetworkSection) BaseEgressPolicy(namespace, hash string) *networkingv1.NetworkPolicy {
	var ports []networkingv1.NetworkPolicyPort
	for _, p := range n.DNSPorts {
		for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
			port := intstr.FromInt32(p)
			ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port})
		}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: EgressPolicyName(hash), Namespace: namespace, Labels: generatedLabels(hash),
			Annotations: map[string]string{Prefix + "description": "ISS-001 section 4: engine egress is denied but DNS; the FQDN allowances are in a second object"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelEgressPolicy: hash}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: n.DNSNamespace}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: n.DNSPodLabels},
				}},
				Ports: ports,
			}},
		},
	}
}

// portGroup is a set of rules that share protocol and ports, so that one egress rule lists
// all their hosts.
type portGroup struct {
	protocol string
	ports    []int32
	rules    []EgressRule
}

// groupByPorts groups an allowlist by protocol and ports, in a deterministic order.
func groupByPorts(list Allowlist) []portGroup {
	var groups []portGroup
	for _, r := range list {
		i := slices.IndexFunc(groups, func(g portGroup) bool { return g.protocol == r.Protocol && slices.Equal(g.ports, r.Ports) })
		if i < 0 {
			groups = append(groups, portGroup{protocol: r.Protocol, ports: r.Ports})
			i = len(groups) - 1
		}
		groups[i].rules = append(groups[i].rules, r)
	}
	slices.SortFunc(groups, func(a, b portGroup) int {
		if c := strings.Compare(a.protocol, b.protocol); c != 0 {
			return c
		}
		return slices.Compare(a.ports, b.ports)
	})
	return groups
}

// privateRangeStrings returns the private ranges as the generated objects write them.
func (n *NetworkSection) privateRangeStrings() []string {
	out := make([]string, len(n.PrivateRanges))
	for i, r := range n.PrivateRanges {
		out[i] = r.String()
	}
	return out
}

// CiliumEgressPolicy returns the CiliumNetworkPolicy (cilium.io/v2) that allows the allowlist's
// FQDNs, with the DNS rule that sends the pods' lookups through Cilium's DNS proxy (without it
// toFQDNs never learns an address), and an egressDeny of the private ranges, which Cilium
// enforces over every allow rule: an allowed name that resolves there is still denied. Cilium
// applies CIDR rules to destinations outside the cluster only, so the deny leaves the DNS rule
// to the cluster DNS pods alone. It is nil for the empty allowlist.
func (n *NetworkSection) CiliumEgressPolicy(namespace, hash string, list Allowlist) *unstructured.Unstructured {
	if len(list) == 0 {
		return nil
	}
	dnsEndpoint := map[string]any{"k8s:io.kubernetes.pod.namespace": n.DNSNamespace}
	for k, v := range n.DNSPodLabels {
		dnsEndpoint["k8s:"+k] = v
	}
	var dnsPorts []any
	for _, p := range n.DNSPorts {
		dnsPorts = append(dnsPorts, map[string]any{"port": strconv.Itoa(int(p)), "protocol": "ANY"})
	}
	egress := []any{map[string]any{
		"toEndpoints": []any{map[string]any{"matchLabels": dnsEndpoint}},
		"toPorts":     []any{map[string]any{"ports": dnsPorts, "rules": map[string]any{"dns": []any{map[string]any{"matchPattern": "*"}}}}},
	}}
	for _, g := range groupByPorts(list) {
		var fqdns, ports []any
		for _, r := range g.rules {
			if r.Wildcard() {
				// Cilium's "*." matches one label; "**." matches subdomains at any depth, as
				// "*." does in a ClusterNetworkPolicy and in the annotation.
				fqdns = append(fqdns, map[string]any{"matchPattern": "*" + r.Host})
			} else {
				fqdns = append(fqdns, map[string]any{"matchName": r.Host})
			}
		}
		for _, p := range g.ports {
			ports = append(ports, map[string]any{"port": strconv.Itoa(int(p)), "protocol": g.protocol})
		}
		egress = append(egress, map[string]any{"toFQDNs": fqdns, "toPorts": []any{map[string]any{"ports": ports}}})
	}
	labels := map[string]any{}
	for k, v := range generatedLabels(hash) {
		labels[k] = v
	}
	spec := map[string]any{
		"endpointSelector": map[string]any{"matchLabels": map[string]any{LabelEgressPolicy: hash}},
		"egress":           egress,
	}
	if len(n.PrivateRanges) > 0 {
		var cidrs []any
		for _, r := range n.privateRangeStrings() {
			cidrs = append(cidrs, r)
		}
		spec["egressDeny"] = []any{map[string]any{"toCIDR": cidrs}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2",
		"kind":       "CiliumNetworkPolicy",
		"metadata":   map[string]any{"name": EgressPolicyName(hash), "namespace": namespace, "labels": labels},
		"spec":       spec,
	}}
}

// ClusterEgressPolicy returns the Admin-tier ClusterNetworkPolicy that accepts egress to the
// cluster DNS and the allowlist's domain names from the namespace's pods labelled with its hash,
// and denies the rest. Its rules apply in order, the first that matches decides: DNS is
// accepted first (the DNS pods have addresses in the private ranges), then the private ranges
// are denied, so that an allowed name that resolves there is denied, then the domain names are
// accepted. It is nil for the empty allowlist.
func (n *NetworkSection) ClusterEgressPolicy(namespace, hash string, list Allowlist) *cnpv1beta1.ClusterNetworkPolicy {
	if len(list) == 0 {
		return nil
	}
	// The Admin tier decides before any NetworkPolicy, so this object carries the whole
	// allowlist: DNS, the domain names, and a final Deny, without which a NetworkPolicy written
	// by the namespace's users could widen the engine's egress.
	var dnsProtocols []cnpv1beta1.ClusterNetworkPolicyProtocol
	for _, p := range n.DNSPorts {
		dnsProtocols = append(dnsProtocols,
			cnpv1beta1.ClusterNetworkPolicyProtocol{UDP: &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &cnpv1beta1.Port{Number: p}}},
			cnpv1beta1.ClusterNetworkPolicyProtocol{TCP: &cnpv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1beta1.Port{Number: p}}})
	}
	rules := []cnpv1beta1.ClusterNetworkPolicyEgressRule{{
		Name:   "iss-dns",
		Action: cnpv1beta1.ClusterNetworkPolicyRuleActionAccept,
		To: []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{Pods: &cnpv1beta1.NamespacedPod{
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: n.DNSNamespace}},
			PodSelector:       metav1.LabelSelector{MatchLabels: n.DNSPodLabels},
		}}},
		Protocols: dnsProtocols,
	}}
	if len(n.PrivateRanges) > 0 {
		var networks []cnpv1beta1.CIDR
		for _, r := range n.privateRangeStrings() {
			networks = append(networks, cnpv1beta1.CIDR(r))
		}
		rules = append(rules, cnpv1beta1.ClusterNetworkPolicyEgressRule{
			Name:   "iss-deny-private",
			Action: cnpv1beta1.ClusterNetworkPolicyRuleActionDeny,
			To:     []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{Networks: networks}},
		})
	}
	for i, g := range groupByPorts(list) {
		var names []cnpv1beta1.DomainName
		for _, r := range g.rules {
			names = append(names, cnpv1beta1.DomainName(r.Host))
		}
		var protocols []cnpv1beta1.ClusterNetworkPolicyProtocol
		for _, p := range g.ports {
			port := &cnpv1beta1.Port{Number: p}
			if g.protocol == ProtocolUDP {
				protocols = append(protocols, cnpv1beta1.ClusterNetworkPolicyProtocol{UDP: &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}})
			} else {
				protocols = append(protocols, cnpv1beta1.ClusterNetworkPolicyProtocol{TCP: &cnpv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}})
			}
		}
		rules = append(rules, cnpv1beta1.ClusterNetworkPolicyEgressRule{
			Name:      fmt.Sprintf("iss-fqdn-%d", i),
			Action:    cnpv1beta1.ClusterNetworkPolicyRuleActionAccept,
			To:        []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{DomainNames: names}},
			Protocols: protocols,
		})
	}
	rules = append(rules, cnpv1beta1.ClusterNetworkPolicyEgressRule{
		Name:   "iss-deny-rest",
		Action: cnpv1beta1.ClusterNetworkPolicyRuleActionDeny,
		To: []cnpv1beta1.ClusterNetworkPolicyEgressPeer{
			{Namespaces: &metav1.LabelSelector{}},
			{Networks: []cnpv1beta1.CIDR{"0.0.0.0/0", "::/0"}},
		},
	})
	labels := generatedLabels(hash)
	labels[LabelEgressNamespace] = namespace
	return &cnpv1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: cnpv1beta1.GroupVersion.String(), Kind: "ClusterNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: ClusterEgressPolicyName(namespace, hash), Labels: labels},
		Spec: cnpv1beta1.ClusterNetworkPolicySpec{
			Tier:     cnpv1beta1.AdminTier,
			Priority: n.ClusterNetworkPolicyPriority,
			Subject: cnpv1beta1.ClusterNetworkPolicySubject{Pods: &cnpv1beta1.NamespacedPod{
				NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: namespace}},
				PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{LabelEgressPolicy: hash}},
			}},
			Egress: rules,
		},
	}
}

// EgressObjects returns every object the engine's egress needs in the namespace, as the API
// server will store them: the base NetworkPolicy, and the FQDN object of the backend when the
// allowlist is not empty. backend must be resolved (not BackendAuto).
func (n *NetworkSection) EgressObjects(namespace string, eng Engine, backend FQDNBackend) ([]*unstructured.Unstructured, error) {
	objs := []runtime.Object{n.BaseEgressPolicy(namespace, eng.EgressHash)}
	switch backend {
	case BackendCilium:
		if o := n.CiliumEgressPolicy(namespace, eng.EgressHash, eng.Egress); o != nil {
			objs = append(objs, o)
		}
	case BackendClusterNetworkPolicy:
		if o := n.ClusterEgressPolicy(namespace, eng.EgressHash, eng.Egress); o != nil {
			objs = append(objs, o)
		}
	case BackendNone:
	default:
		return nil, fmt.Errorf("FQDN backend %q is not one of %q, %q, %q", backend, BackendCilium, BackendClusterNetworkPolicy, BackendNone)
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				return nil, err
			}
			u = &unstructured.Unstructured{Object: m}
		}
		// What the typed objects carry but an applied configuration must not.
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "status")
		out = append(out, u)
	}
	return out, nil
}
