package webhook

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestNewMetricsSharesARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	if first.decisions != second.decisions {
		t.Error("the second Metrics does not count into the registered collector")
	}
}
