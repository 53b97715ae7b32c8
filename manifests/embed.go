// Package manifests embeds the install manifests, so that issctl carries the very webhook
// configurations the cluster registers.
package manifests

import (
	"bytes"
	_ "embed"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// WebhookConfigurations is manifests/webhook/webhooks.yaml.
//
//go:embed webhook/webhooks.yaml
var WebhookConfigurations []byte

// ParseWebhookConfigurations decodes WebhookConfigurations.
func ParseWebhookConfigurations() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	var mutating *admissionregistrationv1.MutatingWebhookConfiguration
	var validating *admissionregistrationv1.ValidatingWebhookConfiguration
	for _, doc := range bytes.Split(WebhookConfigurations, []byte("\n---\n")) {
		var kind struct{ Kind string }
		if err := yaml.Unmarshal(doc, &kind); err != nil {
			return nil, nil, err
		}
		var err error
		switch kind.Kind {
		case "MutatingWebhookConfiguration":
			mutating = &admissionregistrationv1.MutatingWebhookConfiguration{}
			err = yaml.UnmarshalStrict(doc, mutating)
		case "ValidatingWebhookConfiguration":
			validating = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			err = yaml.UnmarshalStrict(doc, validating)
		default:
			err = fmt.Errorf("unexpected kind %q in webhook/webhooks.yaml", kind.Kind)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if mutating == nil || validating == nil {
		return nil, nil, fmt.Errorf("webhook/webhooks.yaml must hold one mutating and one validating configuration")
	}
	return mutating, validating, nil
}
