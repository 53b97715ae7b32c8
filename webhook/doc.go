// Package webhook is the admission plumbing of iss-webhook: it decodes AdmissionReview requests
// into typed objects, calls the rules of package policy and the mutators of package mutators,
// and encodes their outcome as a response. It holds no rule of its own, so that issctl, which
// calls the same packages offline, reaches the same verdicts.
package webhook
