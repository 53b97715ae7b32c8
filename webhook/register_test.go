package webhook

import (
	"slices"
	"testing"

	"github.com/iss-platform/iss-webhook/manifests"
	"github.com/iss-platform/iss-webhook/policy"
)

// TestConfigurationsMatchHandlers checks that manifests/webhook names every path the webhook
// serves, and serves every path it names: a path missing on either side fails reviews at once.
func TestConfigurationsMatchHandlers(t *testing.T) {
	mutating, validating, err := manifests.ParseWebhookConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	var configured []string
	for _, w := range mutating.Webhooks {
		configured = append(configured, *w.ClientConfig.Service.Path)
	}
	for _, w := range validating.Webhooks {
		configured = append(configured, *w.ClientConfig.Service.Path)
	}
	served := Handlers(NewScheme(), Options{Policies: policy.NewHolder(policy.Default()), Metrics: testMetrics(t)})
	for _, p := range configured {
		if _, ok := served[p]; !ok {
			t.Errorf("manifests/webhook sends reviews to %s, which the webhook does not serve", p)
		}
	}
	for p := range served {
		if !slices.Contains(configured, p) {
			t.Errorf("the webhook serves %s, which no configuration in manifests/webhook names", p)
		}
	}
}
