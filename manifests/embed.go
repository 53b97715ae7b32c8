// Package manifests embeds the install manifests, so that issctl carries the very webhook
// configurations the cluster registers.
package manifests

import _ "embed"

// WebhookConfigurations is manifests/webhook/webhooks.yaml.
//
//go:embed webhook/webhooks.yaml
var WebhookConfigurations []byte
