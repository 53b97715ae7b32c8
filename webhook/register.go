package webhook

import (
	"k8s.io/apimachinery/pkg/runtime"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/iss-platform/iss-webhook/policy"
)

// The paths the webhook serves. The webhook configurations in manifests/webhook name them.
const (
	// MutateEnginePodsPath serves the mutating webhook for pods.
	MutateEnginePodsPath = "/mutate-engine-pods"
	// ValidateEnginePodsPath serves the validating webhook for pods and pods/resize.
	ValidateEnginePodsPath = "/validate-engine-pods"
	// ValidateNetworkPoliciesPath serves the validating webhook for network policies.
	ValidateNetworkPoliciesPath = "/validate-network-policies"
	// MutateExternalSecretsPath serves the mutating webhook for ExternalSecrets and PushSecrets.
	MutateExternalSecretsPath = "/mutate-external-secrets"
	// ValidateSecretsPath serves the validating webhook for ExternalSecrets, PushSecrets and SecretStores.
	ValidateSecretsPath = "/validate-secrets"
	// ValidateNamespacesPath serves the validating webhook for Namespaces.
	ValidateNamespacesPath = "/validate-namespaces"
	// ValidateWorkloadsPath serves the validating webhook for the workloads that create pods.
	ValidateWorkloadsPath = "/validate-workloads"
	// MutateHPAsPath and ValidateHPAsPath serve the webhooks for HorizontalPodAutoscalers.
	MutateHPAsPath   = "/mutate-hpas"
	ValidateHPAsPath = "/validate-hpas"
	// ValidateProvisioningPath serves the validating webhook for Pulumi Stacks and Terraforms.
	ValidateProvisioningPath = "/validate-provisioning"
	// ValidateISSPoliciesPath serves the validating webhook for ISSPolicies.
	ValidateISSPoliciesPath = "/validate-isspolicies"
)

// Options are what the handlers need.
type Options struct {
	// Policies hands out the policy in force.
	Policies policy.Provider
	// Metrics counts decisions.
	Metrics *Metrics
	// Egress writes generated egress objects; nil writes none.
	Egress EgressWriter
	// Self is the user name the webhook authenticates as to the API server.
	Self string
	// Namespaces looks up namespaces' ISS labels.
	Namespaces NamespaceLookup
	// OpenBao checks that ExternalSecret paths exist; nil never checks.
	OpenBao PathVerifier
	// Engines counts the running engines a generated policy selects; nil never checks.
	Engines EngineLookup
}

// Handlers maps each webhook path to its admission webhook.
func Handlers(scheme *runtime.Scheme, o Options) map[string]*admission.Webhook {
	decoder := admission.NewDecoder(scheme)
	return map[string]*admission.Webhook{
		MutateEnginePodsPath:        {Handler: NewEnginePodDefaulter(o.Policies, decoder, o.Metrics, o.Egress)},
		ValidateEnginePodsPath:      {Handler: NewEnginePodValidator(o.Policies, decoder, o.Metrics)},
		ValidateNetworkPoliciesPath: {Handler: NewNetworkPolicyGuard(o.Policies, o.Metrics, o.Self, o.Engines)},
		MutateExternalSecretsPath:   {Handler: InitiatorDefaulter{}},
		ValidateSecretsPath:         {Handler: NewSecretsValidator(o.Policies, o.Namespaces, o.Metrics, o.OpenBao)},
		ValidateNamespacesPath:      {Handler: NewNamespaceValidator(o.Policies, o.Metrics)},
		ValidateWorkloadsPath:       {Handler: NewWorkloadValidator(o.Policies, decoder, o.Metrics)},
		MutateHPAsPath:              {Handler: NewHPADefaulter(o.Policies, decoder, o.Metrics)},
		ValidateHPAsPath:            {Handler: NewHPAValidator(o.Policies, decoder, o.Metrics)},
		ValidateProvisioningPath:    {Handler: NewProvisioningValidator(o.Policies, o.Metrics)},
		ValidateISSPoliciesPath:     {Handler: NewISSPolicyValidator(decoder)},
	}
}

// Register adds every handler to the webhook server.
func Register(server ctrlwebhook.Server, scheme *runtime.Scheme, o Options) {
	for path, hook := range Handlers(scheme, o) {
		server.Register(path, hook)
	}
}
