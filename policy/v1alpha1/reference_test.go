package v1alpha1

// The ISSPolicy field reference, docs/policy-reference.md, is rendered here from the CRD that
// controller-gen writes from types.go, so that the reference says what the API server enforces
// and cannot drift from it: make check fails when it is stale, make generate rewrites it. The
// CRD's schema is walked together with the Go types, which tell what the schema cannot (a string
// that is a duration, a struct of another API group).
//
// TestDocsLinks lives here too: it checks that every relative link of README.md and docs/
// points to a file (and heading) that exists, and that every doc is reachable from README.md.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the generated files")

const (
	crdFile       = "../../manifests/crds/iss.platform_isspolicies.yaml"
	referenceFile = "../../docs/policy-reference.md"
)

// webhookChecks are the checks iss-webhook makes on apply and on reload beyond the CRD's schema
// (policy.FromISSPolicy), by field path. The schema cannot express them, so they are listed
// here; the test fails when a path is not in the schema any more.
var webhookChecks = map[string]string{
	"spec.engines.labels":                   "keys are qualified names and values valid label values",
	"spec.engines.images":                   "each is written without tag or digest, with the registry host in lower case and without `:443`",
	"spec.engines.containerName":            "a DNS-1123 label",
	"spec.engines.profiles[].requests":      "each quantity above zero",
	"spec.engines.profiles[].limits":        "each quantity above zero",
	"spec.engines.defaultProfile":           "names one of the profiles in force, the default ones when `profiles` is not set",
	"spec.engines.secretMountPath":          "a clean absolute path",
	"spec.openbao.cacheTTL.hit":             "not negative",
	"spec.openbao.cacheTTL.miss":            "not negative",
	"spec.network.dns.namespace":            "a DNS-1123 label",
	"spec.network.dns.podSelector":          "not empty; keys are qualified names and values valid label values",
	"spec.network.wildcardBases.allow":      "each a lower-case DNS name of at least two labels, not also in `deny`",
	"spec.network.wildcardBases.deny":       "each a lower-case DNS name of at least two labels",
	"spec.network.privateRanges":            "each an IPv4 or IPv6 CIDR without zone or IPv4-mapped form, listed once",
	"spec.autoscaling.metric.selectorLabel": "a qualified name",
	"spec.autoscaling.metric.target":        "above zero",
	"spec.autoscaling.behavior":             "`stabilizationWindowSeconds` from 0 to 3600; `selectPolicy` `Max`, `Min` or `Disabled`; `scaleUp` lists at least one policy unless its `selectPolicy` is `Disabled`; each policy's `type` `Pods` or `Percent`, `value` above zero and `periodSeconds` from 1 to 1800; `scaleUp` (the API server's own when it is not set) keeps within `maxScaleUp`",
	"spec.autoscaling.allowedMetrics":       "not the saturation metric itself",
	"spec.autoscaling.scaleTargets":         "each `group` empty or a DNS-1123 subdomain; no kind twice",
	"spec.temporalWorkers.selector":         "a valid label selector, not empty: an empty one would make every Deployment a Temporal worker",
	"spec.provisioning.approvedBackends":    "each `scheme://bucket` with no path, query or user",
}

// notes say what a field's description in types.go leaves out and an admin needs to know, by
// field path. The test fails when a path is not in the schema any more.
var notes = map[string]string{
	"spec.engines.profiles[].requests":       "Quantities are strings here: quote whole numbers in YAML (`cpu: \"2\"`).",
	"spec.autoscaling.metric.type":           "An `External` metric gets a `Value` target, a `Pods` metric an `AverageValue` target.",
	"spec.exemptNamespaces":                  "What is still checked there: [Exempt namespaces](policy.md#exempt-namespaces).",
	"spec.trustedIdentities.serviceAccounts": "Keep the two defaults when you set this list: without them, deleting a namespace or an owner cannot delete its generated egress policies, and the namespace stays `Terminating`.",
	"spec.trustedIdentities.groups":          "On clusters set up by kubeadm (kind among them) the admin kubeconfig's user is in `kubeadm:cluster-admins`, not `system:masters`: add that group (keeping `system:masters`) if those admins should set namespaces' ISS labels.",
	"spec.engines.labels":                    "A label that is not in the default and has no `iss.platform/` prefix is admitted with a warning: add it to the `matchConditions` of the webhook configurations, or pods with only that label never reach the webhook.",
	"spec.engines.images":                    "Any tag, digest and spelling of the registry host matches. An empty list leaves the labels alone to recognise engines. The leader rewrites the webhook configurations' image tests to this list within ten seconds.",
	"spec.engines.profiles[].limits":         "The `ephemeral-storage` limit also bounds every disk-backed `emptyDir` and every volume claim template, and the `memory` limit every memory-backed `emptyDir`.",
	"spec.engines.defaultProfile":            "Set it too when the new `profiles` have none named `standard`.",
	"spec.secrets.environments[].store.kind": "Namespaced stores in app namespaces are denied unless `allowedStoreProviders` lists their provider, so `SecretStore` fits only where the platform allows its provider there.",
	"spec.secrets.allowedStoreProviders":     "Listing `vault` or `webhook` lets a namespace's own store reach OpenBao with credentials of its own, and `kubernetes` read other namespaces' Secrets with the store's service account: the path rules do not hold for such stores. The ISSPolicy is admitted with a warning then. Before the upgrade that introduced this field, audit the stores that exist: [Upgrade](operations.md#upgrade).",
	"spec.secrets.allowedGeneratorKinds":     "A generator kind that a newer External Secrets release adds is not accepted until iss-webhook lists it. The fields of the External Secrets kinds: [External Secrets fields](external-secrets-fields.md).",
	"spec.openbao":                           "See [The OpenBao existence check](rules.md#the-openbao-existence-check).",
	"spec.openbao.auth":                      "The files the webhook logs in with are its flags', not the policy's: [flags](flags.md).",
	"spec.network.fqdnBackend":               "The webhook asks the cluster which CRDs it serves when it starts: choosing a backend that was not served then denies engines until the webhook restarts.",
	"spec.network.gcGracePeriod":             "Keep it well above the time between admission and the pod's creation.",
	"spec.network.wildcardBases":             "Each entry covers the domain and the domains below it; `deny` wins over `allow` and over the list. Which list is built in, and how it is updated: [Egress](rules.md#egress-iss-001-section-4-network-policy).",
	"spec.network.privateRanges":             "A change applies to the generated objects of running engines within a collection interval. Cilium matches CIDR rules only against destinations outside the cluster; a ClusterNetworkPolicy matches pods too, so its DNS rule comes before the Deny.",
	"spec.temporalWorkers.selector":          "A key without the `iss.platform/` prefix is admitted with a warning: add it to the `matchConditions` of the webhook configurations.",
	"spec.autoscaling.behavior":              "Replaced as a whole when set.",
	"spec.autoscaling.maxScaleUp":            "What keeping within it means for HPAs with several scaling policies and each `selectPolicy`: [HorizontalPodAutoscalers](rules.md#horizontalpodautoscalers-iss-001-section-5).",
}

// TestGeneratedPolicyReference renders docs/policy-reference.md from the CRD and compares it
// with the checked-in file; with -update it rewrites the file.
func TestGeneratedPolicyReference(t *testing.T) {
	data, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatalf("%s: %v", crdFile, err)
	}
	r := &referenceRenderer{seen: map[string]bool{}}
	got := r.render(&crd)
	for _, e := range r.errs {
		t.Error(e)
	}
	for _, m := range []map[string]string{webhookChecks, notes} {
		for path := range m {
			if !r.seen[path] {
				t.Errorf("%s is not a field of the CRD: update webhookChecks and notes in reference_test.go", path)
			}
		}
	}
	golden.Check(t, referenceFile, []byte(got), *update)
}

// referenceRenderer renders the schema of one CRD version as markdown.
type referenceRenderer struct {
	// seen holds every field path rendered, to check the keys of webhookChecks and notes.
	seen map[string]bool
	// errs are the mismatches between the schema and the Go types.
	errs []string
}

// row is one field of a table.
type row struct {
	path, typ, dflt, meaning string
}

// longDefault is where a default leaves its table cell for a YAML block below the table.
const longDefault = 60

func (r *referenceRenderer) render(crd *apiextensionsv1.CustomResourceDefinition) string {
	var b strings.Builder
	var version *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == GroupVersion.Version {
			version = &crd.Spec.Versions[i]
		}
	}
	if version == nil || version.Schema == nil || version.Schema.OpenAPIV3Schema == nil {
		r.errs = append(r.errs, fmt.Sprintf("the CRD has no schema of version %s", GroupVersion.Version))
		return ""
	}
	root := version.Schema.OpenAPIV3Schema
	names := crd.Spec.Names
	fmt.Fprintf(&b, "# ISSPolicy field reference\n\n")
	fmt.Fprintf(&b, "<!-- Generated by make generate (TestGeneratedPolicyReference in policy/v1alpha1) from %s: do not edit. -->\n\n", strings.TrimPrefix(crdFile, "../../"))
	fmt.Fprintf(&b, "Generated by `make generate` from the CRD `%s`, which controller-gen writes from `policy/v1alpha1/types.go`. ", crd.Name)
	fmt.Fprintf(&b, "What the fields do, and how the policy is merged over the built-in default, is in [policy.md](policy.md).\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| group, version | `%s`, `%s` |\n", crd.Spec.Group, version.Name)
	fmt.Fprintf(&b, "| kind | `%s` (list `%s`), %s |\n", names.Kind, names.ListKind, strings.ToLower(string(crd.Spec.Scope))+"-scoped")
	fmt.Fprintf(&b, "| names | `%s`, `%s`; short names %s; categories %s |\n", names.Plural, names.Singular, codeList(names.ShortNames), codeList(names.Categories))
	if version.Subresources != nil && version.Subresources.Status != nil {
		fmt.Fprintf(&b, "| subresources | `status` |\n")
	}
	var cols []string
	for _, c := range version.AdditionalPrinterColumns {
		cols = append(cols, fmt.Sprintf("%s (`%s`)", c.Name, cell(c.JSONPath)))
	}
	if len(cols) > 0 {
		fmt.Fprintf(&b, "| `kubectl get` columns | %s |\n", strings.Join(cols, ", "))
	}
	for _, v := range root.XValidations {
		fmt.Fprintf(&b, "| rule | %s |\n", cell(celRule(v, "")))
	}
	fmt.Fprintf(&b, "\n%s\n\n", oneLine(root.Description))

	b.WriteString(`How to read the tables:

- Paths are those of the object: ` + "`spec.engines.profiles[].name`" + ` is the name of each item of
  the list ` + "`spec.engines.profiles`" + `. Every field is optional unless its type says ` + "`required`" + `; a section
  or field left out keeps its default, and a list or map that is set replaces the default one.
- ` + "`set`" + ` lists hold unique values; ` + "`map by name`" + ` lists hold items with unique names.
- Durations are Go durations (` + "`90s`, `5m`, `1h30m`" + `), printed as ` + "`5m0s`" + `. Quantities are Kubernetes
  quantities (` + "`500m`, `2`, `4Gi`" + `).
- The limits and CEL rules are the CRD's: the API server refuses an object that breaks them.
  "iss-webhook checks" are checked by the validating webhook ` + "`isspolicies.validate.iss.platform`" + `
  on apply and again when the policy is reloaded; ` + "`issctl check`" + ` runs those, not the schema.
- A default too long for its cell follows the table, as YAML.

`)

	spec, ok := root.Properties["spec"]
	if !ok {
		r.errs = append(r.errs, "the schema has no spec")
		return b.String()
	}
	specType := reflect.TypeOf(ISSPolicySpec{})
	fmt.Fprintf(&b, "## spec\n\n%s Default `%s`.\n\n", oneLine(spec.Description), defaultText(spec.Default))
	for _, name := range r.propertyOrder(&spec, specType, "spec") {
		prop := spec.Properties[name]
		path := "spec." + name
		var rows []row
		var defaults []row
		r.walk(path, &prop, fieldType(specType, name), slices.Contains(spec.Required, name), false, &rows, &defaults)
		fmt.Fprintf(&b, "### %s\n\n", path)
		writeTable(&b, rows)
		writeDefaults(&b, defaults)
	}

	if status, ok := root.Properties["status"]; ok {
		statusType := reflect.TypeOf(ISSPolicyStatus{})
		fmt.Fprintf(&b, "## status\n\n%s The webhook writes it; it is not set by hand.\n\n", oneLine(status.Description))
		var rows, defaults []row
		for _, name := range r.propertyOrder(&status, statusType, "status") {
			prop := status.Properties[name]
			r.walk("status."+name, &prop, fieldType(statusType, name), slices.Contains(status.Required, name), true, &rows, &defaults)
		}
		writeTable(&b, rows)
		writeDefaults(&b, defaults)
	}
	return b.String()
}

// walk adds the rows of a field and of every field under it. t is the field's Go type (nil when
// unknown); inStatus stops the walk at status.enforcedSpec, which has the fields of spec.
func (r *referenceRenderer) walk(path string, s *apiextensionsv1.JSONSchemaProps, t reflect.Type, required, inStatus bool, rows, defaults *[]row) {
	r.seen[path] = true
	t = deref(t)
	typ := typeText(s, t)
	if required {
		typ += ", required"
	}
	dflt := defaultText(s.Default)
	if len(dflt) > longDefault {
		*defaults = append(*defaults, row{path: path, dflt: defaultYAML(s.Default)})
		dflt = "below"
	} else if dflt != "" {
		dflt = "`" + dflt + "`"
	}
	var meaning []string
	if d := oneLine(s.Description); d != "" {
		meaning = append(meaning, d)
	}
	if n := notes[path]; n != "" {
		meaning = append(meaning, n)
	}
	if l := limits(s, ""); l != "" {
		meaning = append(meaning, "Limits: "+l+".")
	}
	for _, v := range s.XValidations {
		meaning = append(meaning, "Rule: "+celRule(v, path)+".")
	}
	if s.Type == "array" && s.Items != nil && s.Items.Schema != nil {
		for _, v := range s.Items.Schema.XValidations {
			meaning = append(meaning, "Rule on each item: "+celRule(v, path+"[]")+".")
		}
	}
	if c := webhookChecks[path]; c != "" {
		meaning = append(meaning, "iss-webhook checks: "+c+".")
	}
	if inStatus && path == "status.enforcedSpec" {
		meaning = append(meaning, "It has the fields of `spec`.")
		*rows = append(*rows, row{path: path, typ: typ, dflt: dflt, meaning: strings.Join(meaning, " ")})
		return
	}
	*rows = append(*rows, row{path: path, typ: typ, dflt: dflt, meaning: strings.Join(meaning, " ")})

	switch {
	case s.Type == "object" && len(s.Properties) > 0:
		for _, name := range r.propertyOrder(s, t, path) {
			prop := s.Properties[name]
			r.walk(path+"."+name, &prop, fieldType(t, name), slices.Contains(s.Required, name), inStatus, rows, defaults)
		}
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil && s.Items.Schema.Type == "object" && len(s.Items.Schema.Properties) > 0:
		var elem reflect.Type
		if t != nil && t.Kind() == reflect.Slice {
			elem = deref(t.Elem())
		}
		items := s.Items.Schema
		for _, name := range r.propertyOrder(items, elem, path+"[]") {
			prop := items.Properties[name]
			r.walk(path+"[]."+name, &prop, fieldType(elem, name), slices.Contains(items.Required, name), inStatus, rows, defaults)
		}
	}
}

// propertyOrder returns the property names of an object schema in the order of the Go struct's
// fields, which is the order types.go explains them in, or sorted when the Go type is unknown.
func (r *referenceRenderer) propertyOrder(s *apiextensionsv1.JSONSchemaProps, t reflect.Type, path string) []string {
	var names []string
	for name := range s.Properties {
		names = append(names, name)
	}
	slices.Sort(names)
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct {
		return names
	}
	order := jsonFieldOrder(t)
	for _, name := range names {
		if _, ok := order[name]; !ok {
			r.errs = append(r.errs, fmt.Sprintf("%s.%s is in the CRD but not in the Go type %s: run make generate", path, name, t))
		}
	}
	slices.SortStableFunc(names, func(a, b string) int { return order[a] - order[b] })
	return names
}

// jsonFieldOrder returns the JSON names of a struct's fields, inlined ones included, with their
// position.
func jsonFieldOrder(t reflect.Type) map[string]int {
	order := map[string]int{}
	var add func(reflect.Type)
	add = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" && (strings.Contains(opts, "inline") || f.Anonymous) && deref(f.Type).Kind() == reflect.Struct {
				add(deref(f.Type))
				continue
			}
			if name == "" {
				name = f.Name
			}
			order[name] = len(order)
		}
	}
	add(t)
	return order
}

// fieldType returns the Go type of the field with the JSON name, or nil.
func fieldType(t reflect.Type, name string) reflect.Type {
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return f.Type
		}
		if tag == "" && (strings.Contains(opts, "inline") || f.Anonymous) {
			if ft := fieldType(f.Type, name); ft != nil {
				return ft
			}
		}
	}
	return nil
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var (
	durationType = reflect.TypeOf(metav1.Duration{})
	quantityType = reflect.TypeOf(resource.Quantity{})
	timeType     = reflect.TypeOf(metav1.Time{})
	ownPackage   = reflect.TypeOf(ISSPolicy{}).PkgPath()
)

// typeText is the type column: the schema's type, refined by the Go type.
func typeText(s *apiextensionsv1.JSONSchemaProps, t reflect.Type) string {
	switch t {
	case durationType:
		return "duration"
	case quantityType:
		return "quantity"
	case timeType:
		return "time (RFC 3339)"
	}
	var typ string
	switch s.Type {
	case "string":
		typ = "string"
		if s.Format != "" {
			typ += " (" + s.Format + ")"
		}
	case "integer":
		typ = "integer"
		if s.Format != "" {
			typ = s.Format
		}
	case "boolean":
		typ = "bool"
	case "number":
		typ = "number"
	case "array":
		elem := "object"
		if s.Items != nil && s.Items.Schema != nil {
			var et reflect.Type
			if t != nil && t.Kind() == reflect.Slice {
				et = deref(t.Elem())
			}
			elem = typeText(s.Items.Schema, et)
		}
		typ = "[]" + elem
		switch {
		case s.XListType != nil && *s.XListType == "set":
			typ += ", set"
		case s.XListType != nil && *s.XListType == "map":
			typ += ", map by " + strings.Join(s.XListMapKeys, " and ")
		}
	case "object":
		switch {
		case s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
			typ = "map[string]" + typeText(s.AdditionalProperties.Schema, nil)
		default:
			typ = "object"
			if t != nil && t.Kind() == reflect.Struct && t.PkgPath() != ownPackage && t.PkgPath() != "" {
				typ += " (" + apiGroupOf(t.PkgPath()) + " " + t.Name() + ")"
			}
		}
	case "":
		if s.XIntOrString {
			typ = "int or string"
		}
	default:
		typ = s.Type
	}
	return typ
}

// apiGroupOf shortens the package path of a Kubernetes API type: k8s.io/api/autoscaling/v2 is
// autoscaling/v2.
func apiGroupOf(pkg string) string {
	for _, prefix := range []string{"k8s.io/api/", "k8s.io/apimachinery/pkg/apis/"} {
		if rest, ok := strings.CutPrefix(pkg, prefix); ok {
			return rest
		}
	}
	return pkg
}

// limits are the schema's bounds of a value, and of a list's items or a map's values.
func limits(s *apiextensionsv1.JSONSchemaProps, of string) string {
	var l []string
	add := func(f string, a ...any) { l = append(l, of+fmt.Sprintf(f, a...)) }
	if len(s.Enum) > 0 {
		var vals []string
		for _, e := range s.Enum {
			vals = append(vals, "`"+jsonScalar(e.Raw)+"`")
		}
		add("one of %s", strings.Join(vals, ", "))
	}
	num := func(f *float64) string { return strconv.FormatFloat(*f, 'f', -1, 64) }
	switch {
	case s.Minimum != nil && s.Maximum != nil && !s.ExclusiveMinimum && !s.ExclusiveMaximum:
		add("from %s to %s", num(s.Minimum), num(s.Maximum))
	default:
		if s.Minimum != nil {
			if s.ExclusiveMinimum {
				add("above %s", num(s.Minimum))
			} else {
				add("at least %s", num(s.Minimum))
			}
		}
		if s.Maximum != nil {
			if s.ExclusiveMaximum {
				add("below %s", num(s.Maximum))
			} else {
				add("at most %s", num(s.Maximum))
			}
		}
	}
	add2 := func(min, max *int64, unit string) {
		switch {
		case min != nil && max != nil:
			add("%d to %d %s", *min, *max, unit)
		case min != nil && *min == 1 && unit == "characters":
			add("not empty")
		case min != nil:
			add("at least %d %s", *min, unit)
		case max != nil:
			add("at most %d %s", *max, unit)
		}
	}
	add2(s.MinLength, s.MaxLength, "characters")
	add2(s.MinItems, s.MaxItems, "items")
	add2(s.MinProperties, s.MaxProperties, "entries")
	if s.Pattern != "" && !s.XIntOrString {
		add("matches `%s`", s.Pattern)
	}
	if s.Type == "array" && s.Items != nil && s.Items.Schema != nil && s.Items.Schema.Type != "object" {
		if il := limits(s.Items.Schema, "each "); il != "" {
			l = append(l, il)
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		if vl := limits(s.AdditionalProperties.Schema, "each value "); vl != "" {
			l = append(l, vl)
		}
	}
	return strings.Join(l, "; ")
}

// celRule renders an x-kubernetes-validations rule: its message, where the API server reports
// it, and the CEL expression.
func celRule(v apiextensionsv1.ValidationRule, path string) string {
	var b strings.Builder
	msg := v.Message
	if msg == "" {
		msg = "the rule must hold"
	}
	fmt.Fprintf(&b, "%q", msg)
	if v.FieldPath != "" {
		at := v.FieldPath
		if path != "" {
			at = path + v.FieldPath
		}
		fmt.Fprintf(&b, ", reported at `%s`", at)
	}
	fmt.Fprintf(&b, " (CEL `%s`)", oneLine(v.Rule))
	return b.String()
}

// defaultText is a default as compact JSON, a string without its quotes.
func defaultText(d *apiextensionsv1.JSON) string {
	if d == nil || len(d.Raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, d.Raw); err != nil {
		return string(d.Raw)
	}
	return jsonScalar(buf.Bytes())
}

// jsonScalar returns a JSON string without its quotes, anything else as it is.
func jsonScalar(raw []byte) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

// defaultYAML is a long default as YAML (keys sorted).
func defaultYAML(d *apiextensionsv1.JSON) string {
	y, err := yaml.JSONToYAML(d.Raw)
	if err != nil {
		return string(d.Raw) + "\n"
	}
	return string(y)
}

// oneLine joins the lines of a description, so that it fits a table cell.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell escapes what would end a table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

func codeList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = "`" + s + "`"
	}
	return strings.Join(q, ", ")
}

func writeTable(b *strings.Builder, rows []row) {
	b.WriteString("| field | type | default | meaning and limits |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", r.path, cell(r.typ), cell(r.dflt), cell(r.meaning))
	}
	b.WriteString("\n")
}

func writeDefaults(b *strings.Builder, defaults []row) {
	for _, d := range defaults {
		fmt.Fprintf(b, "Default of `%s`:\n\n```yaml\n%s```\n\n", d.path, d.dflt)
	}
}

// TestDocsLinks checks every relative link of README.md and docs/*.md: the file it points to
// exists, and so does the heading of its #fragment. It also checks that every doc can be
// reached from README.md by following links, so that none is left behind.
func TestDocsLinks(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{"../../README.md"}, docs...)
	links := map[string][]string{} // file -> the markdown files it links to
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range markdownLinks(string(data)) {
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			rel, fragment, _ := strings.Cut(target, "#")
			dest := file
			if rel != "" {
				dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(rel))
			}
			name := strings.TrimPrefix(file, "../../")
			if _, err := os.Stat(dest); err != nil {
				t.Errorf("%s links to %s, which does not exist", name, target)
				continue
			}
			if !strings.HasSuffix(dest, ".md") {
				continue
			}
			links[filepath.Clean(file)] = append(links[filepath.Clean(file)], filepath.Clean(dest))
			if fragment == "" {
				continue
			}
			destData, err := os.ReadFile(dest)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(headingAnchors(string(destData)), fragment) {
				t.Errorf("%s links to %s, but %s has no heading with the anchor #%s", name, target, strings.TrimPrefix(dest, "../../"), fragment)
			}
		}
	}
	reached := map[string]bool{}
	queue := []string{filepath.Clean("../../README.md")}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if reached[f] {
			continue
		}
		reached[f] = true
		queue = append(queue, links[f]...)
	}
	for _, d := range docs {
		if !reached[filepath.Clean(d)] {
			t.Errorf("%s cannot be reached from README.md by its links", strings.TrimPrefix(d, "../../"))
		}
	}
}

var (
	fencedBlock = regexp.MustCompile("(?ms)^[ \t]*(```|~~~).*?^[ \t]*(```|~~~)[ \t]*$")
	codeSpan    = regexp.MustCompile("`+[^`]*`+")
	inlineLink  = regexp.MustCompile(`\]\(([^)\s]*)(?:\s+"[^"]*")?\)`)
	refLink     = regexp.MustCompile(`(?m)^[ \t]*\[[^\]]+\]:[ \t]*(\S+)`)
	htmlComment = regexp.MustCompile(`(?s)<!--.*?-->`)
)

// markdownLinks returns the targets of the inline and reference links of a markdown text,
// leaving out code blocks, code spans and comments, where brackets are no links.
func markdownLinks(text string) []string {
	text = fencedBlock.ReplaceAllString(text, "")
	text = htmlComment.ReplaceAllString(text, "")
	text = codeSpan.ReplaceAllString(text, "")
	var targets []string
	for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
		targets = append(targets, strings.Trim(m[1], "<>"))
	}
	for _, m := range refLink.FindAllStringSubmatch(text, -1) {
		targets = append(targets, m[1])
	}
	return targets
}

var heading = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$`)

// headingAnchors returns the anchors GitHub gives the headings of a markdown text: lower case,
// punctuation dropped, spaces turned into hyphens, and -1, -2... after repeats.
func headingAnchors(text string) []string {
	text = fencedBlock.ReplaceAllString(text, "")
	var anchors []string
	count := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(text, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := count[a]; n > 0 {
			anchors = append(anchors, fmt.Sprintf("%s-%d", a, n))
		} else {
			anchors = append(anchors, a)
		}
		count[a]++
	}
	return anchors
}
