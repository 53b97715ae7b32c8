package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/iss-platform/iss-webhook/internal/selfsigned"
)

// The cert-manager mode's objects, as manifests/cert-manager names them.
const (
	servingSecret      = "iss-webhook-tls"
	servingCertificate = "iss-webhook"
	caCertificate      = "iss-webhook-ca"
	caSecret           = "iss-webhook-ca"
	installNamespace   = "iss-system"
	webhookDeployment  = "iss-webhook"
	// injectCAFrom is cert-manager's CA injector's annotation on the webhook configurations.
	injectCAFrom = "cert-manager.io/inject-ca-from"
	// restartedAt is the pod template annotation whose change restarts a Deployment's pods, as
	// kubectl rollout restart sets it.
	restartedAt = "kubectl.kubernetes.io/restartedAt"
)

// certManagerHandover makes sure that the serving certificate is one cert-manager issued from
// its CA.
//
// A serving certificate of another CA is there after a switch from the self-signed mode (the
// Secret has the same name and keys, and cert-manager takes it over as it is) or after
// cert-manager renewed its CA. Left alone, the CA injector would write cert-manager's CA at the
// next renewal while the replicas serve the old certificate until the kubelet updates their
// Secret volumes, and reviews would fail for that minute. So the hand-over, in an order where the
// API server trusts what every replica serves at every moment:
//  1. before cert-manager's serving Certificate is applied (cert-manager may issue at once), the
//     rollout of this mode's replicas ends, so that no replica of the self-signed mode writes
//     the Secret or the bundle any more, and the installed configurations trust both their
//     current bundle and cert-manager's CA, without the injector's annotation, which they get
//     back at the end (trustBoth);
//  2. cert-manager issues a new serving certificate, as cmctl renew asks for it (renew);
//  3. the Deployment restarts, so that every replica serves it, and the old replicas go; the
//     self-signed mode's CA key leaves the Secret.
//
// An install interrupted after cert-manager issued and before the restart leaves a Secret of
// cert-manager's CA and configurations that still trust the other one; the next install finds
// that and runs the hand-over again, rather than trusting cert-manager's CA alone while the
// replicas may still serve the old certificate.
type certManagerHandover struct {
	c   client.Client
	out io.Writer
	// ca is cert-manager's CA for the serving certificate.
	ca *x509.Certificate
	// needed is set when the serving Secret holds a certificate of another CA, or the
	// configurations trust another CA than cert-manager's.
	needed bool
}

// trustBoth reads cert-manager's CA once it is issued and, when the serving Secret holds a
// certificate of another CA or the installed configurations (of configs, those that exist)
// trust another CA, waits for the rollout and makes those configurations trust both CAs.
func (h *certManagerHandover) trustBoth(ctx context.Context, configs []*unstructured.Unstructured, apply func(*unstructured.Unstructured) error) error {
	if err := waitForCertificate(ctx, h.c, caCertificate, h.out); err != nil {
		return err
	}
	caData, err := secretData(ctx, h.c, caSecret)
	if err != nil {
		return err
	}
	if h.ca, err = onlyCertificate(caData[corev1.TLSCertKey]); err != nil {
		return fmt.Errorf("Secret %s/%s, %s: %w", installNamespace, caSecret, corev1.TLSCertKey, err)
	}
	serving, err := secretData(ctx, h.c, servingSecret)
	if apierrors.IsNotFound(err) {
		return nil // a first install: cert-manager issues the first certificate
	}
	if err != nil {
		return err
	}
	trusted, installed, err := liveBundles(ctx, h.c, configs)
	if err != nil {
		return err
	}
	why := handoverReason(serving[corev1.TLSCertKey], trusted, h.ca)
	if why == "" {
		return nil
	}
	h.needed = true
	fmt.Fprintln(h.out, why)
	// The replicas of the self-signed mode write the Secret and the configurations' bundle
	// while they run; the install has taken their rights away and rolled out the replicas of
	// this mode, and none of the old ones may be left when cert-manager takes the Secret over.
	if err := waitForDeployment(ctx, h.c, h.out); err != nil {
		return err
	}
	both, err := mergeBundles(append(trusted, serving[selfsigned.KeyCACert], caData[corev1.TLSCertKey])...)
	if err != nil {
		return err
	}
	for _, cfg := range installed {
		during := cfg.DeepCopy()
		annotations := during.GetAnnotations()
		delete(annotations, injectCAFrom)
		during.SetAnnotations(annotations)
		if err := setBundle(during, both); err != nil {
			return err
		}
		if err := apply(during); err != nil {
			return err
		}
	}
	fmt.Fprintln(h.out, "the webhook configurations trust the current CA and cert-manager's while the certificate changes hands")
	return nil
}

// renew, after a trustBoth that found a certificate of another CA, has cert-manager issue one
// from its CA and restarts the Deployment, returning once no replica serves the old one. It
// returns the CA bundle the configurations are to trust from then on: the serving Secret's
// ca.crt, the very value cert-manager's CA injector writes.
func (h *certManagerHandover) renew(ctx context.Context) ([]byte, error) {
	if !h.needed {
		data, err := secretData(ctx, h.c, servingSecret)
		if err != nil {
			return nil, err
		}
		return servingBundle(data)
	}
	if err := renewCertificate(ctx, h.c, servingCertificate); err != nil {
		return nil, err
	}
	fmt.Fprintf(h.out, "asked cert-manager to renew certificate %s/%s now, as cmctl renew does\n", installNamespace, servingCertificate)
	// The restart must come after the last issuance: cert-manager may issue twice (some
	// releases issue when the Certificate is applied over a Secret without their annotations,
	// and again for the request above), and replicas started between the two would serve a
	// certificate the Secret no longer holds. The Issuing condition set above stays until
	// cert-manager has written the Secret of the issuance it asked for.
	var serving map[string][]byte
	err := poll(ctx, h.out, "cert-manager to issue a serving certificate from its CA", func() (bool, string) {
		if pending, why := issuancePending(ctx, h.c, servingCertificate); pending {
			return false, why
		}
		data, err := secretData(ctx, h.c, servingSecret)
		if err != nil {
			return false, err.Error()
		}
		if !issuedBy(data[corev1.TLSCertKey], h.ca) {
			return false, "Secret " + installNamespace + "/" + servingSecret + " still holds the old certificate"
		}
		serving = data
		return true, ""
	})
	if err != nil {
		return nil, err
	}
	if err := restartDeployment(ctx, h.c); err != nil {
		return nil, err
	}
	fmt.Fprintf(h.out, "restarted deployment %s/%s, so that every replica serves the new certificate\n", installNamespace, webhookDeployment)
	if err := waitForDeployment(ctx, h.c, h.out); err != nil {
		return nil, err
	}
	// cert-manager keeps the Secret's keys it does not write: the self-signed mode's CA key
	// would stay in a Secret every replica mounts.
	if err := dropSelfSignedKeys(ctx, h.c, h.out); err != nil {
		return nil, err
	}
	return servingBundle(serving)
}

// handoverReason says why the serving certificate has to be handed over to cert-manager's CA,
// given the serving Secret's certificate and the bundles the installed configurations trust,
// or "" when it need not be.
func handoverReason(serving []byte, trusted [][]byte, ca *x509.Certificate) string {
	switch {
	case !issuedBy(serving, ca):
		return "the serving certificate in Secret " + installNamespace + "/" + servingSecret + " is not from cert-manager's CA (a switch from the self-signed mode, or a renewed CA): handing it over"
	case trustsOtherCA(trusted, ca):
		// The Secret is cert-manager's, but the configurations still trust another CA: a
		// hand-over that was interrupted before its restart, whose replicas may still serve the
		// old certificate. Trusting cert-manager's CA alone now would fail their reviews, so the
		// hand-over runs again from its first step.
		return "the webhook configurations still trust a CA other than cert-manager's (an earlier hand-over did not finish): handing the certificate over again"
	}
	return ""
}

// issuancePending says whether cert-manager has yet to finish an issuance of a Certificate:
// its Issuing condition is true, or it is not Ready for its current generation.
func issuancePending(ctx context.Context, c client.Client, name string) (bool, string) {
	cert := &certmanagerv1.Certificate{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: name}, cert); err != nil {
		return true, err.Error()
	}
	for _, cond := range cert.Status.Conditions {
		if cond.Type == certmanagerv1.CertificateConditionIssuing && cond.Status == cmmeta.ConditionTrue {
			return true, "certificate " + installNamespace + "/" + name + " is being issued (" + cond.Reason + ")"
		}
	}
	if ready, why := certificateReady(cert); !ready {
		return true, "certificate " + installNamespace + "/" + name + " is not Ready: " + why
	}
	return false, ""
}

// trustsOtherCA says whether any of bundles holds a certificate other than ca.
func trustsOtherCA(bundles [][]byte, ca *x509.Certificate) bool {
	for _, b := range bundles {
		certs, err := selfsigned.ParseBundle(b)
		if err != nil {
			return true // not what cert-manager's CA injector writes
		}
		for _, cert := range certs {
			if !cert.Equal(ca) {
				return true
			}
		}
	}
	return false
}

// dropSelfSignedKeys removes from the serving Secret the keys only the self-signed mode writes
// (its CA's key and its bundle), once no replica of that mode runs.
func dropSelfSignedKeys(ctx context.Context, c client.Client, out io.Writer) error {
	data, err := secretData(ctx, c, servingSecret)
	if err != nil {
		return err
	}
	var gone []string
	for _, key := range []string{selfsigned.KeyCAKey, selfsigned.KeyCABundle} {
		if _, ok := data[key]; ok {
			gone = append(gone, key)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	patch := map[string]any{}
	for _, key := range gone {
		patch[key] = nil
	}
	body, err := json.Marshal(map[string]any{"data": patch})
	if err != nil {
		return err
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: installNamespace, Name: servingSecret}}
	if err := c.Patch(ctx, s, client.RawPatch(types.MergePatchType, body), client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("removing the self-signed mode's keys from Secret %s/%s: %w", installNamespace, servingSecret, err)
	}
	fmt.Fprintf(out, "removed %s of the self-signed mode from Secret %s/%s\n", strings.Join(gone, " and "), installNamespace, servingSecret)
	return nil
}

// secretData reads a Secret of the install's namespace.
func secretData(ctx context.Context, c client.Client, name string) (map[string][]byte, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: name}, s); err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", installNamespace, name, err)
	}
	return s.Data, nil
}

// servingBundle is the serving Secret's ca.crt, checked to hold certificates.
func servingBundle(data map[string][]byte) ([]byte, error) {
	if _, err := mergeBundles(data[selfsigned.KeyCACert]); err != nil {
		return nil, fmt.Errorf("Secret %s/%s, %s: %w", installNamespace, servingSecret, selfsigned.KeyCACert, err)
	}
	return data[selfsigned.KeyCACert], nil
}

// onlyCertificate parses PEM data that holds one certificate.
func onlyCertificate(data []byte) (*x509.Certificate, error) {
	certs, err := selfsigned.ParseBundle(data)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs[0], nil
}

// issuedBy says whether the first certificate of PEM data chains to ca (its hostname and
// lifetime aside: the question is who issued it).
func issuedBy(data []byte, ca *x509.Certificate) bool {
	leaf, err := onlyCertificate(data)
	if err != nil {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: leaf.NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// mergeBundles returns the certificates of PEM bundles as one bundle, each once, in the order
// met; empty bundles are skipped, and a bundle that does not parse is an error.
func mergeBundles(bundles ...[]byte) ([]byte, error) {
	var all []*x509.Certificate
	for _, b := range bundles {
		certs, err := selfsigned.ParseBundle(b)
		if err != nil {
			return nil, err
		}
		for _, cert := range certs {
			if !slices.ContainsFunc(all, cert.Equal) {
				all = append(all, cert)
			}
		}
	}
	if len(all) == 0 {
		return nil, errors.New("no certificate")
	}
	return selfsigned.EncodeBundle(all), nil
}

// liveBundles returns the CA bundles the API server trusts now, those of every webhook of the
// installed configurations, and which of configs are installed (none before a first install).
func liveBundles(ctx context.Context, c client.Client, configs []*unstructured.Unstructured) (bundles [][]byte, installed []*unstructured.Unstructured, err error) {
	for _, cfg := range configs {
		key := client.ObjectKey{Name: cfg.GetName()}
		var hooks []admissionregistrationv1.WebhookClientConfig
		switch cfg.GetKind() {
		case "MutatingWebhookConfiguration":
			live := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err = c.Get(ctx, key, live); err == nil {
				for _, h := range live.Webhooks {
					hooks = append(hooks, h.ClientConfig)
				}
			}
		case "ValidatingWebhookConfiguration":
			live := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err = c.Get(ctx, key, live); err == nil {
				for _, h := range live.Webhooks {
					hooks = append(hooks, h.ClientConfig)
				}
			}
		default:
			return nil, nil, fmt.Errorf("%s %s is no webhook configuration", cfg.GetKind(), cfg.GetName())
		}
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("reading %s %s: %w", cfg.GetKind(), cfg.GetName(), err)
		}
		installed = append(installed, cfg)
		for _, h := range hooks {
			bundles = append(bundles, h.CABundle)
		}
	}
	return bundles, installed, nil
}

// setBundle puts bundle into every webhook of a configuration.
func setBundle(cfg *unstructured.Unstructured, bundle []byte) error {
	hooks, _, err := unstructured.NestedSlice(cfg.Object, "webhooks")
	if err != nil {
		return err
	}
	for i := range hooks {
		hook, ok := hooks[i].(map[string]any)
		if !ok {
			return fmt.Errorf("%s %s: webhooks[%d] is not an object", cfg.GetKind(), cfg.GetName(), i)
		}
		if err := unstructured.SetNestedField(hook, base64.StdEncoding.EncodeToString(bundle), "clientConfig", "caBundle"); err != nil {
			return err
		}
	}
	return unstructured.SetNestedSlice(cfg.Object, hooks, "webhooks")
}

// renewCertificate asks cert-manager to issue a Certificate again now, as cmctl renew does:
// the Issuing condition, reason ManuallyTriggered.
func renewCertificate(ctx context.Context, c client.Client, name string) error {
	for {
		cert := &certmanagerv1.Certificate{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: name}, cert); err != nil {
			return fmt.Errorf("reading certificate %s/%s: %w", installNamespace, name, err)
		}
		now := metav1.Now()
		cert.Status.Conditions = append(slices.DeleteFunc(cert.Status.Conditions, func(cond certmanagerv1.CertificateCondition) bool {
			return cond.Type == certmanagerv1.CertificateConditionIssuing
		}), certmanagerv1.CertificateCondition{Type: certmanagerv1.CertificateConditionIssuing, Status: cmmeta.ConditionTrue,
			Reason: "ManuallyTriggered", Message: "Certificate re-issuance manually triggered by issctl install", LastTransitionTime: &now,
			ObservedGeneration: cert.Generation})
		err := c.Status().Update(ctx, cert, client.FieldOwner(fieldOwner))
		if apierrors.IsConflict(err) {
			continue // cert-manager wrote its status in between
		}
		if err != nil {
			return fmt.Errorf("asking cert-manager to renew certificate %s/%s: %w", installNamespace, name, err)
		}
		return nil
	}
}

// restartDeployment restarts the webhook's pods, as kubectl rollout restart does.
func restartDeployment(ctx context.Context, c client.Client) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, restartedAt, time.Now().UTC().Format(time.RFC3339))
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: installNamespace, Name: webhookDeployment}}
	if err := c.Patch(ctx, d, client.RawPatch(types.StrategicMergePatchType, []byte(patch)), client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("restarting deployment %s/%s: %w", installNamespace, webhookDeployment, err)
	}
	return nil
}
