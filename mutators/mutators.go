// Package mutators holds the changes the webhook makes to admitted objects, as small pure
// functions on typed objects. Each one is deterministic and idempotent: applied to its own output
// it changes nothing, so that reinvocation by the API server and repeated applies are stable.
// They import no admission or HTTP code; the webhook diffs the typed object before and after to
// build the JSON patch.
package mutators

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/iss-platform/iss-webhook/policy"
)

// EnginePodMutator is one change to an engine pod. Mutate reports whether it changed anything.
type EnginePodMutator struct {
	// Name identifies the mutator in logs and metrics.
	Name string
	// Mutate changes pod in place for the engine that the policy recognised in it.
	Mutate func(pod *corev1.Pod, eng policy.Engine) bool
}

// EnginePod returns the engine pod mutators in the order in which they run. The order is fixed so
// that the same pod always gets the same patch.
func EnginePod() []EnginePodMutator {
	return []EnginePodMutator{
		{Name: "profile-resources", Mutate: ProfileResources},
		{Name: "secret-volume", Mutate: SecretVolume},
		{Name: "egress-label", Mutate: EgressLabel},
	}
}

// MutateEnginePod applies every engine pod mutator in order and returns the names of those that
// changed the pod.
func MutateEnginePod(pod *corev1.Pod, eng policy.Engine) []string {
	var changed []string
	for _, m := range EnginePod() {
		if m.Mutate(pod, eng) {
			changed = append(changed, m.Name)
		}
	}
	return changed
}
