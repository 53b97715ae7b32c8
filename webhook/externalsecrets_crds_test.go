package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
	"github.com/iss-platform/iss-webhook/policy"
)

// The External Secrets CRDs that the local control plane installs (devenv.DefaultCRDSources,
// from the Go module of the pinned release) are read here, so that an upgrade of External
// Secrets fails these tests wherever it adds what the rules have not classified: a field of a
// governed kind's spec, a value of a field with variants, a store provider, a kind or a served
// version.

// crdSchema is the part of a CRD's OpenAPI schema the tests read.
type crdSchema struct {
	Type                 string               `json:"type"`
	Properties           map[string]crdSchema `json:"properties"`
	Items                *crdSchema           `json:"items"`
	Enum                 []any                `json:"enum"`
	AdditionalProperties json.RawMessage      `json:"additionalProperties"`
	PreserveUnknown      bool                 `json:"x-kubernetes-preserve-unknown-fields"`
}

// crd is the part of a CustomResourceDefinition the tests read.
type crd struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind   string `json:"kind"`
			Plural string `json:"plural"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name   string `json:"name"`
			Served bool   `json:"served"`
			Schema struct {
				OpenAPIV3Schema crdSchema `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// servedVersions returns the CRD's served versions.
func (c *crd) servedVersions() []string {
	var out []string
	for _, v := range c.Spec.Versions {
		if v.Served {
			out = append(out, v.Name)
		}
	}
	return out
}

// externalSecretsCRDs reads the External Secrets CRDs of devenv.DefaultCRDSources, by kind.
func externalSecretsCRDs(t *testing.T) map[string]*crd {
	t.Helper()
	var source *devenv.CRDSource
	for _, s := range devenv.DefaultCRDSources() {
		if s.Module == "github.com/external-secrets/external-secrets" {
			source = &s
		}
	}
	if source == nil {
		t.Fatal("devenv.DefaultCRDSources has no External Secrets module")
	}
	paths, err := source.Paths(context.Background(), "..")
	if err != nil {
		t.Fatalf("reading the External Secrets CRDs (go mod download needs the module cache or the network): %v", err)
	}
	crds := map[string]*crd{}
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c := &crd{}
		if err := yaml.Unmarshal(raw, c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		crds[c.Spec.Names.Kind] = c
	}
	return crds
}

// TestExternalSecretsSchemaIsClassified: every field of every served version of the governed
// External Secrets kinds' specs is classified by policy.SpecRule (objects opaque or their fields
// listed, lists with their items, every value of a field with variants known), and the rules
// classify no field that no served version has.
func TestExternalSecretsSchemaIsClassified(t *testing.T) {
	crds := externalSecretsCRDs(t)
	for _, kind := range []string{"ExternalSecret", "PushSecret", "ClusterExternalSecret", "ClusterPushSecret", "SecretStore"} {
		c := crds[kind]
		if c == nil {
			t.Errorf("External Secrets has no CRD of %s any more: review its rules", kind)
			continue
		}
		rule := policy.SpecRule(kind)
		seen := map[string]bool{}
		for _, v := range c.Spec.Versions {
			if !v.Served {
				continue
			}
			spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
			if !ok {
				t.Errorf("%s %s has no spec", kind, v.Name)
				continue
			}
			for _, problem := range classify(spec, rule, "spec", seen) {
				t.Errorf("%s %s: %s", kind, v.Name, problem)
			}
		}
		for _, path := range classifiedPaths(rule, "spec") {
			if !seen[path] {
				t.Errorf("%s: the rules classify %s, which no served version has: remove it from policy.SpecRule", kind, path)
			}
		}
	}
}

// classify compares a CRD's schema with the rule of the field at path, and returns what the
// rule leaves unclassified; seen collects the paths the schema has.
func classify(s crdSchema, rule *policy.FieldRule, path string, seen map[string]bool) []string {
	seen[path] = true
	if rule == nil {
		return []string{fmt.Sprintf("%s is not classified: add it to policy.SpecRule (free, checked, namespace Secret or denied) once its effect is known", path)}
	}
	if rule.Opaque {
		return nil
	}
	var problems []string
	for _, v := range s.Enum {
		if value := fmt.Sprint(v); !slices.Contains(rule.Values, value) {
			problems = append(problems, fmt.Sprintf("%s may be %q, which policy.SpecRule does not list: review what it does, then list it", path, value))
		}
	}
	if s.PreserveUnknown || (len(s.AdditionalProperties) > 0 && string(s.AdditionalProperties) != "false") {
		problems = append(problems, fmt.Sprintf("%s holds fields of any name: classify it as opaque, if nothing below it reads a secret", path))
	}
	if len(s.Properties) > 0 && rule.Fields == nil {
		problems = append(problems, fmt.Sprintf("%s is an object, which the rules read as a value: list its fields", path))
	}
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		if rule.Fields == nil {
			break
		}
		problems = append(problems, classify(s.Properties[name], rule.Fields[name], path+"."+name, seen)...)
	}
	switch {
	case s.Items != nil && rule.Items == nil:
		problems = append(problems, fmt.Sprintf("%s is a list, which the rules read as something else", path))
	case s.Items != nil:
		problems = append(problems, classify(*s.Items, rule.Items, path+"[]", seen)...)
	case s.Items == nil && rule.Items != nil:
		problems = append(problems, fmt.Sprintf("%s is not a list in the schema, but the rules read it as one", path))
	}
	return problems
}

// classifiedPaths returns the paths of every field a rule classifies.
func classifiedPaths(rule *policy.FieldRule, path string) []string {
	out := []string{path}
	for name, child := range rule.Fields {
		out = append(out, classifiedPaths(child, path+"."+name)...)
	}
	if rule.Items != nil {
		out = append(out, classifiedPaths(rule.Items, path+"[]")...)
	}
	return out
}

// notGoverned are the External Secrets kinds that GovernedKinds leaves out, and why.
var notGoverned = map[string]string{
	// Cluster-scoped, written by cluster admins; every reference to one is denied, so it makes
	// nothing for an app's objects.
	policy.ClusterGeneratorKind: "every reference to it is denied",
}

// TestExternalSecretsKindsAreGoverned: every kind of External Secrets (external-secrets.io and
// generators.external-secrets.io) is governed in every version it serves, or listed in
// notGoverned; every namespaced generator is one policy.GeneratorKinds knows; every provider of
// SecretStores and ClusterSecretStores is one policy.StoreProviders knows, and no other.
func TestExternalSecretsKindsAreGoverned(t *testing.T) {
	crds := externalSecretsCRDs(t)
	generators := map[string]policy.GeneratorKind{}
	for _, g := range policy.GeneratorKinds() {
		generators[g.Kind] = g
	}
	for _, kind := range slices.Sorted(maps.Keys(crds)) {
		c := crds[kind]
		if _, ok := notGoverned[kind]; ok {
			continue
		}
		k := FindKind(c.Spec.Group, kind)
		if k == nil {
			t.Errorf("%s %s is not a governed kind: add it to GovernedKinds with its rules (a new kind of External Secrets may read or write secrets)", c.Spec.Group, kind)
			continue
		}
		if k.Resource != c.Spec.Names.Plural || string(k.Scope) != c.Spec.Scope {
			t.Errorf("%s: governed as %s (%s), served as %s (%s)", kind, k.Resource, k.Scope, c.Spec.Names.Plural, c.Spec.Scope)
		}
		if served := c.servedVersions(); !slices.Equal(sortedCopy(k.Versions), sortedCopy(served)) {
			t.Errorf("%s: governed in versions %v, served in %v", kind, k.Versions, served)
		}
		if c.Spec.Group == policy.GeneratorGroup && kind != "GeneratorState" {
			if g, ok := generators[kind]; !ok || g.Resource != c.Spec.Names.Plural {
				t.Errorf("generator %s is not in policy.GeneratorKinds: add it, with what it reads", kind)
			}
			delete(generators, kind)
		}
	}
	for kind := range generators {
		t.Errorf("policy.GeneratorKinds lists %s, which External Secrets does not serve any more", kind)
	}
	for _, kind := range []string{"SecretStore", "ClusterSecretStore"} {
		for _, v := range crds[kind].Spec.Versions {
			if !v.Served {
				continue
			}
			providers := slices.Sorted(maps.Keys(v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["provider"].Properties))
			known := policy.StoreProviders()
			for _, p := range providers {
				if !slices.Contains(known, p) {
					t.Errorf("%s %s has the provider %q, which policy.StoreProviders does not list: review what it reads, then list it", kind, v.Name, p)
				}
			}
			for _, p := range known {
				if !slices.Contains(providers, p) {
					t.Errorf("policy.StoreProviders lists %q, which %s %s does not have any more", p, kind, v.Name)
				}
			}
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
