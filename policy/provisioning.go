package policy

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ProvisioningPolicy is the part of the policy about infrastructure provisioning (ISS-001
// section 3): Pulumi Stacks and tofu-controller Terraforms keep their state in approved buckets,
// encrypt it, and destroy what they made when they are deleted.
type ProvisioningPolicy struct {
	// ApprovedBackends are the state buckets, as URLs scheme://bucket (s3, gs, azblob), that the
	// platform created encrypted and with object locking; a backend inside one of them (any
	// prefix in the bucket) is approved.
	ApprovedBackends []string
}

// DefaultProvisioningPolicy approves the platform's state bucket in each cloud. Clusters name
// their own buckets in the policy.
func DefaultProvisioningPolicy() ProvisioningPolicy {
	return ProvisioningPolicy{ApprovedBackends: []string{"s3://iss-platform-state", "gs://iss-platform-state", "azblob://iss-platform-state"}}
}

// kmsSecretsProviders are the Pulumi secrets providers that encrypt with a managed key
// (hashivault is OpenBao's transit engine); passphrase and the default do not.
var kmsSecretsProviders = []string{"awskms://", "gcpkms://", "azurekeyvault://", "hashivault://"}

// approved tells whether a state URL lies in an approved bucket.
func (p *ProvisioningPolicy) approved(state string) bool {
	u, err := url.Parse(state)
	if err != nil || u.Host == "" {
		return false
	}
	for _, a := range p.ApprovedBackends {
		au, err := url.Parse(a)
		if err == nil && au.Scheme == u.Scheme && au.Host == u.Host {
			return true
		}
	}
	return false
}

// ValidateStack checks a Pulumi Stack (pulumi.com v1).
func (p *ProvisioningPolicy) ValidateStack(obj *unstructured.Unstructured) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	backend, _, _ := unstructured.NestedString(obj.Object, "spec", "backend")
	if strings.ContainsAny(backend, "?#") {
		errs = append(errs, field.Invalid(spec.Child("backend"), backend, "a backend URL may not carry query parameters (such as endpoint=), which could send the state to another server: name the bucket only"))
	} else if !p.approved(backend) {
		errs = append(errs, field.Invalid(spec.Child("backend"), backend, fmt.Sprintf(
			"state must live in an approved encrypted, object-locked bucket (ISS-001 section 3): use one of %s, such as %s/%s", quotedList(p.ApprovedBackends), p.firstApproved(), obj.GetNamespace())))
	}
	provider, _, _ := unstructured.NestedString(obj.Object, "spec", "secretsProvider")
	if !hasAnyPrefix(provider, kmsSecretsProviders) {
		errs = append(errs, field.Invalid(spec.Child("secretsProvider"), provider, fmt.Sprintf(
			"secrets in the state must be encrypted with a managed key: set a provider starting with %s", quotedList(kmsSecretsProviders))))
	}
	envRefs, _, _ := unstructured.NestedMap(obj.Object, "spec", "envRefs")
	for _, name := range []string{"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"} {
		if _, ok := envRefs[name]; ok {
			errs = append(errs, field.Forbidden(spec.Child("envRefs").Key(name), fmt.Sprintf("%s would override spec.backend or spec.secretsProvider: set those instead", name)))
		}
	}
	if destroy, _, _ := unstructured.NestedBool(obj.Object, "spec", "destroyOnFinalize"); !destroy {
		errs = append(errs, field.Required(spec.Child("destroyOnFinalize"),
			"every PROVISION needs its DEPROVISION (ISS-001 section 3): set destroyOnFinalize: true, so that deleting the Stack destroys its resources"))
	}
	return errs
}

// The parts of a Terraform backend block the rules read.
var (
	backendBlock   = regexp.MustCompile(`backend\s+"([a-z0-9]+)"\s*\{`)
	hclBucket      = hclString("bucket")
	hclContainer   = hclString("container_name")
	hclLockTable   = hclString("dynamodb_table")
	hclKMSKey      = hclString("kms_encryption_key")
	hclKey         = hclString("encryption_key")
	hclEncrypt     = regexp.MustCompile(`\bencrypt\s*=\s*true\b`)
	hclUseLockfile = regexp.MustCompile(`\buse_lockfile\s*=\s*true\b`)
	hclEndpoint    = regexp.MustCompile(`\bendpoints?\b|\b[a-z0-9_]*_endpoint\b`)
	hclComments    = regexp.MustCompile(`(?s:/\*.*?\*/)|(?:#|//)[^\n]*`)
)

// blockBody returns the text of the block whose "{" ends at open, up to its matching "}".
func blockBody(s string, open int) string {
	depth := 1
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return s[open:i]
			}
		}
	}
	return s[open:]
}

// hclString matches `key = "value"` and captures the value.
func hclString(key string) *regexp.Regexp {
	return regexp.MustCompile(`\b` + key + `\s*=\s*"([^"]*)"`)
}

// ValidateTerraform checks a tofu-controller Terraform (infra.contrib.fluxcd.io).
func (p *ProvisioningPolicy) ValidateTerraform(obj *unstructured.Unstructured) field.ErrorList {
	spec := field.NewPath("spec")
	cfgPath := spec.Child("backendConfig", "customConfiguration")
	var errs field.ErrorList
	if disabled, _, _ := unstructured.NestedBool(obj.Object, "spec", "backendConfig", "disable"); disabled {
		errs = append(errs, field.Forbidden(spec.Child("backendConfig", "disable"), "the state must be kept remotely (ISS-001 section 3): remove disable: true"))
	}
	if from, found, _ := unstructured.NestedSlice(obj.Object, "spec", "backendConfigsFrom"); found && len(from) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("backendConfigsFrom"), "backend settings from Secrets or ConfigMaps would override the checked backend block: put them in backendConfig.customConfiguration"))
	}
	raw, _, _ := unstructured.NestedString(obj.Object, "spec", "backendConfig", "customConfiguration")
	// Comments are not configuration: a commented-out "encrypt = true" must not count.
	custom := hclComments.ReplaceAllString(raw, "")
	blocks := backendBlock.FindAllStringSubmatchIndex(custom, -1)
	var m []string
	if len(blocks) == 1 {
		m = []string{custom[blocks[0][0]:blocks[0][1]], custom[blocks[0][2]:blocks[0][3]]}
		custom = blockBody(custom, blocks[0][1])
	}
	switch {
	case len(blocks) > 1:
		errs = append(errs, field.Invalid(cfgPath, raw, "more than one backend block: keep exactly one"))
	case hclEndpoint.MatchString(custom):
		errs = append(errs, field.Invalid(cfgPath, raw, "the backend may not name endpoints, which could send the state to another server than the approved bucket's"))
	case m == nil:
		errs = append(errs, field.Required(cfgPath, fmt.Sprintf(
			`the state must live in an approved encrypted, object-locked bucket (ISS-001 section 3), not in a Kubernetes Secret: set a backend "s3", "gcs" or "azurerm" block whose bucket is one of %s`, quotedList(p.ApprovedBackends))))
	default:
		kind := m[1]
		var state string
		var encrypted, locked bool
		switch kind {
		case "s3":
			state = "s3://" + firstMatch(hclBucket, custom)
			encrypted = hclEncrypt.MatchString(custom)
			locked = hclUseLockfile.MatchString(custom) || firstMatch(hclLockTable, custom) != ""
		case "gcs":
			state = "gs://" + firstMatch(hclBucket, custom)
			encrypted = firstMatch(hclKMSKey, custom) != "" || firstMatch(hclKey, custom) != ""
			locked = true // GCS locks state objects itself
		case "azurerm":
			state = "azblob://" + firstMatch(hclContainer, custom)
			encrypted, locked = true, true // Azure Storage encrypts at rest and leases the blob
		}
		switch {
		case state == "" || strings.HasSuffix(state, "://") || !p.approved(state):
			errs = append(errs, field.Invalid(cfgPath, raw, fmt.Sprintf(
				"backend %q stores state in %s, which is not an approved encrypted, object-locked bucket (ISS-001 section 3): use one of %s", kind, state, quotedList(p.ApprovedBackends))))
		case !encrypted:
			errs = append(errs, field.Invalid(cfgPath, raw, fmt.Sprintf("backend %q must encrypt the state: set encrypt = true (s3) or kms_encryption_key (gcs)", kind)))
		case !locked:
			errs = append(errs, field.Invalid(cfgPath, raw, fmt.Sprintf("backend %q must lock the state: set use_lockfile = true or dynamodb_table", kind)))
		}
	}
	if destroy, _, _ := unstructured.NestedBool(obj.Object, "spec", "destroyResourcesOnDeletion"); !destroy {
		errs = append(errs, field.Required(spec.Child("destroyResourcesOnDeletion"),
			"every PROVISION needs its DEPROVISION (ISS-001 section 3): set destroyResourcesOnDeletion: true, so that deleting the Terraform destroys its resources"))
	}
	return errs
}

func (p *ProvisioningPolicy) firstApproved() string {
	if len(p.ApprovedBackends) == 0 {
		return "s3://<bucket>"
	}
	return p.ApprovedBackends[0]
}

func firstMatch(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
