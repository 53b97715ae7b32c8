package policy

import (
	"slices"

	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// RuleGroup is a group of rules that shares one enforcement mode (ISSPolicy
// spec.enforcement), and the value of the rule label of the webhook's metrics.
type RuleGroup string

// The rule groups. RuleGroups says, for each, its ISSPolicy field and what it covers.
const (
	RuleEnginePods      RuleGroup = "enginePods"
	RuleSecrets         RuleGroup = "secrets"
	RuleAutoscaling     RuleGroup = "autoscaling"
	RuleTemporalWorkers RuleGroup = "temporalWorkers"
	RuleProvisioning    RuleGroup = "provisioning"
	RuleIntegrity       RuleGroup = "integrity"
	RuleEgressWrite     RuleGroup = "egressPolicies"
	RuleBuildRecords    RuleGroup = "buildRecords"
)

// RuleGroupSpec is one row of the table of rule groups.
type RuleGroupSpec struct {
	// Group is the group's name: its ISSPolicy field under spec.enforcement and the rule label
	// of the metrics.
	Group RuleGroup
	// Mode points at the group's mode in the ISSPolicy's enforcement section; nil for the groups
	// that have no mode and always deny.
	Mode func(*v1alpha1.Enforcement) *v1alpha1.EnforcementMode
	// Covers says what the group's rules check, for the docs.
	Covers string
}

// RuleGroups is the one table of rule groups, in the order of the ISSPolicy's enforcement
// section: the policy's modes, its conversion to and from the ISSPolicy, the metrics and the
// docs follow it.
func RuleGroups() []RuleGroupSpec { return slices.Clone(ruleGroups) }

// ruleGroups is the table RuleGroups hands out copies of; reviews read it many times, so it is
// built once.
var ruleGroups = []RuleGroupSpec{
	{Group: RuleEnginePods, Mode: func(e *v1alpha1.Enforcement) *v1alpha1.EnforcementMode { return &e.EnginePods },
		Covers: "quota profiles, secret keys and secret-agent sidecars, network access, on engine pods and on the pod templates of workloads"},
	{Group: RuleSecrets, Mode: func(e *v1alpha1.Enforcement) *v1alpha1.EnforcementMode { return &e.Secrets },
		Covers: "the OpenBao existence check of ExternalSecret paths (the path, binding and store rules are integrity rules)"},
	{Group: RuleAutoscaling, Mode: func(e *v1alpha1.Enforcement) *v1alpha1.EnforcementMode { return &e.Autoscaling },
		Covers: "the saturation metric of HorizontalPodAutoscalers"},
	{Group: RuleTemporalWorkers, Mode: func(e *v1alpha1.Enforcement) *v1alpha1.EnforcementMode { return &e.TemporalWorkers },
		Covers: "the blue/green rules of Temporal worker Deployments"},
	{Group: RuleProvisioning, Mode: func(e *v1alpha1.Enforcement) *v1alpha1.EnforcementMode { return &e.Provisioning },
		Covers: "the state backends and deprovisioning of Pulumi Stacks and Terraforms"},
	{Group: RuleIntegrity,
		Covers: "what the other rules rest on: ISS labels and annotations, generated egress policies, namespace labels, user NetworkPolicies that would open engine egress, engine images in debug containers, the secrets' path, app, initiator and store rules, user-private Secrets (the owners of pods and templates, who may use, change or connect to what uses a user's Secret), objects being deleted, the ISSPolicy itself; always denies, since in Warn or Audit anyone could switch the rest off"},
	{Group: RuleEgressWrite,
		Covers: "the writing of generated egress policies during admission; a failure always denies the engine, which must never run with open egress"},
	{Group: RuleBuildRecords,
		Covers: "the writing of the records of Temporal builds' code during admission; a failure always denies the Deployment, so that no build id comes to stand for two codes"},
}

// configurable are the groups of ruleGroups that have a mode.
var configurable = func() []RuleGroup {
	var groups []RuleGroup
	for _, g := range ruleGroups {
		if g.Mode != nil {
			groups = append(groups, g.Group)
		}
	}
	return groups
}()

// ConfigurableRuleGroups returns the groups whose mode the policy sets, in the order of the
// ISSPolicy's enforcement section.
func ConfigurableRuleGroups() []RuleGroup { return slices.Clone(configurable) }

// Mode returns the enforcement mode of a rule group: Enforce unless the policy says otherwise;
// always Enforce for the groups without a mode.
func (p *Policy) Mode(g RuleGroup) v1alpha1.EnforcementMode {
	if m, ok := p.Enforcement[g]; ok && slices.Contains(configurable, g) {
		return m
	}
	return v1alpha1.Enforce
}

// Exempt tells whether the policy exempts a namespace: its objects are admitted unchanged and
// unchecked.
func (p *Policy) Exempt(namespace string) bool {
	return namespace != "" && slices.Contains(p.ExemptNamespaces, namespace)
}
