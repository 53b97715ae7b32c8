// Package configsync keeps the engine image test of the webhook configurations' matchConditions
// equal to the policy's engine images, so that pods of an image the policy adds (a mirror of the
// engine, say) reach the webhook without a label, instead of running unchecked.
package configsync

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/iss-platform/iss-webhook/policy"
)

// imageTest finds the image test of a matchCondition: the CEL call c.image.matches('...'), its
// single-quoted pattern in group 1.
var imageTest = regexp.MustCompile(`c\.image\.matches\('((?:[^'\\]|\\.)*)'\)`)

// celQuote returns s as the body of a single-quoted CEL string.
func celQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// ImageTest returns the CEL test of a container c whose image matches pattern, the form in
// which the configurations carry it and RewriteImageTests finds it.
func ImageTest(pattern string) string { return "c.image.matches('" + celQuote(pattern) + "')" }

// RewriteImageTests returns expr with the pattern of every image test replaced by pattern, and
// whether that changed it.
func RewriteImageTests(expr, pattern string) (string, bool) {
	test := ImageTest(pattern)
	out := imageTest.ReplaceAllStringFunc(expr, func(string) string { return test })
	return out, out != expr
}

// Syncer rewrites the image tests of the iss-webhook configurations when the policy's engine
// images differ from them. It runs on the elected leader; its updates carry the resourceVersion
// they read, so they never overwrite a concurrent change (the self-signed mode's CA injection).
type Syncer struct {
	client   client.Client
	reader   client.Reader
	policies policy.Provider
	name     string
	interval time.Duration
}

// New returns a syncer of the configurations named name, writing with c and reading with
// reader (the API server itself, not a cache), every interval.
func New(c client.Client, reader client.Reader, policies policy.Provider, name string, interval time.Duration) *Syncer {
	return &Syncer{client: c, reader: reader, policies: policies, name: name, interval: interval}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: one replica writes.
func (s *Syncer) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (s *Syncer) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("configsync")
	for {
		if err := s.Sync(ctx); err != nil {
			log.Error(err, "keeping the webhook configurations' image tests in step with the policy")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.interval):
		}
	}
}

// Sync makes one pass over both configurations.
func (s *Syncer) Sync(ctx context.Context) error {
	pattern := policy.EngineImagePattern(s.policies.Current().Engines.Images)
	for _, obj := range []client.Object{&admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}} {
		if err := s.reader.Get(ctx, types.NamespacedName{Name: s.name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("reading %T %s: %w", obj, s.name, err)
		}
		changed := false
		for _, conds := range matchConditions(obj) {
			for i := range *conds {
				if expr, ok := RewriteImageTests((*conds)[i].Expression, pattern); ok {
					(*conds)[i].Expression = expr
					changed = true
				}
			}
		}
		if !changed {
			continue
		}
		if err := s.client.Update(ctx, obj); err != nil {
			return fmt.Errorf("updating the image tests of %T %s: %w", obj, s.name, err)
		}
		logf.FromContext(ctx).WithName("configsync").Info("rewrote the engine image tests of the webhook configuration", "kind", fmt.Sprintf("%T", obj), "pattern", pattern)
	}
	return nil
}

// matchConditions returns the matchConditions of every webhook of a configuration.
func matchConditions(obj client.Object) []*[]admissionregistrationv1.MatchCondition {
	var out []*[]admissionregistrationv1.MatchCondition
	switch c := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].MatchConditions)
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].MatchConditions)
		}
	}
	return out
}
