package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// SecretsVolumeName is the projected volume that carries an engine's secrets (design.md 4.2).
const SecretsVolumeName = "iss-secrets"

// DefaultSecretsMountPath is where the engine container finds its secrets, one file per key.
const DefaultSecretsMountPath = "/var/run/secrets/iss"

// SecretName returns the Kubernetes Secret that the External Secrets Operator syncs a logical
// key into: "iss-" and the key lower-cased with '_' turned into '-' (API_TOKEN: iss-api-token).
func SecretName(key string) string {
	return "iss-" + strings.ReplaceAll(strings.ToLower(key), "_", "-")
}

// ParseSecretKeys parses the iss.platform/secrets annotation: logical keys of the OCS
// SecretSchema separated by commas, with optional spaces. Each key must be an environment
// variable name (a letter or '_', then letters, digits or '_') whose Secret name is valid, and
// appear once. path is the annotation's field path; every fault is returned.
func ParseSecretKeys(value string, path *field.Path) ([]string, field.ErrorList) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	var keys []string
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, raw := range strings.Split(value, ",") {
		key := strings.TrimSpace(raw)
		switch {
		case key == "":
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("key %d is empty: separate keys with single commas, as in \"API_TOKEN,DB_PASSWORD\"", i+1)))
			continue
		case !isEnvVarName(key):
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("key %q is not an environment variable name: use letters, digits and '_', not starting with a digit, as in \"API_TOKEN\"", key)))
			continue
		case seen[key]:
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("key %q is listed twice: list each key once", key)))
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(SecretName(key)); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("key %q maps to the Secret name %q, which is not valid (%s): rename the key", key, SecretName(key), strings.Join(msgs, "; "))))
			continue
		}
		seen[key] = true
		keys = append(keys, key)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return keys, nil
}

func isEnvVarName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// Annotations that ask a secret-agent injector for a sidecar. Secrets reach engines through
// the External Secrets Operator only (ISS-001 section 2.2).
var secretAgentAnnotations = []string{"vault.hashicorp.com/agent-inject", "openbao.org/agent-inject"}

// secretAgentImages start the image repository names (last path element) of Vault and OpenBao
// and their variants (vault-enterprise, openbao-ubi), whose agent mode the injectors run as
// sidecars and init containers.
var secretAgentImages = []string{"vault", "openbao"}

// validateNoSecretAgents denies the annotations and containers of secret-agent sidecars.
func validateNoSecretAgents(annotations map[string]string, spec *corev1.PodSpec, root *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, a := range secretAgentAnnotations {
		if v, ok := annotations[a]; ok && v != "false" {
			errs = append(errs, field.Forbidden(root.Child("metadata", "annotations").Key(a),
				fmt.Sprintf("secret-agent sidecars are not allowed on engines: secrets arrive through the External Secrets Operator; list the keys in the %s annotation instead", AnnotationSecrets)))
		}
	}
	check := func(containers []corev1.Container, path *field.Path) {
		for i, c := range containers {
			repo := ImageRepository(c.Image)
			last := repo[strings.LastIndexByte(repo, '/')+1:]
			agentName := strings.HasPrefix(c.Name, "vault-agent") || strings.HasPrefix(c.Name, "openbao-agent")
			for _, img := range secretAgentImages {
				if strings.HasPrefix(last, img) || agentName {
					errs = append(errs, field.Forbidden(path.Index(i),
						fmt.Sprintf("container %q (%s) is a secret agent: secrets arrive through the External Secrets Operator; remove it and list the keys in the %s annotation", c.Name, c.Image, AnnotationSecrets)))
					break
				}
			}
		}
	}
	specPath := root.Child("spec")
	check(spec.InitContainers, specPath.Child("initContainers"))
	check(spec.Containers, specPath.Child("containers"))
	ephemeral := make([]corev1.Container, len(spec.EphemeralContainers))
	for i, c := range spec.EphemeralContainers {
		ephemeral[i] = corev1.Container{Name: c.Name, Image: c.Image}
	}
	check(ephemeral, specPath.Child("ephemeralContainers"))
	return errs
}
