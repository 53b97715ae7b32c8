package webhook

import (
	"bytes"
	"os"
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/policy"
)

// TestConfigurationsMatchHandlers checks that manifests/webhook names every path the webhook
// serves, and serves every path it names: a path missing on either side fails reviews at once.
func TestConfigurationsMatchHandlers(t *testing.T) {
	data, err := os.ReadFile("../manifests/webhook/webhooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var configured []string
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var cfg struct {
			Kind     string
			Webhooks []struct {
				Name         string
				ClientConfig admissionregistrationv1.WebhookClientConfig `json:"clientConfig"`
			}
		}
		if err := yaml.Unmarshal(doc, &cfg); err != nil {
			t.Fatal(err)
		}
		for _, w := range cfg.Webhooks {
			if w.ClientConfig.Service == nil || w.ClientConfig.Service.Path == nil {
				t.Fatalf("webhook %s has no service path", w.Name)
			}
			configured = append(configured, *w.ClientConfig.Service.Path)
		}
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
