package policy

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ProvisioningPolicy is the part of the policy about infrastructure provisioning (ISS-001
// section 3): Pulumi Stacks and tofu-controller Terraforms keep their state in approved buckets,
// encrypt it, and destroy what they made when they are deleted. Whatever the object's other
// fields could use to send the state elsewhere is an allowlist: the environment of the pods that
// run Pulumi or OpenTofu, their images, the fields of their pod templates, the attributes of the
// backend block.
type ProvisioningPolicy struct {
	// ApprovedBackends are the state buckets, as URLs scheme://bucket (s3, gs, azblob), that the
	// platform created encrypted and with object locking; a backend inside one of them (any
	// prefix in the bucket) is approved.
	ApprovedBackends []string
	// ApprovedStorageAccounts are the Azure storage accounts that the azblob buckets of
	// ApprovedBackends are containers of: a container name alone does not say whose it is.
	ApprovedStorageAccounts []string
	// AllowedEnv are the environment variables a Stack or Terraform may set in the pods that run
	// Pulumi or OpenTofu: names, or prefixes ending in "*" (TF_VAR_*). Every other name is denied.
	AllowedEnv []string
	// AllowedImages are the images the workspace and runner pods may run: repositories as a
	// registry client resolves them (ImageRepository), or prefixes ending in "*". An image's ENV
	// lines and entrypoint set variables no object shows.
	AllowedImages []string
	// AllowEnvFrom admits whole ConfigMaps and Secrets as environment (envFrom, a Stack's envs
	// and envSecrets), whose keys the webhook cannot read when it admits the object.
	AllowEnvFrom bool
}

// DefaultProvisioningPolicy approves the platform's state bucket in each cloud, the variables
// that cannot redirect the state or its encryption, and the projects' own images. Clusters name
// their own buckets in the policy.
func DefaultProvisioningPolicy() ProvisioningPolicy {
	return ProvisioningPolicy{
		ApprovedBackends:        []string{"s3://iss-platform-state", "gs://iss-platform-state", "azblob://iss-platform-state"},
		ApprovedStorageAccounts: []string{"issplatformstate"},
		AllowedEnv:              DefaultAllowedEnv(),
		AllowedImages:           []string{"docker.io/pulumi/pulumi", "docker.io/pulumi/pulumi-*", "ghcr.io/flux-iac/tf-runner", "ghcr.io/flux-iac/tf-runner-*"},
	}
}

// DefaultAllowedEnv are the variables provisioning runs may set by default: credentials and
// regions of the clouds (the state's bucket is named in the object, and a bucket's name is
// global, so credentials choose who writes it, not where), input variables of the root module
// (TF_VAR_*: the backend block is literal, so no variable reaches it), and switches of the tools
// that touch neither the state nor its encryption. Not among them, by design: endpoints
// (AWS_ENDPOINT_URL*, GOOGLE_*_CUSTOM_ENDPOINT, ARM_ENDPOINT, ARM_METADATA_HOSTNAME,
// ARM_ENVIRONMENT, AZURE_STORAGE_DOMAIN), configuration files and profiles that can name
// endpoints (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE,
// GOOGLE_APPLICATION_CREDENTIALS and GOOGLE_CREDENTIALS, whose universe_domain moves the
// storage endpoint, TF_CLI_CONFIG_FILE, HOME), trust and proxies (AWS_CA_BUNDLE,
// SSL_CERT_FILE, SSL_CERT_DIR, HTTPS_PROXY), the tools' own redirections (PULUMI_BACKEND_URL,
// PULUMI_CONFIG_PASSPHRASE*, PULUMI_HOME, TF_CLI_ARGS*, TF_DATA_DIR, TF_ENCRYPTION,
// TF_WORKSPACE), and anything else.
func DefaultAllowedEnv() []string {
	return []string{
		// AWS credentials and region.
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
		// Google Cloud project and location.
		"GOOGLE_PROJECT", "GOOGLE_REGION", "GOOGLE_ZONE",
		// Azure identity (the storage account is checked by value: AZURE_STORAGE_ACCOUNT).
		"ARM_SUBSCRIPTION_ID", "ARM_TENANT_ID", "ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "ARM_ACCESS_KEY",
		"ARM_USE_OIDC", "ARM_USE_MSI", "ARM_USE_AKS_WORKLOAD_IDENTITY",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_STORAGE_KEY",
		// OpenBao's token for hashivault:// (its address is checked by value: VAULT_ADDR).
		"VAULT_TOKEN",
		// Pulumi Cloud's token, which self-managed state does not use.
		"PULUMI_ACCESS_TOKEN",
		// The tools' switches.
		"PULUMI_SKIP_UPDATE_CHECK", "PULUMI_SKIP_CONFIRMATIONS", "TF_IN_AUTOMATION", "TF_INPUT", "CHECKPOINT_DISABLE",
		"TF_VAR_*",
		"TZ", "LANG", "LC_ALL", "NO_COLOR",
	}
}

// kmsSecretsProviders are the Pulumi secrets providers that encrypt with a managed key
// (hashivault is OpenBao's transit engine); passphrase and the default do not.
var kmsSecretsProviders = []string{"awskms://", "gcpkms://", "azurekeyvault://", "hashivault://"}

// approvedBucket tells whether a bucket of the scheme is one of the approved backends: the same
// scheme, exactly that bucket.
func (p *ProvisioningPolicy) approvedBucket(scheme, bucket string) bool {
	for _, a := range p.ApprovedBackends {
		au, err := url.Parse(a)
		if err == nil && au.Scheme == scheme && au.Host == bucket && bucket != "" {
			return true
		}
	}
	return false
}

// approved tells whether a state URL lies in an approved bucket.
func (p *ProvisioningPolicy) approved(state string) bool {
	u, err := url.Parse(state)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	return p.approvedBucket(u.Scheme, u.Host)
}

// matchesName tells whether a name is one of the patterns: equal to one, or starting with one
// that ends in "*".
func matchesName(patterns []string, name string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(name, prefix) || p == name {
			return true
		}
	}
	return false
}

// envHints say, for variables that people set to reach another store, what to do instead.
var envHints = map[string]string{
	"PULUMI_BACKEND_URL":            "set spec.backend instead",
	"PULUMI_CONFIG_PASSPHRASE":      "set spec.secretsProvider to a managed key instead",
	"PULUMI_CONFIG_PASSPHRASE_FILE": "set spec.secretsProvider to a managed key instead",
	"TF_CLI_CONFIG_FILE":            "set spec.cliConfigSecretRef instead",
}

// validateEnvVar judges one variable the object sets: its name must be allowed, and the
// variables that name where the state or its key lives must hold an approved literal. literal is
// the value when the object writes it out, nil when it comes from elsewhere (a Secret).
func (p *ProvisioningPolicy) validateEnvVar(path *field.Path, name string, literal *string, openBao string) field.ErrorList {
	switch name {
	case "AZURE_STORAGE_ACCOUNT":
		if literal != nil && slices.Contains(p.ApprovedStorageAccounts, *literal) {
			return nil
		}
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf(
			"AZURE_STORAGE_ACCOUNT names the storage account an azblob:// backend keeps the state in: set it as a literal value, one of the approved accounts %s", quotedList(p.ApprovedStorageAccounts)))}
	case "VAULT_ADDR", "BAO_ADDR":
		if literal != nil && openBao != "" && *literal == openBao {
			return nil
		}
		where := "the policy names no OpenBao address (spec.openbao.address), so it may not be set"
		if openBao != "" {
			where = fmt.Sprintf("set it as a literal value, the platform's OpenBao %q", openBao)
		}
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf(
			"%s names the server a hashivault:// secrets provider sends the stack's data keys to: %s", name, where))}
	}
	if matchesName(p.AllowedEnv, name) {
		return nil
	}
	msg := fmt.Sprintf("%s is not a variable a provisioning run may set: variables such as AWS_ENDPOINT_URL_S3, PULUMI_BACKEND_URL or TF_CLI_ARGS send the state elsewhere or change its encryption, so only the names of the ISSPolicy's spec.provisioning.allowedEnv are admitted (such as AWS_REGION and TF_VAR_*)", name)
	if hint, ok := envHints[name]; ok {
		msg += "; " + hint
	} else if strings.HasPrefix(name, "AWS_ENDPOINT_URL") {
		msg += "; the approved bucket is reached at its cloud's own endpoint"
	}
	return field.ErrorList{field.Forbidden(path, msg)}
}

// validateEnvList checks a list of Kubernetes environment variables (a container's env).
func (p *ProvisioningPolicy) validateEnvList(path *field.Path, v any, openBao string) field.ErrorList {
	list, errs := listAt(path, v)
	for i, item := range list {
		ip := path.Index(i)
		m, ok := item.(map[string]any)
		if !ok {
			errs = append(errs, field.Invalid(ip, fmt.Sprintf("%T", item), "must be an object with name and value or valueFrom"))
			continue
		}
		errs = append(errs, allowedFields(ip, m, []string{"name", "value", "valueFrom"}, "an environment variable", nil)...)
		name, _ := m["name"].(string)
		if name == "" {
			errs = append(errs, field.Required(ip.Child("name"), "a variable needs a name"))
			continue
		}
		var literal *string
		if from, ok := m["valueFrom"]; ok && from != nil {
			fm, ok := from.(map[string]any)
			if !ok {
				errs = append(errs, field.Invalid(ip.Child("valueFrom"), fmt.Sprintf("%T", from), "must be an object"))
			} else {
				errs = append(errs, allowedFields(ip.Child("valueFrom"), fm, []string{"secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef"}, "valueFrom", nil)...)
			}
		} else {
			value, _ := m["value"].(string)
			literal = &value
		}
		errs = append(errs, p.validateEnvVar(ip.Child("name"), name, literal, openBao)...)
	}
	return errs
}

// validateEnvFrom checks a container's envFrom: whole ConfigMaps and Secrets become variables
// whose names the webhook cannot read when it admits the object (it reads no objects on the
// admission path), so they are denied unless the policy allows them.
func (p *ProvisioningPolicy) validateEnvFrom(path *field.Path, v any) field.ErrorList {
	list, errs := listAt(path, v)
	if len(list) == 0 || p.AllowEnvFrom {
		return errs
	}
	return append(errs, field.Forbidden(path, envFromDenial))
}

const envFromDenial = "loads every key of a ConfigMap or Secret as a variable, and the webhook cannot read those keys when it admits the object, so one could set AWS_ENDPOINT_URL_S3 or PULUMI_BACKEND_URL unseen: name each variable (env, with valueFrom for a Secret's value), or ask the platform team to set spec.provisioning.allowEnvFrom"

// validateImage checks the image of a workspace or runner pod.
func (p *ProvisioningPolicy) validateImage(path *field.Path, v any) field.ErrorList {
	image, ok := v.(string)
	if !ok {
		return field.ErrorList{field.Invalid(path, fmt.Sprintf("%T", v), "must be an image reference")}
	}
	if image == "" {
		return nil
	}
	repo := ImageRepository(image)
	if matchesName(p.AllowedImages, repo) {
		return nil
	}
	return field.ErrorList{field.Forbidden(path, fmt.Sprintf(
		"the repository %s is not one provisioning runs may use: an image's ENV lines and entrypoint set variables no object shows, which can send the state elsewhere; use one of %s (spec.provisioning.allowedImages)", repo, quotedList(p.AllowedImages)))}
}

// fieldReasons say why fields of pod templates and workspaces are not admitted.
var fieldReasons = map[string]string{
	"initContainers":      "init containers run commands in the pod, which can write the variables its runner reads (the workspace agent's $PULUMI_ENV) or its configuration files",
	"ephemeralContainers": "they run commands in the pod",
	"containers":          "other containers run commands in the pod",
	"volumes":             "a mounted file can configure where the state goes (an AWS config file's endpoint_url, a CA bundle, a .terraformrc)",
	"volumeMounts":        "a mounted file can configure where the state goes (an AWS config file's endpoint_url, a CA bundle, a .terraformrc)",
	"hostAliases":         "they change where the bucket's host name resolves",
	"dnsConfig":           "it changes where the bucket's host name resolves",
	"dnsPolicy":           "it changes where the bucket's host name resolves",
	"hostNetwork":         "the host's network is not the pod's",
	"command":             "a command can set variables or write configuration files before it runs the tool",
	"args":                "arguments can change what the container runs",
	"lifecycle":           "hooks run commands in the container, which can write configuration files",
	"livenessProbe":       "exec probes run commands in the container",
	"readinessProbe":      "exec probes run commands in the container",
	"startupProbe":        "exec probes run commands in the container",
	"workingDir":          "it changes which files the tool reads",
	"stacks":              "it is the operator's list of stacks with their secrets providers: set spec.stack and spec.secretsProvider instead",
	"stackName":           "it is the operator's: set spec.stack instead",
	"workspaceName":       "it is the operator's",
}

// allowedFields denies every key of m that is not in allowed, in key order. Keys starting with
// "$" are strategic merge patch directives ($patch: delete, $retainKeys), which could remove what
// the operator sets, such as PULUMI_BACKEND_URL.
func allowedFields(path *field.Path, m map[string]any, allowed []string, what string, reasons map[string]string) field.ErrorList {
	var errs field.ErrorList
	for _, k := range sortedKeys(m) {
		if slices.Contains(allowed, k) {
			continue
		}
		reason := "iss-webhook does not know what it does to where the state goes, so it cannot check it against ISS-001; ask the platform team to support it"
		if r, ok := reasons[k]; ok {
			reason = r
		} else if strings.HasPrefix(k, "$") {
			reason = "a strategic merge patch directive can remove what the operator sets, such as PULUMI_BACKEND_URL"
		}
		errs = append(errs, field.Forbidden(path.Child(k), fmt.Sprintf("%s may set only %s: %s", what, strings.Join(allowed, ", "), reason)))
	}
	return errs
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// mapAt reads an object at path; nil is an empty object.
func mapAt(path *field.Path, v any) (map[string]any, field.ErrorList) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, field.ErrorList{field.Invalid(path, fmt.Sprintf("%T", v), "must be an object")}
	}
	return m, nil
}

// listAt reads a list at path; nil is an empty list.
func listAt(path *field.Path, v any) ([]any, field.ErrorList) {
	if v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, field.ErrorList{field.Invalid(path, fmt.Sprintf("%T", v), "must be a list")}
	}
	return l, nil
}

// validateMetadata admits labels and annotations only, in a template's metadata.
func validateMetadata(path *field.Path, v any, what string) field.ErrorList {
	m, errs := mapAt(path, v)
	return append(errs, allowedFields(path, m, []string{"labels", "annotations"}, what, nil)...)
}

// validateContainers checks the containers of a pod template: only the names the tool's own
// container has, and of each only the fields that cannot run commands or mount files.
func (p *ProvisioningPolicy) validateContainers(path *field.Path, v any, names []string, openBao string) field.ErrorList {
	list, errs := listAt(path, v)
	for i, item := range list {
		ip := path.Index(i)
		c, ok := item.(map[string]any)
		if !ok {
			errs = append(errs, field.Invalid(ip, fmt.Sprintf("%T", item), "must be a container"))
			continue
		}
		if name, _ := c["name"].(string); !slices.Contains(names, name) {
			errs = append(errs, field.Forbidden(ip.Child("name"), fmt.Sprintf(
				"only the container %s may be customized: %s", quotedList(names), fieldReasons["containers"])))
			continue
		}
		errs = append(errs, allowedFields(ip, c, []string{"name", "image", "imagePullPolicy", "env", "envFrom", "resources", "securityContext"}, "a container of the pod template", fieldReasons)...)
		errs = append(errs, p.validateEnvList(ip.Child("env"), c["env"], openBao)...)
		errs = append(errs, p.validateEnvFrom(ip.Child("envFrom"), c["envFrom"])...)
		if img, ok := c["image"]; ok {
			errs = append(errs, p.validateImage(ip.Child("image"), img)...)
		}
	}
	return errs
}

// stackSpecFields are the Stack spec fields (pulumi.com v1 and v1alpha1) whose effect on the
// state the rules know: those checked below and those that cannot move the state or set the
// environment (the program's source and config, schedules, targets). Others are denied, so that
// a field a newer operator adds fails closed until the rules know it.
var stackSpecFields = []string{
	"accessTokenSecret", "backend", "branch", "commit", "config", "configRef", "continueResyncOnCommitMatch",
	"destroyOnFinalize", "envRefs", "envSecrets", "envs", "expectNoRefreshChanges", "fluxSource", "gitAuth",
	"gitAuthSecret", "prerequisites", "preview", "programRef", "projectRepo", "refresh", "repoDir",
	"resyncFrequencySeconds", "retryMaxBackoffDurationSeconds", "retryOnUpdateConflict", "runProgram", "secrets",
	"secretsProvider", "secretsRef", "serviceAccountName", "shallow", "stack", "targetDependents", "targets",
	"updateTemplate", "useLocalStackOnly", "workspaceReclaimPolicy", "workspaceTemplate",
}

// stackFieldReasons say why the Stack fields that are not admitted are not.
var stackFieldReasons = map[string]string{
	"environment": "Pulumi ESC environments live in Pulumi Cloud and set variables the webhook cannot read; self-managed state in an approved bucket does not use them",
}

// ValidateStack checks a Pulumi Stack (pulumi.com v1 and v1alpha1): its backend and secrets
// provider, every source of its workspace's environment (envRefs, envs, envSecrets,
// accessTokenSecret, the workspace template's env, envFrom, image and pod template), the update
// template, and deprovisioning. openBao is the policy's OpenBao address, the only one VAULT_ADDR
// may name.
func (p *ProvisioningPolicy) ValidateStack(obj *unstructured.Unstructured, openBao string) field.ErrorList {
	spec := field.NewPath("spec")
	s, errs := mapAt(spec, obj.Object["spec"])
	errs = append(errs, allowedFields(spec, s, stackSpecFields, "a Stack", stackFieldReasons)...)
	backend, _ := s["backend"].(string)
	if strings.ContainsAny(backend, "?#") {
		errs = append(errs, field.Invalid(spec.Child("backend"), backend, "a backend URL may not carry query parameters (such as endpoint=), which could send the state to another server: name the bucket only"))
	} else if !p.approved(backend) {
		errs = append(errs, field.Invalid(spec.Child("backend"), backend, fmt.Sprintf(
			"state must live in an approved encrypted, object-locked bucket (ISS-001 section 3): use one of %s, such as %s/%s", quotedList(p.ApprovedBackends), p.firstApproved(), obj.GetNamespace())))
	}
	provider, _ := s["secretsProvider"].(string)
	if !hasAnyPrefix(provider, kmsSecretsProviders) {
		errs = append(errs, field.Invalid(spec.Child("secretsProvider"), provider, fmt.Sprintf(
			"secrets in the state must be encrypted with a managed key: set a provider starting with %s", quotedList(kmsSecretsProviders))))
	} else if u, err := url.Parse(provider); err != nil || u.Fragment != "" || u.User != nil {
		errs = append(errs, field.Invalid(spec.Child("secretsProvider"), provider, "must be a key's URL, such as awskms://alias/iss-team-a?region=eu-west-1"))
	} else {
		for _, k := range slices.Sorted(maps.Keys(u.Query())) {
			if k != "region" {
				errs = append(errs, field.Invalid(spec.Child("secretsProvider"), provider, fmt.Sprintf(
					"the parameter %s is not admitted: parameters such as endpoint= send the key operations to another server; only region= is", k)))
			}
		}
	}
	errs = append(errs, p.validateEnvRefs(spec.Child("envRefs"), s["envRefs"], obj.GetNamespace(), openBao)...)
	for _, name := range []string{"envs", "envSecrets"} {
		list, lerrs := listAt(spec.Child(name), s[name])
		errs = append(errs, lerrs...)
		if len(list) > 0 && !p.AllowEnvFrom {
			kind := map[string]string{"envs": "ConfigMap", "envSecrets": "Secret"}[name]
			errs = append(errs, field.Forbidden(spec.Child(name), fmt.Sprintf(
				"loads every key of each %s as a variable, and the webhook cannot read those keys when it admits the object, so one could set AWS_ENDPOINT_URL_S3 or PULUMI_BACKEND_URL unseen: name each variable in envRefs (type Secret for a secret value), or ask the platform team to set spec.provisioning.allowEnvFrom", kind)))
		}
	}
	if token, _ := s["accessTokenSecret"].(string); token != "" {
		errs = append(errs, p.validateEnvVar(spec.Child("accessTokenSecret"), "PULUMI_ACCESS_TOKEN", nil, openBao)...)
	}
	errs = append(errs, p.validateWorkspaceTemplate(spec.Child("workspaceTemplate"), s["workspaceTemplate"], openBao)...)
	errs = append(errs, validateUpdateTemplate(spec.Child("updateTemplate"), s["updateTemplate"])...)
	if destroy, _ := s["destroyOnFinalize"].(bool); !destroy {
		errs = append(errs, field.Required(spec.Child("destroyOnFinalize"),
			"every PROVISION needs its DEPROVISION (ISS-001 section 3): set destroyOnFinalize: true, so that deleting the Stack destroys its resources"))
	}
	return errs
}

// validateEnvRefs checks a Stack's envRefs: each key is a variable's name; values are literals
// or keys of the namespace's Secrets (the operator's own environment and files, types Env and
// FS, are not the stack's to read).
func (p *ProvisioningPolicy) validateEnvRefs(path *field.Path, v any, namespace, openBao string) field.ErrorList {
	refs, errs := mapAt(path, v)
	for _, name := range sortedKeys(refs) {
		rp := path.Key(name)
		ref, ok := refs[name].(map[string]any)
		if !ok {
			errs = append(errs, field.Invalid(rp, fmt.Sprintf("%T", refs[name]), "must be a reference with a type"))
			continue
		}
		var literal *string
		switch typ, _ := ref["type"].(string); typ {
		case "Literal":
			lit, _ := ref["literal"].(map[string]any)
			value, _ := lit["value"].(string)
			literal = &value
		case "Secret":
			sec, _ := ref["secret"].(map[string]any)
			if ns, _ := sec["namespace"].(string); ns != "" && ns != namespace {
				errs = append(errs, field.Forbidden(rp.Child("secret", "namespace"), "a Secret of another namespace is not this Stack's to read: use one in its own namespace"))
			}
		default:
			errs = append(errs, field.NotSupported(rp.Child("type"), typ, []string{"Literal", "Secret"}))
		}
		errs = append(errs, p.validateEnvVar(rp, name, literal, openBao)...)
	}
	return errs
}

// validateWorkspaceTemplate checks a Stack's workspaceTemplate, which the operator applies as a
// strategic merge patch on the Workspace it generates: it can set the workspace's environment,
// image and pod, and remove what the operator set.
func (p *ProvisioningPolicy) validateWorkspaceTemplate(path *field.Path, v any, openBao string) field.ErrorList {
	wt, errs := mapAt(path, v)
	if wt == nil {
		return errs
	}
	errs = append(errs, allowedFields(path, wt, []string{"apiVersion", "kind", "metadata", "spec"}, "a workspace template", nil)...)
	errs = append(errs, validateMetadata(path.Child("metadata"), wt["metadata"], "the workspace template's metadata")...)
	sp := path.Child("spec")
	spec, serrs := mapAt(sp, wt["spec"])
	errs = append(errs, serrs...)
	errs = append(errs, allowedFields(sp, spec, []string{
		"image", "imagePullPolicy", "resources", "securityProfile", "serviceAccountName", "pulumiLogLevel",
		"env", "envFrom", "podTemplate", "serviceTemplate", "git", "flux", "local", "projectInfo",
	}, "the workspace template's spec", fieldReasons)...)
	if img, ok := spec["image"]; ok {
		errs = append(errs, p.validateImage(sp.Child("image"), img)...)
	}
	errs = append(errs, p.validateEnvList(sp.Child("env"), spec["env"], openBao)...)
	errs = append(errs, p.validateEnvFrom(sp.Child("envFrom"), spec["envFrom"])...)
	if st, ok := spec["serviceTemplate"]; ok {
		stp := sp.Child("serviceTemplate")
		m, merrs := mapAt(stp, st)
		errs = append(errs, merrs...)
		errs = append(errs, allowedFields(stp, m, []string{"metadata"}, "the service template", nil)...)
		errs = append(errs, validateMetadata(stp.Child("metadata"), m["metadata"], "the service template's metadata")...)
	}
	pp := sp.Child("podTemplate")
	pod, perrs := mapAt(pp, spec["podTemplate"])
	errs = append(errs, perrs...)
	if pod == nil {
		return errs
	}
	errs = append(errs, allowedFields(pp, pod, []string{"metadata", "spec"}, "the pod template", nil)...)
	errs = append(errs, validateMetadata(pp.Child("metadata"), pod["metadata"], "the pod template's metadata")...)
	psp := pp.Child("spec")
	podSpec, pserrs := mapAt(psp, pod["spec"])
	errs = append(errs, pserrs...)
	errs = append(errs, allowedFields(psp, podSpec, []string{
		"affinity", "nodeSelector", "tolerations", "topologySpreadConstraints", "priorityClassName",
		"securityContext", "terminationGracePeriodSeconds", "imagePullSecrets", "containers",
	}, "the workspace's pod template", fieldReasons)...)
	return append(errs, p.validateContainers(psp.Child("containers"), podSpec["containers"], []string{"pulumi"}, openBao)...)
}

// validateUpdateTemplate checks a Stack's updateTemplate, a strategic merge patch on the Updates
// the operator generates: their options, not which stack or workspace they run on.
func validateUpdateTemplate(path *field.Path, v any) field.ErrorList {
	ut, errs := mapAt(path, v)
	if ut == nil {
		return errs
	}
	errs = append(errs, allowedFields(path, ut, []string{"apiVersion", "kind", "metadata", "spec"}, "an update template", nil)...)
	errs = append(errs, validateMetadata(path.Child("metadata"), ut["metadata"], "the update template's metadata")...)
	sp := path.Child("spec")
	spec, serrs := mapAt(sp, ut["spec"])
	errs = append(errs, serrs...)
	return append(errs, allowedFields(sp, spec, []string{
		"message", "parallel", "ttlAfterCompleted", "continueOnError", "expectNoChanges", "refresh",
		"replace", "target", "targetDependents", "runProgram",
	}, "the update template's spec", fieldReasons)...)
}

// terraformSpecFields are the Terraform spec fields (infra.contrib.fluxcd.io v1alpha2 and
// v1alpha1) whose effect on the state the rules know: those checked below, and those that
// cannot move the state: schedules, plans, the module's source and input variables (vars,
// varsFrom, values, tfVarsFiles: the backend block is literal, so no variable reaches it),
// outputs written to the namespace. Others are denied, so that a field a newer controller adds
// fails closed until the rules know it.
var terraformSpecFields = []string{
	"alwaysCleanupRunnerPod", "approvePlan", "backendConfig", "backendConfigsFrom", "branchPlanner", "breakTheGlass",
	"cliConfigSecretRef", "dependsOn", "destroy", "destroyResourcesOnDeletion", "disableDriftDetection",
	"enableInventory", "force", "healthChecks", "interval", "maxRetryInterval", "parallelism", "path", "plan",
	"planOnly", "readInputsFromSecrets", "refreshBeforeApply", "remediation", "retryInterval", "retryStrategy",
	"runnerPodTemplate", "runnerTerminationGracePeriodSeconds", "serviceAccountName", "sourceRef",
	"storeReadablePlan", "suspend", "targets", "tfVarsFiles", "tfstate", "upgradeOnInit", "values", "vars",
	"varsFrom", "webhooks", "workspace", "writeOutputsToSecret",
}

// terraformFieldReasons say why the Terraform fields that are not admitted are not.
var terraformFieldReasons = map[string]string{
	"cloud":        "it keeps the state in HCP Terraform or Terraform Enterprise, not in an approved bucket: set backendConfig.customConfiguration instead",
	"enterprise":   "iss-webhook does not know what it does to where the state goes",
	"fileMappings": "it writes files from Secrets the webhook cannot read into the runner's home or working directory, where they can replace the backend (backend_override.tf) or configure its client (.aws/config)",
}

// ValidateTerraform checks a tofu-controller Terraform (infra.contrib.fluxcd.io v1alpha2 and
// v1alpha1): its backend block, parsed as HCL (ParseTerraformBackend), every source of the
// runner's environment and files (runnerPodTemplate, backendConfigsFrom, fileMappings,
// cliConfigSecretRef), state locking, and deprovisioning.
func (p *ProvisioningPolicy) ValidateTerraform(obj *unstructured.Unstructured, openBao string) field.ErrorList {
	spec := field.NewPath("spec")
	s, errs := mapAt(spec, obj.Object["spec"])
	errs = append(errs, allowedFields(spec, s, terraformSpecFields, "a Terraform", terraformFieldReasons)...)
	errs = append(errs, p.validateTerraformBackend(spec, s, obj)...)
	if from, ferrs := listAt(spec.Child("backendConfigsFrom"), s["backendConfigsFrom"]); len(ferrs) > 0 {
		errs = append(errs, ferrs...)
	} else if len(from) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("backendConfigsFrom"), "backend settings from Secrets or ConfigMaps, which the webhook cannot read, would override the checked backend block: put them in backendConfig.customConfiguration"))
	}
	if ref, rerrs := mapAt(spec.Child("cliConfigSecretRef"), s["cliConfigSecretRef"]); len(rerrs) > 0 {
		errs = append(errs, rerrs...)
	} else if ns, _ := ref["namespace"].(string); ns != "" && ns != obj.GetNamespace() {
		errs = append(errs, field.Forbidden(spec.Child("cliConfigSecretRef", "namespace"), "a Secret of another namespace holds another team's registry credentials: use one in this Terraform's namespace"))
	}
	if st, terrs := mapAt(spec.Child("tfstate"), s["tfstate"]); len(terrs) > 0 {
		errs = append(errs, terrs...)
	} else if force, _ := st["forceUnlock"].(string); force == "auto" {
		errs = append(errs, field.Forbidden(spec.Child("tfstate", "forceUnlock"), "auto unlocks the state whenever it finds it locked, so that two runs can write it at once, and ISS-001 wants it locked: use yes with the lock's identifier, once"))
	}
	errs = append(errs, p.validateRunnerPodTemplate(spec.Child("runnerPodTemplate"), s["runnerPodTemplate"], openBao)...)
	if destroy, _ := s["destroyResourcesOnDeletion"].(bool); !destroy {
		errs = append(errs, field.Required(spec.Child("destroyResourcesOnDeletion"),
			"every PROVISION needs its DEPROVISION (ISS-001 section 3): set destroyResourcesOnDeletion: true, so that deleting the Terraform destroys its resources"))
	}
	return errs
}

// validateRunnerPodTemplate checks a Terraform's runnerPodTemplate: the runner's environment and
// image, and none of the fields that run commands or mount files in it.
func (p *ProvisioningPolicy) validateRunnerPodTemplate(path *field.Path, v any, openBao string) field.ErrorList {
	t, errs := mapAt(path, v)
	if t == nil {
		return errs
	}
	errs = append(errs, allowedFields(path, t, []string{"metadata", "spec"}, "the runner pod template", nil)...)
	errs = append(errs, validateMetadata(path.Child("metadata"), t["metadata"], "the runner pod template's metadata")...)
	sp := path.Child("spec")
	spec, serrs := mapAt(sp, t["spec"])
	errs = append(errs, serrs...)
	errs = append(errs, allowedFields(sp, spec, []string{
		"affinity", "nodeSelector", "tolerations", "priorityClassName", "resources", "securityContext", "env", "envFrom", "image",
	}, "the runner pod template's spec", fieldReasons)...)
	if img, ok := spec["image"]; ok {
		errs = append(errs, p.validateImage(sp.Child("image"), img)...)
	}
	errs = append(errs, p.validateEnvList(sp.Child("env"), spec["env"], openBao)...)
	return append(errs, p.validateEnvFrom(sp.Child("envFrom"), spec["envFrom"])...)
}

// kubernetesBackendSettings are backendConfig's settings of the kubernetes backend.
var kubernetesBackendSettings = []string{"secretSuffix", "inClusterConfig", "configPath", "labels"}

// validateTerraformBackend checks where a Terraform keeps its state: backendConfig, and the
// backend block of its customConfiguration.
func (p *ProvisioningPolicy) validateTerraformBackend(spec *field.Path, s map[string]any, obj *unstructured.Unstructured) field.ErrorList {
	bp := spec.Child("backendConfig")
	cfgPath := bp.Child("customConfiguration")
	bc, errs := mapAt(bp, s["backendConfig"])
	errs = append(errs, allowedFields(bp, bc, append([]string{"customConfiguration", "disable"}, kubernetesBackendSettings...), "backendConfig", nil)...)
	if disabled, _ := bc["disable"].(bool); disabled {
		errs = append(errs, field.Forbidden(bp.Child("disable"), "the state must be kept remotely (ISS-001 section 3): remove disable: true"))
	}
	workspace, _ := s["workspace"].(string)
	if workspace == "" {
		workspace = "default"
	}
	raw, _ := bc["customConfiguration"].(string)
	if raw == "" {
		// The controller then writes a kubernetes backend block of its own (blank text is
		// written as it is, and parsed below: a terraform block without a backend is local state).
		suffix := obj.GetName()
		if bc != nil {
			suffix, _ = bc["secretSuffix"].(string)
		}
		return append(errs, field.Required(cfgPath, fmt.Sprintf(
			`without it, tofu-controller keeps the state with the "kubernetes" backend, in the Secret tfstate-%s-%s of namespace %s, not in an approved encrypted, object-locked bucket (ISS-001 section 3): write a backend "s3", "gcs" or "azurerm" block whose bucket is one of %s`,
			workspace, suffix, obj.GetNamespace(), quotedList(p.ApprovedBackends))))
	}
	for _, k := range kubernetesBackendSettings {
		if _, ok := bc[k]; ok {
			errs = append(errs, field.Forbidden(bp.Child(k), "is a setting of the kubernetes backend, which customConfiguration replaces and the platform does not approve: remove it"))
		}
	}
	backend, problems := ParseTerraformBackend(raw)
	for _, pr := range problems {
		detail := pr.Detail
		if pr.Line > 0 {
			detail = fmt.Sprintf("line %d: %s", pr.Line, detail)
		}
		text := pr.Text
		if text == "" {
			text = shortText(raw)
		}
		errs = append(errs, field.Invalid(cfgPath, text, detail))
	}
	if backend == nil {
		return errs
	}
	return append(errs, p.validateBackendAttributes(cfgPath, backend, workspace, obj.GetNamespace())...)
}

// validateBackendAttributes checks the backend block's type and attributes against the approved
// buckets: only the attributes of backendAttributes, of their types, with the bucket approved,
// the state encrypted and locked.
func (p *ProvisioningPolicy) validateBackendAttributes(cfgPath *field.Path, b *TerraformBackend, workspace, namespace string) field.ErrorList {
	at := func(detail string) *field.Error {
		return field.Invalid(cfgPath, fmt.Sprintf("backend %q", b.Type), fmt.Sprintf("line %d: %s", b.Line, detail))
	}
	schema, ok := backendAttributes[b.Type]
	if !ok {
		if b.Type == "kubernetes" {
			suffix := "<secret_suffix>"
			if v, ok := b.Attributes["secret_suffix"]; ok && v.Type() == cty.String {
				suffix = v.AsString()
			}
			return field.ErrorList{at(fmt.Sprintf(`the "kubernetes" backend keeps the state in the Secret tfstate-%s-%s (secret_suffix %q) of a namespace, readable by whoever reads Secrets there, not in an approved encrypted, object-locked bucket (ISS-001 section 3): write a backend "s3", "gcs" or "azurerm" block whose bucket is one of %s`,
				workspace, suffix, suffix, quotedList(p.ApprovedBackends)))}
		}
		return field.ErrorList{at(fmt.Sprintf(`the %q backend does not keep the state in an approved encrypted, object-locked bucket (ISS-001 section 3): write a backend "s3", "gcs" or "azurerm" block whose bucket is one of %s`, b.Type, quotedList(p.ApprovedBackends)))}
	}
	var errs field.ErrorList
	for _, pr := range b.Blocks {
		errs = append(errs, field.Invalid(cfgPath, pr.Text, fmt.Sprintf("line %d: %s", pr.Line, pr.Detail)))
	}
	admitted := slices.Sorted(maps.Keys(schema))
	values := map[string]cty.Value{}
	names := slices.Collect(maps.Keys(b.Attributes))
	for name := range b.Expressions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		attr, ok := schema[name]
		expr, computed := b.Expressions[name]
		switch {
		case !ok:
			line := b.Line
			if computed {
				line = expr.Line
			}
			errs = append(errs, field.Invalid(cfgPath, name, fmt.Sprintf("line %d: %s is not admitted in a backend %q block (admitted: %s): endpoints, path-style addressing, TLS, shared configuration files, profiles and credentials would change where or as whom the state is reached; the runner's service account brings the credentials", line, name, b.Type, strings.Join(admitted, ", "))))
			continue
		case computed:
			errs = append(errs, field.Invalid(cfgPath, expr.Text, fmt.Sprintf("line %d: %s", expr.Line, expr.Detail)))
			continue
		}
		v, err := convert.Convert(b.Attributes[name], attr.typ)
		if err != nil || v.IsNull() || !v.IsKnown() {
			errs = append(errs, at(fmt.Sprintf("%s must be a %s", name, attr.typ.FriendlyName())))
			continue
		}
		values[name] = v
	}
	// What an attribute that is computed, not written out, would hold is not known: it was
	// denied above, and is not denied again for what it would mean.
	computed := func(names ...string) bool {
		for _, n := range names {
			if _, ok := b.Expressions[n]; ok {
				return true
			}
		}
		return false
	}
	str := func(name string) string {
		if v, ok := values[name]; ok {
			return v.AsString()
		}
		return ""
	}
	yes := func(name string) bool {
		v, ok := values[name]
		return ok && v.True()
	}
	var scheme, bucket, bucketAttr string
	switch b.Type {
	case "s3":
		scheme, bucket, bucketAttr = "s3", str("bucket"), "bucket"
		if !yes("encrypt") && !computed("encrypt") {
			errs = append(errs, at(`backend "s3" must encrypt the state: set encrypt = true`))
		}
		if !yes("use_lockfile") && str("dynamodb_table") == "" && !computed("use_lockfile", "dynamodb_table") {
			errs = append(errs, at(`backend "s3" must lock the state: set use_lockfile = true or dynamodb_table`))
		}
	case "gcs":
		scheme, bucket, bucketAttr = "gs", str("bucket"), "bucket"
		if str("kms_encryption_key") == "" && !computed("kms_encryption_key") {
			errs = append(errs, at(`backend "gcs" must encrypt the state with a managed key: set kms_encryption_key`))
		}
	case "azurerm":
		scheme, bucket, bucketAttr = "azblob", str("container_name"), "container_name"
		if account := str("storage_account_name"); !slices.Contains(p.ApprovedStorageAccounts, account) && !computed("storage_account_name") {
			errs = append(errs, at(fmt.Sprintf(`backend "azurerm" keeps the state in the storage account %q, which is not an approved one: set storage_account_name to one of %s`, account, quotedList(p.ApprovedStorageAccounts))))
		}
	}
	switch {
	case computed(bucketAttr):
	case bucket == "":
		errs = append(errs, at(fmt.Sprintf("backend %q names no %s: set %s to the bucket of one of %s", b.Type, bucketAttr, bucketAttr, quotedList(p.ApprovedBackends))))
	case !p.approvedBucket(scheme, bucket):
		errs = append(errs, at(fmt.Sprintf("backend %q stores state in %s://%s (%s %q), which is not an approved encrypted, object-locked bucket (ISS-001 section 3): use one of %s",
			b.Type, scheme, bucket, bucketAttr, bucket, quotedList(p.ApprovedBackends))))
	}
	return errs
}

func (p *ProvisioningPolicy) firstApproved() string {
	if len(p.ApprovedBackends) == 0 {
		return "s3://<bucket>"
	}
	return p.ApprovedBackends[0]
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
