package webhook

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated files")

const configurationsFile = "../manifests/webhook/webhooks.yaml"

// TestGeneratedWebhookConfigurations: manifests/webhook/webhooks.yaml is what the governed kinds
// and endpoints render; make generate rewrites it.
func TestGeneratedWebhookConfigurations(t *testing.T) {
	want := RenderConfigurations()
	if *update {
		if err := os.WriteFile(configurationsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(configurationsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the governed kinds render: run make generate", configurationsFile)
	}
}
