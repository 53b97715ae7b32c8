package egress

// These tests pin down how the policy's fqdnBackend resolves against the FQDN policy kinds the
// cluster served at start-up, and which kinds the webhook watches: a wrong answer either lets
// engines run without their FQDN policy or leaves generated objects uncollected.

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/iss-platform/iss-webhook/policy"
)

// TestResolve checks every backend the policy can ask for against every combination of served
// kinds that matters: auto prefers cilium, then clusternetworkpolicy, else none; an explicit
// backend the cluster did not serve is an error that says to restart.
func TestResolve(t *testing.T) {
	both := Served{Cilium: true, ClusterNetworkPolicy: true}
	ciliumOnly := Served{Cilium: true}
	cnpOnly := Served{ClusterNetworkPolicy: true}
	neither := Served{}
	for _, tc := range []struct {
		name   string
		served Served
		want   policy.FQDNBackend
		got    policy.FQDNBackend
		// errText is in the error when the backend cannot be used; empty when it can.
		errText []string
	}{
		{name: "auto with both prefers cilium", served: both, want: policy.BackendAuto, got: policy.BackendCilium},
		{name: "auto with cilium", served: ciliumOnly, want: policy.BackendAuto, got: policy.BackendCilium},
		{name: "auto with ClusterNetworkPolicy only", served: cnpOnly, want: policy.BackendAuto, got: policy.BackendClusterNetworkPolicy},
		{name: "auto with neither is none", served: neither, want: policy.BackendAuto, got: policy.BackendNone},
		{name: "cilium served", served: ciliumOnly, want: policy.BackendCilium, got: policy.BackendCilium},
		{name: "cilium not served", served: cnpOnly, want: policy.BackendCilium, errText: []string{"cilium", "CiliumNetworkPolicy", "restart iss-webhook"}},
		{name: "cilium with neither served", served: neither, want: policy.BackendCilium, errText: []string{"restart iss-webhook"}},
		{name: "clusternetworkpolicy served", served: both, want: policy.BackendClusterNetworkPolicy, got: policy.BackendClusterNetworkPolicy},
		{name: "clusternetworkpolicy not served", served: ciliumOnly, want: policy.BackendClusterNetworkPolicy, errText: []string{"clusternetworkpolicy", "ClusterNetworkPolicy", "restart iss-webhook"}},
		{name: "none with neither", served: neither, want: policy.BackendNone, got: policy.BackendNone},
		{name: "none even when both are served", served: both, want: policy.BackendNone, got: policy.BackendNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.served.Resolve(tc.want)
			if len(tc.errText) > 0 {
				if err == nil {
					t.Fatalf("Resolve(%s) = %q, want an error", tc.want, got)
				}
				if got != "" {
					t.Errorf("Resolve(%s) returned backend %q with its error", tc.want, got)
				}
				for _, text := range tc.errText {
					if !strings.Contains(err.Error(), text) {
						t.Errorf("error %q lacks %q", err, text)
					}
				}
				return
			}
			if err != nil || got != tc.got {
				t.Fatalf("Resolve(%s) = %q, %v; want %q", tc.want, got, err, tc.got)
			}
		})
	}
}

// TestServedGVKs checks the kinds the webhook keeps informers for: NetworkPolicy always, first,
// and each FQDN kind the cluster serves, whatever the policy's backend.
func TestServedGVKs(t *testing.T) {
	for _, tc := range []struct {
		served Served
		want   []schema.GroupVersionKind
	}{
		{Served{}, []schema.GroupVersionKind{NetworkPolicyGVK}},
		{Served{Cilium: true}, []schema.GroupVersionKind{NetworkPolicyGVK, CiliumNetworkPolicyGVK}},
		{Served{ClusterNetworkPolicy: true}, []schema.GroupVersionKind{NetworkPolicyGVK, ClusterNetworkPolicyGVK}},
		{Served{Cilium: true, ClusterNetworkPolicy: true}, []schema.GroupVersionKind{NetworkPolicyGVK, CiliumNetworkPolicyGVK, ClusterNetworkPolicyGVK}},
	} {
		if got := tc.served.GVKs(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v.GVKs() = %v, want %v", tc.served, got, tc.want)
		}
	}
}
