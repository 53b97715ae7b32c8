package policy

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// GeneratedNamePrefix starts the name of every generated egress object.
const GeneratedNamePrefix = "iss-egress-"

// ValidateUserNetworkPolicy checks a NetworkPolicy, CiliumNetworkPolicy or
// ClusterNetworkPolicy that someone other than the webhook writes. Network policies add up, so
// one that allows egress from engines would undo the engine's generated policy (ISS-001 section
// 4): a policy with egress rules must exclude engines from its selector. The names and the label
// of generated objects are reserved, so that nobody can stand in for them.
func ValidateUserNetworkPolicy(obj *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	if strings.HasPrefix(obj.GetName(), GeneratedNamePrefix) {
		errs = append(errs, field.Forbidden(meta.Child("name"), fmt.Sprintf("names starting with %q are reserved for the egress policies iss-webhook generates: choose another name", GeneratedNamePrefix)))
	}
	if obj.GetLabels()[LabelManagedBy] == ManagedByValue {
		errs = append(errs, field.Forbidden(meta.Child("labels").Key(LabelManagedBy), fmt.Sprintf("%s: %s marks the objects iss-webhook generates: remove it", LabelManagedBy, ManagedByValue)))
	}
	switch obj.GetKind() {
	case "NetworkPolicy":
		errs = append(errs, checkEgressSelector(obj.Object, field.NewPath("spec"), "podSelector", "egress")...)
	case "CiliumNetworkPolicy":
		errs = append(errs, checkEgressSelector(obj.Object, field.NewPath("spec"), "endpointSelector", "egress")...)
		specs, _, _ := unstructured.NestedSlice(obj.Object, "specs")
		for i, s := range specs {
			if m, ok := s.(map[string]any); ok {
				errs = append(errs, checkEgressSelector(map[string]any{"spec": m}, field.NewPath("specs").Index(i), "endpointSelector", "egress")...)
			}
		}
	}
	return errs
}

// checkEgressSelector denies egress rules under a selector that does not exclude engines.
func checkEgressSelector(obj map[string]any, specPath *field.Path, selectorField, egressField string) field.ErrorList {
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		return nil
	}
	if rules, _ := spec[egressField].([]any); len(rules) == 0 {
		return nil
	}
	exprs, _, _ := unstructured.NestedSlice(spec, selectorField, "matchExpressions")
	for _, e := range exprs {
		if m, ok := e.(map[string]any); ok && m["key"] == LabelEgressPolicy && m["operator"] == "DoesNotExist" {
			return nil
		}
	}
	return field.ErrorList{field.Forbidden(specPath.Child(selectorField), fmt.Sprintf(
		"a policy with egress rules must not select Dagger engines, whose egress iss-webhook restricts (ISS-001 section 4): add {key: %s, operator: DoesNotExist} to %s.matchExpressions",
		LabelEgressPolicy, selectorField))}
}
