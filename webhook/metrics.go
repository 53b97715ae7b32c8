package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iss-platform/iss-webhook/internal/promreg"
	"github.com/iss-platform/iss-webhook/policy"
)

// Decisions a review can end in, as counted by Metrics.
const (
	decisionAllowed = "allowed"
	decisionMutated = "mutated"
	decisionDenied  = "denied"
	// decisionWarned: admitted with warnings, in Warn mode.
	decisionWarned = "warned"
	// decisionAudited: admitted, logged and counted, in Audit mode.
	decisionAudited = "audited"
	// decisionExempt: admitted unchecked, in a namespace the policy exempts.
	decisionExempt = "exempt"
	// decisionUnavailable: refused because a fact could not be had (a cache not synced, OpenBao
	// or the engine lookup not answering); the API server retries.
	decisionUnavailable = "unavailable"
)

// Metrics counts the webhook's admission decisions. The request counts and latencies of each
// endpoint come from controller-runtime (controller_runtime_webhook_*); these say why.
type Metrics struct {
	decisions *prometheus.CounterVec
}

// NewMetrics creates the webhook's metrics and registers them with reg. When reg already has
// them (a second webhook in one process shares the registry), the registered ones are used.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "iss_admission_decisions_total",
		Help: "Admission decisions of iss-webhook by resource, rule group, enforcement mode and decision (allowed, mutated, denied, warned, audited, exempt, unavailable).",
	}, []string{"resource", "rule", "mode", "decision"})
	decisions, err := promreg.Register(reg, decisions)
	if err != nil {
		return nil, err
	}
	return &Metrics{decisions: decisions}, nil
}

// count records one decision under the mode the policy gives the rule group; nil Metrics count
// nothing.
func (m *Metrics) count(pol *policy.Policy, resource string, group policy.RuleGroup, decision string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(resource, string(group), string(pol.Mode(group)), decision).Inc()
}
