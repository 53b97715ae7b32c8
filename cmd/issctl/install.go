package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/iss-platform/iss-webhook/internal/selfsigned"
	"github.com/iss-platform/iss-webhook/manifests"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/webhook"
)

// fieldOwner is the field manager of issctl's server-side applies.
const fieldOwner = "issctl"

// installOptions are the flags of issctl install and uninstall.
type installOptions struct {
	kubeconfig string
	certMode   string
	image      string
	pullPolicy string
	dryRun     bool
	output     string
	timeout    time.Duration
}

func install(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := installOptions{}
	fs := flag.NewFlagSet("issctl install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: issctl install [flags]

Installs iss-webhook: the manifests embedded in issctl (those of kubectl apply -k manifests/, or
manifests/self-signed), applied by server-side apply in the order that never locks the cluster
out: namespace and CRDs first (waiting until they are established), then RBAC, the Deployment
and the policy, the webhook configurations last. Then it waits, with progress, until the
Deployment is available, the certificate is ready and the webhook answers. Running it again
upgrades. In the cert-manager mode, a serving certificate that is not from cert-manager's CA (a
switch from the self-signed mode) is handed over: both CAs trusted, a new certificate issued,
the replicas restarted, then cert-manager's CA alone, so that no review fails meanwhile; an
install interrupted during the hand-over finishes it when run again.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path of a kubeconfig; empty means $KUBECONFIG, else ~/.kube/config")
	fs.StringVar(&o.certMode, "cert-mode", manifests.CertModeCertManager, "cert-manager (cert-manager issues the serving certificate; it must be installed) or self-signed (the webhook keeps its own CA)")
	fs.StringVar(&o.image, "image", manifests.DefaultImage, "the iss-webhook image to run")
	fs.StringVar(&o.pullPolicy, "image-pull-policy", "", "the webhook containers' imagePullPolicy: Always, IfNotPresent or Never (Never where the image was loaded onto the nodes); empty leaves the Kubernetes default")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print what would be applied, in order, and change nothing (with -o yaml)")
	fs.StringVar(&o.output, "o", "", "with --dry-run: yaml")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the webhook to answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitConform
		}
		return exitUsage
	}
	if fs.NArg() > 0 || (o.output != "" && o.output != "yaml") || (o.output == "yaml") != o.dryRun {
		fmt.Fprintln(stderr, "issctl install: --dry-run goes with -o yaml; see --help")
		return exitUsage
	}
	objs, err := manifests.Render(o.certMode, o.image)
	if err == nil {
		err = manifests.SetImagePullPolicy(objs, o.pullPolicy)
	}
	if err != nil {
		fmt.Fprintln(stderr, "issctl install:", err)
		return exitUsage
	}
	objs = installOrder(objs)
	if o.dryRun {
		for _, obj := range objs {
			data, err := yaml.Marshal(obj.Object)
			if err != nil {
				fmt.Fprintln(stderr, "issctl install:", err)
				return exitUsage
			}
			fmt.Fprintf(stdout, "---\n%s", data)
		}
		return exitConform
	}
	c, err := clusterClient(o.kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "issctl install:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := runInstall(ctx, c, o, objs, stdout); err != nil {
		fmt.Fprintln(stderr, "issctl install:", err)
		return exitUsage
	}
	return exitConform
}

// installPhase orders objects: namespaces and CRDs, then what the webhook runs on, then the
// policy, then the webhook configurations. The ISSPolicy goes before the configurations, so that
// a first install does not need the webhook that validates it.
func installPhase(obj *unstructured.Unstructured) int {
	switch obj.GetKind() {
	case "Namespace", "CustomResourceDefinition":
		return 0
	case "ISSPolicy":
		return 2
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
		return 3
	default:
		return 1
	}
}

// installOrder sorts objects by phase, keeping kustomize's order within each.
func installOrder(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(a, b *unstructured.Unstructured) int { return installPhase(a) - installPhase(b) })
	return out
}

// clusterClient returns a client of the kubeconfig's cluster that knows the types issctl reads.
func clusterClient(kubeconfig string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	scheme := webhook.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{apiextensionsv1.AddToScheme, certmanagerv1.AddToScheme, openreportsv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

func runInstall(ctx context.Context, c client.Client, o installOptions, objs []*unstructured.Unstructured, out io.Writer) error {
	if o.certMode == manifests.CertModeCertManager {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: "certificates.cert-manager.io"}, crd); err != nil {
			return fmt.Errorf("cert-manager is not installed (no CRD certificates.cert-manager.io: %v): install it first, or install with --cert-mode self-signed", err)
		}
	}
	apply := func(obj *unstructured.Unstructured) error {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), objectName(obj), err)
		}
		fmt.Fprintf(out, "applied %s %s\n", strings.ToLower(obj.GetKind()), objectName(obj))
		return nil
	}
	byPhase := map[int][]*unstructured.Unstructured{}
	for _, obj := range objs {
		byPhase[installPhase(obj)] = append(byPhase[installPhase(obj)], obj)
	}
	// The namespace and the CRDs, established before anything uses them.
	for _, obj := range byPhase[0] {
		if err := apply(obj); err != nil {
			return err
		}
	}
	if err := waitForCRDs(ctx, c, objs, out); err != nil {
		return err
	}
	// What the webhook runs on, then the webhook itself serving, before the API server is told
	// to call it: until then no request waits on a webhook that cannot answer.
	// In the cert-manager mode the serving Certificate waits for the hand-over's first step
	// (certManagerHandover).
	var servingCert *unstructured.Unstructured
	for _, obj := range byPhase[1] {
		if o.certMode == manifests.CertModeCertManager && obj.GetKind() == "Certificate" && obj.GetName() == servingCertificate {
			servingCert = obj
			continue
		}
		if err := apply(obj); err != nil {
			return err
		}
	}
	// Before the hand-over: the self-signed mode's RBAC goes, so that no replica of that mode
	// writes the Secret or the configurations' bundle any more.
	if err := deleteOtherMode(ctx, c, o.certMode, objs, out); err != nil {
		return err
	}
	var servingCA []byte
	if o.certMode == manifests.CertModeCertManager {
		if servingCert == nil {
			return fmt.Errorf("the cert-manager mode's manifests have no Certificate %s/%s", installNamespace, servingCertificate)
		}
		handover := &certManagerHandover{c: c, out: out}
		if err := handover.trustBoth(ctx, byPhase[3], apply); err != nil {
			return err
		}
		if err := apply(servingCert); err != nil {
			return err
		}
		if err := waitForCertificate(ctx, c, servingCertificate, out); err != nil {
			return err
		}
		var err error
		if servingCA, err = handover.renew(ctx); err != nil {
			return err
		}
	}
	if err := waitForDeployment(ctx, c, out); err != nil {
		return err
	}
	// The policy only when there is none: a cluster's own ISSPolicy stays as it is, and an
	// install that repairs a broken webhook does not need the webhook that validates it.
	for _, obj := range byPhase[2] {
		existing := &unstructured.Unstructured{}
		existing.SetGroupVersionKind(obj.GroupVersionKind())
		err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
		switch {
		case err == nil:
			fmt.Fprintf(out, "kept %s %s (it exists)\n", strings.ToLower(obj.GetKind()), objectName(obj))
		case apierrors.IsNotFound(err):
			if err := c.Create(ctx, obj, client.FieldOwner(fieldOwner)); err != nil {
				return fmt.Errorf("creating %s %s: %w", obj.GetKind(), objectName(obj), err)
			}
			fmt.Fprintf(out, "created %s %s\n", strings.ToLower(obj.GetKind()), objectName(obj))
		default:
			return err
		}
	}
	switch o.certMode {
	case manifests.CertModeSelfSigned:
		// The webhook's CA goes in with the configurations, so that the API server trusts the
		// webhook from the first call rather than from the leader's next pass.
		if err := setCABundle(ctx, c, byPhase[3]); err != nil {
			return err
		}
	case manifests.CertModeCertManager:
		// The CA the injector writes goes in with the configurations too: an apply without a
		// caBundle would take away one that issctl set before, until the injector's next pass.
		for _, cfg := range byPhase[3] {
			if err := setBundle(cfg, servingCA); err != nil {
				return err
			}
		}
	}
	for _, obj := range byPhase[3] {
		if err := apply(obj); err != nil {
			return err
		}
	}
	if err := waitForWebhook(ctx, c, out); err != nil {
		return err
	}
	fmt.Fprintln(out, "iss-webhook is installed and answering; the policy is the ISSPolicy default (kubectl get isspolicy)")
	return nil
}

// setCABundle puts the self-signed mode's CA bundle, from the webhook's Secret, into every
// webhook of the configurations.
func setCABundle(ctx context.Context, c client.Client, configs []*unstructured.Unstructured) error {
	data, err := secretData(ctx, c, servingSecret)
	if err != nil {
		return fmt.Errorf("reading the webhook's CA: %w", err)
	}
	bundle := data[selfsigned.KeyCABundle]
	if len(bundle) == 0 {
		return fmt.Errorf("Secret %s/%s has no %s yet", installNamespace, servingSecret, selfsigned.KeyCABundle)
	}
	for _, cfg := range configs {
		if err := setBundle(cfg, bundle); err != nil {
			return err
		}
	}
	return nil
}

// deleteOtherMode deletes what the other certificate mode installed and this one does not (the
// cert-manager Issuer and Certificate, or the self-signed mode's RBAC), so that a switch leaves
// no writer of the Secret behind.
func deleteOtherMode(ctx context.Context, c client.Client, certMode string, objs []*unstructured.Unstructured, out io.Writer) error {
	other := manifests.CertModeSelfSigned
	if certMode == manifests.CertModeSelfSigned {
		other = manifests.CertModeCertManager
	}
	theirs, err := manifests.Render(other, "")
	if err != nil {
		return err
	}
	ours := map[string]bool{}
	for _, obj := range objs {
		ours[objectKey(obj)] = true
	}
	for _, obj := range theirs {
		if ours[objectKey(obj)] {
			continue
		}
		if err := deleteIfPresent(ctx, c, obj, out, " (of the "+other+" mode)"); err != nil {
			return err
		}
	}
	return nil
}

// objectKey identifies an object among the install's: its kind and namespaced name.
func objectKey(obj *unstructured.Unstructured) string { return obj.GetKind() + "/" + objectName(obj) }

// deleteIfPresent deletes obj and says so, what it deleted followed by why; an object or kind
// that is not there is no error.
func deleteIfPresent(ctx context.Context, c client.Client, obj *unstructured.Unstructured, out io.Writer, why string, opts ...client.DeleteOption) error {
	err := c.Delete(ctx, obj, opts...)
	switch {
	case err == nil:
		fmt.Fprintf(out, "deleted %s %s%s\n", strings.ToLower(obj.GetKind()), objectName(obj), why)
		return nil
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return nil
	default:
		return fmt.Errorf("deleting %s %s: %w", obj.GetKind(), objectName(obj), err)
	}
}

func objectName(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() != "" {
		return obj.GetNamespace() + "/" + obj.GetName()
	}
	return obj.GetName()
}

// poll calls check every two seconds until it says done, printing its progress when it changes,
// or until ctx ends, returning the last progress with the error.
func poll(ctx context.Context, out io.Writer, what string, check func() (done bool, progress string)) error {
	last := ""
	for {
		done, progress := check()
		if done {
			return nil
		}
		if progress != last {
			fmt.Fprintf(out, "waiting for %s: %s\n", what, progress)
			last = progress
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s: %s", what, last)
		case <-time.After(2 * time.Second):
		}
	}
}

func waitForCRDs(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, out io.Writer) error {
	for _, obj := range objs {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		err := poll(ctx, out, "CRD "+obj.GetName(), func() (bool, string) {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), crd); err != nil {
				return false, err.Error()
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, ""
				}
			}
			return false, "not established yet"
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// waitForDeployment waits until every replica of the webhook's Deployment runs its current
// template and is available, and no pod of an older one is left, terminating ones included:
// until then a review may still reach an old replica.
func waitForDeployment(ctx context.Context, c client.Client, out io.Writer) error {
	return poll(ctx, out, "deployment "+installNamespace+"/"+webhookDeployment, func() (bool, string) {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: webhookDeployment}, d); err != nil {
			return false, err.Error()
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want {
			return false, fmt.Sprintf("%d of %d replicas updated, %d available", d.Status.UpdatedReplicas, want, d.Status.AvailableReplicas)
		}
		selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return false, err.Error()
		}
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace(installNamespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				running++
			}
		}
		if running != int(want) {
			return false, fmt.Sprintf("%d replicas available, %d pods still running", want, running)
		}
		return true, ""
	})
}

// waitForCertificate waits for one of cert-manager's Certificates of the install, read as its
// typed object, to be ready.
func waitForCertificate(ctx context.Context, c client.Client, name string, out io.Writer) error {
	return poll(ctx, out, "certificate "+installNamespace+"/"+name, func() (bool, string) {
		cert := &certmanagerv1.Certificate{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: name}, cert); err != nil {
			return false, err.Error()
		}
		return certificateReady(cert)
	})
}

// certificateReady says whether cert-manager reports a Certificate Ready for its current
// generation, and why not.
func certificateReady(cert *certmanagerv1.Certificate) (bool, string) {
	for _, cond := range cert.Status.Conditions {
		if cond.Type == certmanagerv1.CertificateConditionReady {
			if cond.Status == cmmeta.ConditionTrue && cond.ObservedGeneration >= cert.Generation {
				return true, ""
			}
			return false, cond.Reason + ": " + cond.Message
		}
	}
	return false, "cert-manager has not issued it yet"
}

// waitForWebhook waits until the API server reaches the webhook: a server-side dry run of an
// engine pod goes through it, and fails while the API server cannot call it.
func waitForWebhook(ctx context.Context, c client.Client, out io.Writer) error {
	return poll(ctx, out, "the webhook to answer the API server", func() (bool, string) {
		probe := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "iss-install-probe-", Namespace: "default",
				Labels: map[string]string{policy.LabelEngine: policy.EngineLabelValue}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7"}}},
		}
		err := c.Create(ctx, probe, client.DryRunAll)
		switch {
		case err == nil:
			return true, ""
		case strings.Contains(err.Error(), "failed calling webhook"), apierrors.IsInternalError(err), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
			return false, err.Error()
		default:
			// Any answer of the webhook, a denial included (a LimitRange in default may give the
			// probe limits off its profile), shows that the API server reaches it.
			return apierrors.IsInvalid(err) || apierrors.IsForbidden(err), err.Error()
		}
	})
}

func uninstall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := installOptions{}
	fs := flag.NewFlagSet("issctl uninstall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: issctl uninstall [flags]

Removes iss-webhook: its webhook configurations first, so that nothing waits on a webhook that
is going away, then the policy, the Deployment, RBAC, certificates, the CRD and the namespace
iss-system, waiting until they are gone. The egress policies it generated for running engines
stay, so that no engine is left with open egress; it prints how to delete them.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path of a kubeconfig; empty means $KUBECONFIG, else ~/.kube/config")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the objects to be gone")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitConform
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "issctl uninstall: unexpected arguments; see --help")
		return exitUsage
	}
	c, err := clusterClient(o.kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "issctl uninstall:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := runUninstall(ctx, c, stdout); err != nil {
		fmt.Fprintln(stderr, "issctl uninstall:", err)
		return exitUsage
	}
	return exitConform
}

func runUninstall(ctx context.Context, c client.Client, out io.Writer) error {
	// Every object of either mode, the reverse of the install order.
	var objs []*unstructured.Unstructured
	seen := map[string]bool{}
	for _, mode := range []string{manifests.CertModeCertManager, manifests.CertModeSelfSigned} {
		rendered, err := manifests.Render(mode, "")
		if err != nil {
			return err
		}
		for _, obj := range rendered {
			if key := objectKey(obj); !seen[key] {
				seen[key] = true
				objs = append(objs, obj)
			}
		}
	}
	// The certificates' Secret is written by cert-manager or the webhook, not by the manifests.
	secret := &unstructured.Unstructured{}
	secret.SetAPIVersion("v1")
	secret.SetKind("Secret")
	secret.SetNamespace("iss-system")
	secret.SetName("iss-webhook-tls")
	objs = append(objs, secret)
	// The webhook configurations first, the namespace and CRDs last.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return installPhase(b) - installPhase(a) })

	for _, obj := range objs {
		if err := deleteIfPresent(ctx, c, obj, out, "", client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
			return err
		}
	}
	for _, obj := range objs {
		if obj.GetKind() != "Namespace" && obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		err := poll(ctx, out, strings.ToLower(obj.GetKind())+" "+obj.GetName()+" to be gone", func() (bool, string) {
			probe := &unstructured.Unstructured{}
			probe.SetGroupVersionKind(obj.GroupVersionKind())
			err := c.Get(ctx, client.ObjectKeyFromObject(obj), probe)
			if apierrors.IsNotFound(err) {
				return true, ""
			}
			if err != nil {
				return false, err.Error()
			}
			return false, "still terminating"
		})
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "iss-webhook is uninstalled. The egress policies it generated stay, so that running engines keep their egress rules;")
	fmt.Fprintln(out, "once those engines are gone: kubectl delete networkpolicies,ciliumnetworkpolicies -A -l app.kubernetes.io/managed-by=iss-webhook; kubectl delete clusternetworkpolicies -l app.kubernetes.io/managed-by=iss-webhook")
	return nil
}
