package selfsigned

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/iss-platform/iss-webhook/internal/promreg"
)

// Options say where the authority keeps its state and whom it serves.
type Options struct {
	Config
	// Secret holds the CA, the CA bundle and the serving certificate.
	Secret types.NamespacedName
	// WebhookConfiguration is the name of the MutatingWebhookConfiguration and of the
	// ValidatingWebhookConfiguration whose webhooks get the CA bundle.
	WebhookConfiguration string
	// CertDir is where the webhook server reads tls.crt and tls.key.
	CertDir string
}

// interval is how often the keeper and the syncer look: a thirtieth of the serving
// certificate's validity, from 1s to 1m.
func (o Options) interval() time.Duration {
	return min(max(o.CertValidity/30, time.Second), time.Minute)
}

// Keeper writes the Secret and injects its CA bundle into the webhook configurations. It runs on
// the elected leader, and alone renews and rotates (Bootstrap only repairs a Secret no replica
// could serve); the writes carry resourceVersion preconditions, so a replica that lost the lease
// mid-write cannot overwrite a newer content.
type Keeper struct {
	client client.Client
	reader client.Reader
	opts   Options
	now    func() time.Time
}

// NewKeeper returns a keeper that writes with c and reads with reader, which must read the API
// server itself (a manager's API reader), never a cache that could be behind a write.
func NewKeeper(c client.Client, reader client.Reader, opts Options) *Keeper {
	return &Keeper{client: c, reader: reader, opts: opts, now: time.Now}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: one replica writes.
func (k *Keeper) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (k *Keeper) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("self-signed")
	for {
		if err := k.Ensure(ctx); err != nil {
			log.Error(err, "keeping the self-signed certificates")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(k.opts.interval()):
		}
	}
}

// Ensure makes one pass: the Secret as Next wants it, then its bundle in every webhook.
func (k *Keeper) Ensure(ctx context.Context) error {
	data, err := k.ensureSecret(ctx)
	if err != nil {
		return err
	}
	return k.inject(ctx, data[KeyCABundle])
}

// ensureSecret writes the Secret when Next changes it, and returns its content.
func (k *Keeper) ensureSecret(ctx context.Context) (map[string][]byte, error) {
	secret, found, err := k.readSecret(ctx)
	if err != nil {
		return nil, err
	}
	return k.writeNext(ctx, secret, found)
}

// readSecret reads the Secret, and tells whether it exists: when not, it returns an empty one.
func (k *Keeper) readSecret(ctx context.Context) (*corev1.Secret, bool, error) {
	secret := &corev1.Secret{}
	err := k.reader.Get(ctx, k.opts.Secret, secret)
	switch {
	case apierrors.IsNotFound(err):
		return &corev1.Secret{}, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("reading Secret %s: %w", k.opts.Secret, err)
	}
	return secret, true, nil
}

// writeNext writes what Next wants of secret, as read, and returns the content: a Create when it
// was not found, else an Update with the read resourceVersion as precondition.
func (k *Keeper) writeNext(ctx context.Context, secret *corev1.Secret, found bool) (map[string][]byte, error) {
	trusted, err := k.trusted(ctx, secret.Data[KeyCABundle])
	if err != nil {
		return nil, err
	}
	data, changed, err := Next(secret.Data, k.opts.Config, k.now(), trusted)
	if err != nil || !changed {
		return data, err
	}
	log := logf.FromContext(ctx).WithName("self-signed")
	if !found {
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: k.opts.Secret.Name, Namespace: k.opts.Secret.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "iss-webhook", "app.kubernetes.io/component": "self-signed-certificates"}},
			Type: corev1.SecretTypeTLS, Data: data,
		}
		if err := k.client.Create(ctx, secret); err != nil {
			return nil, fmt.Errorf("creating Secret %s: %w", k.opts.Secret, err)
		}
		log.Info("created the CA and the serving certificate", "secret", k.opts.Secret)
		return data, nil
	}
	secret.Data = data
	// The Get's resourceVersion is the precondition: a concurrent write makes this one fail.
	if err := k.client.Update(ctx, secret); err != nil {
		return nil, fmt.Errorf("updating Secret %s: %w", k.opts.Secret, err)
	}
	log.Info("rotated the self-signed certificates", "secret", k.opts.Secret)
	return data, nil
}

// configurations returns the webhook configurations, empty when they are not installed (yet).
func (k *Keeper) configurations(ctx context.Context) ([]client.Object, error) {
	var out []client.Object
	for _, obj := range []client.Object{&admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}} {
		err := k.reader.Get(ctx, types.NamespacedName{Name: k.opts.WebhookConfiguration}, obj)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("reading the webhook configuration %s: %w", k.opts.WebhookConfiguration, err)
		default:
			out = append(out, obj)
		}
	}
	return out, nil
}

// caBundles returns a pointer to the caBundle of every webhook of a configuration.
func caBundles(obj client.Object) []*[]byte {
	var out []*[]byte
	switch c := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig.CABundle)
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig.CABundle)
		}
	}
	return out
}

// trusted tells whether every webhook already trusts bundle.
func (k *Keeper) trusted(ctx context.Context, bundle []byte) (bool, error) {
	if len(bundle) == 0 {
		return false, nil
	}
	configs, err := k.configurations(ctx)
	if err != nil {
		return false, err
	}
	for _, obj := range configs {
		for _, b := range caBundles(obj) {
			if !bytes.Equal(*b, bundle) {
				return false, nil
			}
		}
	}
	return len(configs) > 0, nil
}

// inject writes bundle into every webhook of the configurations that lacks it.
func (k *Keeper) inject(ctx context.Context, bundle []byte) error {
	configs, err := k.configurations(ctx)
	if err != nil {
		return err
	}
	for _, obj := range configs {
		changed := false
		for _, b := range caBundles(obj) {
			if !bytes.Equal(*b, bundle) {
				*b = bytes.Clone(bundle)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if err := k.client.Update(ctx, obj); err != nil {
			return fmt.Errorf("injecting the CA bundle into %T %s: %w", obj, obj.GetName(), err)
		}
		logf.FromContext(ctx).WithName("self-signed").Info("injected the CA bundle", "configuration", fmt.Sprintf("%T", obj), "name", obj.GetName())
	}
	return nil
}

// Bootstrap makes sure the Secret holds a usable serving certificate and writes it into the cert
// directory, before the webhook server starts (it cannot start without one). Every replica runs
// it, not only the leader, so it writes the Secret only when a replica could not serve otherwise:
// when it is missing or its serving certificate is not usable (see needsBootstrapWrite). A
// renewal or a CA rotation that is merely due is left to the leader's Keeper, which alone
// rotates. The first replica to create the Secret wins; the others read what it wrote.
func Bootstrap(ctx context.Context, c client.Client, opts Options) error {
	k := NewKeeper(c, c, opts)
	log := logf.FromContext(ctx).WithName("self-signed")
	deadline := time.Now().Add(time.Minute)
	for {
		data, err := k.bootstrapSecret(ctx)
		if err == nil {
			_, err = writeServing(opts.CertDir, data)
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bootstrapping the self-signed certificates: %w", err)
		}
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
			// Another replica wrote first: read what it wrote.
			log.Info("another replica wrote the self-signed certificates; reading them again", "error", err.Error())
			continue
		}
		log.Info("bootstrapping the self-signed certificates; retrying", "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// bootstrapSecret returns the Secret's content, after writing what Next wants of it only when
// needsBootstrapWrite says a replica could not serve its serving certificate.
func (k *Keeper) bootstrapSecret(ctx context.Context) (map[string][]byte, error) {
	secret, found, err := k.readSecret(ctx)
	if err != nil {
		return nil, err
	}
	if !needsBootstrapWrite(secret.Data, k.now()) {
		return secret.Data, nil
	}
	return k.writeNext(ctx, secret, found)
}

// needsBootstrapWrite tells whether a starting replica must write the Secret data before it can
// serve: when it holds no usable serving certificate, because the Secret is missing (nil data),
// or the certificate or its key is missing or unparsable, the key is another certificate's, or
// the certificate has expired. A renewal that is due, a CA that is due or rotating, hosts that
// changed, are no reason: the replica serves the certificate as it is, and the leader's Keeper
// replaces it.
func needsBootstrapWrite(data map[string][]byte, now time.Time) bool {
	cert, _, err := parsePair(data[KeyServingCert], data[KeyServingKey])
	return err != nil || !now.Before(cert.NotAfter)
}

// Syncer writes the Secret's serving certificate into the cert directory whenever it changes,
// where the webhook server reloads it. Every replica runs one.
type Syncer struct {
	cache  client.Reader
	opts   Options
	expiry prometheus.Gauge
}

// NewSyncer returns a syncer that reads the Secret from cache, an informer cache that holds it,
// and registers the gauge iss_serving_certificate_expiry_timestamp_seconds with reg.
func NewSyncer(cache client.Reader, opts Options, reg prometheus.Registerer) (*Syncer, error) {
	expiry, err := promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "iss_serving_certificate_expiry_timestamp_seconds",
		Help: "When the self-signed serving certificate that this replica serves expires, as a Unix time.",
	}))
	if err != nil {
		return nil, err
	}
	return &Syncer{cache: cache, opts: opts, expiry: expiry}, nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (s *Syncer) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (s *Syncer) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("self-signed")
	for {
		secret := &corev1.Secret{}
		if err := s.cache.Get(ctx, s.opts.Secret, secret); err != nil {
			log.Error(err, "reading the serving certificate's Secret")
		} else if wrote, err := writeServing(s.opts.CertDir, secret.Data); err != nil {
			log.Error(err, "writing the serving certificate")
		} else {
			if wrote {
				log.Info("wrote the new serving certificate", "certDir", s.opts.CertDir)
			}
			if cert, _, err := parsePair(secret.Data[KeyServingCert], secret.Data[KeyServingKey]); err == nil {
				s.expiry.Set(float64(cert.NotAfter.Unix()))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(s.opts.interval(), time.Second)):
		}
	}
}

// writeServing writes tls.crt and tls.key into dir when they differ, each by rename so that the
// webhook server never reads a half-written file. It tells whether it wrote.
func writeServing(dir string, data map[string][]byte) (bool, error) {
	if _, _, err := parsePair(data[KeyServingCert], data[KeyServingKey]); err != nil {
		return false, fmt.Errorf("the Secret holds no usable serving certificate: %w", err)
	}
	wrote := false
	// The key first: the server reloads on either file, and a new key with the old certificate
	// fails to load and is retried, where a new certificate with the old key would too.
	for _, name := range []string{KeyServingKey, KeyServingCert} {
		path := filepath.Join(dir, name)
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, data[name]) {
			continue
		}
		tmp, err := os.CreateTemp(dir, "."+name+"-")
		if err != nil {
			return wrote, err
		}
		if _, err := tmp.Write(data[name]); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return wrote, err
		}
		if err := tmp.Close(); err != nil {
			return wrote, err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return wrote, err
		}
		wrote = true
	}
	return wrote, nil
}
