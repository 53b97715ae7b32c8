package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// TerraformBackend is the backend block of a Terraform's spec.backendConfig.customConfiguration,
// as OpenTofu and Terraform read the file tofu-controller writes from it.
type TerraformBackend struct {
	// Type is the backend's label: "s3", "gcs", "azurerm", "kubernetes", ...
	Type string
	// Attributes are the block's attributes that are literals, by name.
	Attributes map[string]cty.Value
	// Expressions are the block's other attributes (variables, functions, interpolations), by
	// name, each with the problem it is: the state's location is read at admission, so it must
	// be written out. They are kept apart so that the caller first says whether the attribute
	// is admitted at all.
	Expressions map[string]BackendProblem
	// Blocks are the problems of the blocks nested in the backend block, none of which is
	// admitted (assume_role, endpoints written as a block).
	Blocks []BackendProblem
	// Line is the block's line in customConfiguration, counted from 1.
	Line int
}

// BackendProblem is one reason a backend configuration cannot be admitted.
type BackendProblem struct {
	// Line is where in customConfiguration the problem is, counted from 1; 0 for the whole.
	Line int
	// Text is the source text at fault, shortened.
	Text string
	// Detail says what is wrong and what to write instead.
	Detail string
}

// backendFilePrefix and backendFileSuffix are what tofu-controller writes around
// customConfiguration into backend_override.tf: the configuration is the body of a terraform
// block, and the file is read as the controller writes it, so that a brace that closes that
// block early and starts other blocks is seen as the runner would see it.
const (
	backendFilePrefix = "\nterraform {\n  "
	backendFileSuffix = "\n}\n"
	// backendFileLines is how many lines the prefix adds before customConfiguration's first.
	backendFileLines = 2
)

// backendAttribute is what an admitted backend attribute holds.
type backendAttribute struct {
	typ cty.Type
	// location marks the attributes that say where the state lives, named in denials.
	location bool
}

// backendAttributes are the attributes admitted in each backend the platform approves: where the
// state lives, its encryption and locking, and nothing that changes how the store is reached.
// Endpoints (endpoint, endpoints, *_endpoint, metadata_host, environment), path-style
// addressing and TLS settings (use_path_style, force_path_style, insecure, custom_ca_bundle,
// skip_*), shared configuration files and profiles (which can name endpoints), and credentials in
// the spec (access_key, secret_key, sas_token, credentials, ...) are not admitted: the runner's
// service account brings the credentials.
var backendAttributes = map[string]map[string]backendAttribute{
	"s3": {
		"bucket": {cty.String, true}, "key": {cty.String, false}, "region": {cty.String, false},
		"encrypt": {cty.Bool, false}, "kms_key_id": {cty.String, false},
		"use_lockfile": {cty.Bool, false}, "dynamodb_table": {cty.String, false},
		"workspace_key_prefix": {cty.String, false}, "max_retries": {cty.Number, false},
	},
	"gcs": {
		"bucket": {cty.String, true}, "prefix": {cty.String, false}, "kms_encryption_key": {cty.String, false},
	},
	"azurerm": {
		"storage_account_name": {cty.String, true}, "container_name": {cty.String, true}, "key": {cty.String, false},
		"resource_group_name": {cty.String, false}, "subscription_id": {cty.String, false},
		"tenant_id": {cty.String, false}, "client_id": {cty.String, false},
		"use_azuread_auth": {cty.Bool, false}, "use_oidc": {cty.Bool, false}, "use_msi": {cty.Bool, false},
		"use_aks_workload_identity": {cty.Bool, false},
	},
}

// ParseTerraformBackend reads customConfiguration as the runner reads the backend_override.tf
// that tofu-controller writes from it, with the HCL parser Terraform and OpenTofu use. It returns
// the one backend block, or every problem found: a syntax error (a duplicate attribute is one),
// anything but exactly one terraform block in the file (a brace that closes it early), anything
// but exactly one backend block in it (no cloud, encryption or other block, which would change
// where the state goes or how it is encrypted), a nested block or an expression that is not a
// literal in the backend block (variables, functions, interpolations, conditionals: the state's
// location is read at admission, so it must be written out), which it returns in the backend's
// Expressions. Attributes are not judged here (see ProvisioningPolicy.ValidateTerraform), so
// that the caller names the approved values.
func ParseTerraformBackend(custom string) (*TerraformBackend, []BackendProblem) {
	src := []byte(backendFilePrefix + custom + backendFileSuffix)
	file, diags := hclsyntax.ParseConfig(src, "backend_override.tf", hcl.InitialPos)
	var problems []BackendProblem
	lines := strings.Count(custom, "\n") + 1
	line := func(r hcl.Range) int {
		return min(max(r.Start.Line-backendFileLines, 1), lines)
	}
	text := func(r hcl.Range) string {
		if r.Start.Byte < 0 || r.End.Byte > len(src) || r.Start.Byte > r.End.Byte {
			return ""
		}
		return shortText(string(src[r.Start.Byte:r.End.Byte]))
	}
	if diags.HasErrors() {
		for _, d := range diags {
			if d.Severity != hcl.DiagError {
				continue
			}
			p := BackendProblem{Detail: strings.TrimSuffix(d.Summary, ".") + ": " + d.Detail}
			if d.Subject != nil {
				p.Line, p.Text = line(*d.Subject), text(*d.Subject)
			}
			// One mistake can be reported twice at the same place.
			if !slices.Contains(problems, p) {
				problems = append(problems, p)
			}
		}
		return nil, problems
	}
	body, ok := file.Body.(*hclsyntax.Body)
	if !ok {
		return nil, []BackendProblem{{Detail: "not HCL native syntax"}}
	}
	// The controller's terraform block is the only thing in the file; anything beside it was
	// written by a brace in customConfiguration that closed it early.
	for _, name := range sortedAttributeNames(body.Attributes) {
		a := body.Attributes[name]
		problems = append(problems, BackendProblem{Line: line(a.SrcRange), Text: text(a.SrcRange),
			Detail: "is outside the terraform block that customConfiguration is the body of (a closing brace too many): write only the backend block"})
	}
	var tf *hclsyntax.Block
	for _, b := range body.Blocks {
		if tf == nil && b.Type == "terraform" && len(b.Labels) == 0 {
			tf = b
			continue
		}
		problems = append(problems, BackendProblem{Line: line(b.DefRange()), Text: text(b.DefRange()),
			Detail: "is outside the terraform block that customConfiguration is the body of (a closing brace too many): write only the backend block"})
	}
	if tf == nil {
		return nil, append(problems, BackendProblem{Detail: "holds no terraform block: write only the backend block"})
	}
	for _, name := range sortedAttributeNames(tf.Body.Attributes) {
		a := tf.Body.Attributes[name]
		problems = append(problems, BackendProblem{Line: line(a.SrcRange), Text: text(a.SrcRange),
			Detail: fmt.Sprintf("%s is a setting of the terraform block, not of the backend: write only the backend block here, and settings such as required_version in the module", name)})
	}
	var backends []*hclsyntax.Block
	for _, b := range tf.Body.Blocks {
		if b.Type == "backend" {
			backends = append(backends, b)
			continue
		}
		detail := fmt.Sprintf("a %s block in the terraform block is not admitted here: write only the backend block", b.Type)
		switch b.Type {
		case "cloud":
			detail = "a cloud block keeps the state in HCP Terraform or Terraform Enterprise, not in an approved bucket: write a backend block instead"
		case "encryption":
			detail = "an encryption block changes how the state is encrypted, with keys the platform does not hold: the approved buckets encrypt the state; remove it"
		}
		problems = append(problems, BackendProblem{Line: line(b.DefRange()), Text: text(b.DefRange()), Detail: detail})
	}
	switch {
	case len(backends) == 0:
		problems = append(problems, BackendProblem{Detail: `holds no backend block: write exactly one, such as backend "s3" { ... }`})
	case len(backends) > 1:
		for _, b := range backends[1:] {
			problems = append(problems, BackendProblem{Line: line(b.DefRange()), Text: text(b.DefRange()),
				Detail: fmt.Sprintf("a second backend block (the first is on line %d): keep exactly one", line(backends[0].DefRange()))})
		}
	}
	if len(backends) == 0 {
		return nil, problems
	}
	b := backends[0]
	if len(b.Labels) != 1 {
		return nil, append(problems, BackendProblem{Line: line(b.DefRange()), Text: text(b.DefRange()), Detail: `a backend block has exactly one label, its type, such as backend "s3"`})
	}
	backend := &TerraformBackend{Type: b.Labels[0], Attributes: map[string]cty.Value{}, Expressions: map[string]BackendProblem{}, Line: line(b.DefRange())}
	for _, nested := range b.Body.Blocks {
		backend.Blocks = append(backend.Blocks, BackendProblem{Line: line(nested.DefRange()), Text: text(nested.DefRange()),
			Detail: fmt.Sprintf("a %s block in the backend block is not admitted: it names endpoints, roles or credentials, which the runner's environment and service account provide", nested.Type)})
	}
	for _, name := range sortedAttributeNames(b.Body.Attributes) {
		a := b.Body.Attributes[name]
		v, ok := literalValue(a.Expr)
		if !ok {
			backend.Expressions[name] = BackendProblem{Line: line(a.SrcRange), Text: text(a.SrcRange),
				Detail: fmt.Sprintf("%s must be a literal (a quoted string without ${ } or %%{ }, a number, true or false): the state's location and protection are checked when the object is admitted, so no variable, function, interpolation or other expression may compute them", name)}
			continue
		}
		backend.Attributes[name] = v
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return backend, nil
}

// literalValue returns the value of an expression that is written out: a literal number or
// bool, or a quoted or heredoc string without interpolations or directives.
func literalValue(expr hclsyntax.Expression) (cty.Value, bool) {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return e.Val, e.Val.IsKnown() && !e.Val.IsNull()
	case *hclsyntax.TemplateExpr:
		if !e.IsStringLiteral() && len(e.Parts) != 0 {
			// IsStringLiteral is one literal part; heredocs are several literal parts, one a line.
			for _, part := range e.Parts {
				if _, ok := part.(*hclsyntax.LiteralValueExpr); !ok {
					return cty.NilVal, false
				}
			}
		}
		v, diags := e.Value(nil)
		if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
			return cty.NilVal, false
		}
		return v, true
	}
	return cty.NilVal, false
}

func sortedAttributeNames(attrs hclsyntax.Attributes) []string {
	return slices.Sorted(maps.Keys(attrs))
}

// shortText shortens source text for a denial: its first line, at most 80 characters.
func shortText(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if r := []rune(s); len(r) > 80 {
		s = string(r[:77]) + "..."
	}
	return s
}
