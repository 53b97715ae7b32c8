package policy

import (
	"slices"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// RuleGroup is a group of rules that shares one enforcement mode (ISSPolicy
// spec.enforcement), and the value of the rule label of the webhook's metrics.
type RuleGroup string

// The rule groups.
const (
	// RuleEnginePods: quota profiles, secret keys and sidecars, network access, on engine pods
	// and the pod templates of workloads.
	RuleEnginePods RuleGroup = "enginePods"
	// RuleSecrets: OpenBao paths, app and initiator binding, stores, the existence check.
	RuleSecrets RuleGroup = "secrets"
	// RuleAutoscaling: the saturation metric of HPAs.
	RuleAutoscaling RuleGroup = "autoscaling"
	// RuleTemporalWorkers: the blue/green rules of Temporal workers.
	RuleTemporalWorkers RuleGroup = "temporalWorkers"
	// RuleProvisioning: the state backends of Pulumi Stacks and Terraforms.
	RuleProvisioning RuleGroup = "provisioning"
	// RuleIntegrity protects what the other rules rest on: ISS labels and annotations, generated
	// egress policies, namespace labels, and user NetworkPolicies that would open engine egress.
	// It has no mode and always denies: in Warn or Audit anyone could switch the rest off.
	RuleIntegrity RuleGroup = "integrity"
	// RuleEgressWrite is the writing of generated egress policies during admission; a failure
	// always denies the engine, which must never run with open egress.
	RuleEgressWrite RuleGroup = "egressPolicies"
)

// ConfigurableRuleGroups returns the groups whose mode the policy sets, in the order of the
// ISSPolicy's enforcement section.
func ConfigurableRuleGroups() []RuleGroup {
	return []RuleGroup{RuleEnginePods, RuleSecrets, RuleAutoscaling, RuleTemporalWorkers, RuleProvisioning}
}

// Mode returns the enforcement mode of a rule group: Enforce unless the policy says otherwise;
// always Enforce for the integrity rules.
func (p *Policy) Mode(g RuleGroup) v1alpha1.EnforcementMode {
	if m, ok := p.Enforcement[g]; ok && slices.Contains(ConfigurableRuleGroups(), g) {
		return m
	}
	return v1alpha1.Enforce
}

// Exempt tells whether the policy exempts a namespace: its objects are admitted unchanged and
// unchecked.
func (p *Policy) Exempt(namespace string) bool {
	return namespace != "" && slices.Contains(p.ExemptNamespaces, namespace)
}
