package main

import (
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// policyCommand runs "issctl policy SUBCOMMAND".
func policyCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "default" {
		fmt.Fprint(stderr, `Usage: issctl policy default

Prints the built-in default policy (ISS-001 as written) as the ISSPolicy "default", every field
set. Edit it and apply it with kubectl apply -f, or check manifests with it: issctl check --policy.
`)
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return exitConform
		}
		return exitUsage
	}
	data, err := yaml.Marshal(policy.ToISSPolicy(policy.Default()))
	if err != nil {
		fmt.Fprintln(stderr, "issctl policy default:", err)
		return exitUsage
	}
	fmt.Fprint(stdout, "# The built-in default policy of iss-webhook: ISS-001 as written. Without an ISSPolicy the\n# webhook enforces exactly this; every field of an ISSPolicy defaults to the value here.\n")
	_, _ = stdout.Write(data)
	return exitConform
}

// loadPolicyFile reads an ISSPolicy manifest and returns the policy it describes, or every
// invalid field.
func loadPolicyFile(path string) (*policy.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := &v1alpha1.ISSPolicy{}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if obj.Kind != "ISSPolicy" || obj.APIVersion != v1alpha1.GroupVersion.String() {
		return nil, fmt.Errorf("%s: want kind ISSPolicy of %s, got %s of %s", path, v1alpha1.GroupVersion, obj.Kind, obj.APIVersion)
	}
	p, errs := policy.FromISSPolicy(&obj.Spec)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", path, errs.ToAggregate())
	}
	return p, nil
}
