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
)

// Handlers maps each webhook path to its admission webhook.
func Handlers(scheme *runtime.Scheme, policies policy.Provider, metrics *Metrics) map[string]*admission.Webhook {
	decoder := admission.NewDecoder(scheme)
	return map[string]*admission.Webhook{
		MutateEnginePodsPath:   {Handler: NewEnginePodDefaulter(policies, decoder, metrics)},
		ValidateEnginePodsPath: {Handler: NewEnginePodValidator(policies, decoder, metrics)},
	}
}

// Register adds every handler to the webhook server.
func Register(server ctrlwebhook.Server, scheme *runtime.Scheme, policies policy.Provider, metrics *Metrics) {
	for path, hook := range Handlers(scheme, policies, metrics) {
		server.Register(path, hook)
	}
}
