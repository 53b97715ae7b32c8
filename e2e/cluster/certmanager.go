package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// CertManagerBinaries are the binaries of bin/ that the cluster runs for cert-manager, built by
// e2e/tools/build.sh from the cert-manager module that e2e/tools/cert-manager pins.
var CertManagerBinaries = []string{"cert-manager-controller", "cert-manager-cainjector", "cert-manager-webhook"}

const (
	// certManagerNamespace is where cert-manager keeps what it owns, as its chart installs it.
	certManagerNamespace = "cert-manager"
	// The ports of cert-manager's webhook (TLS, called by the API server), of its health
	// endpoint, and of the controller's metrics, which answer once it runs.
	certManagerWebhookPort    = 20245
	certManagerWebhookHealthz = 20246
	certManagerMetrics        = 20247
	// certManagerWebhookName names cert-manager's webhook configurations, as its chart does.
	certManagerWebhookName = "cert-manager-webhook"
)

// startCertManager installs cert-manager on the running cluster: the CRDs of
// Options.CertManagerCRDs (the manifests of cert-manager's module, whose Helm-templated labels
// it drops), and cert-manager's controller, CA injector and webhook, each built from that
// module, as processes on the host beside the control plane, with the admin's rights. The API
// server calls cert-manager's webhook by URL, the setup that cert-manager's chart has for a
// webhook outside the cluster (webhook.url.host), with a serving certificate of the cluster's
// CA. It returns once the webhook answers the API server and the controller runs; Stop stops
// them with the rest.
func (c *Cluster) startCertManager(ctx context.Context) error {
	crdFiles := c.CertManagerCRDs
	c.progress("installing cert-manager's CRDs (%d files)", len(crdFiles))
	for _, f := range crdFiles {
		manifest, err := untemplatedCRD(f)
		if err != nil {
			return err
		}
		if _, stderr, err := c.kubectl(ctx, string(manifest), "apply", "--server-side", "--force-conflicts", "-f", "-"); err != nil {
			return fmt.Errorf("applying the CRD of %s: %v: %s", f, err, stderr)
		}
	}
	if _, stderr, err := c.kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout="+c.Timeout.String(), "crd", "certificates.cert-manager.io", "issuers.cert-manager.io", "clusterissuers.cert-manager.io", "certificaterequests.cert-manager.io"); err != nil {
		return fmt.Errorf("waiting for cert-manager's CRDs to be established: %v: %s", err, stderr)
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: certManagerNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", certManagerNamespace, err)
	}
	cert, key, err := c.pki.issue(certRequest{name: "client-cert-manager", commonName: "system:cert-manager", organizations: []string{"system:masters"}, client: true})
	if err != nil {
		return err
	}
	kubeconfig := c.path("cert-manager.kubeconfig")
	if err := writeKubeconfig(kubeconfig, c.pki, "system:cert-manager", cert, key); err != nil {
		return err
	}
	servingCert, servingKey, err := c.pki.issue(certRequest{name: "cert-manager-webhook", commonName: "cert-manager-webhook", server: true, ips: []net.IP{net.ParseIP(NodeIP)}})
	if err != nil {
		return err
	}

	if err := c.start("cert-manager-webhook", c.bin("cert-manager-webhook"),
		"--kubeconfig", kubeconfig,
		"--secure-port", strconv.Itoa(certManagerWebhookPort),
		"--healthz-port", strconv.Itoa(certManagerWebhookHealthz),
		"--tls-cert-file", servingCert, "--tls-private-key-file", servingKey, "--v", "2"); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "cert-manager's webhook", fmt.Sprintf("http://127.0.0.1:%d/healthz", certManagerWebhookHealthz), nil); err != nil {
		return err
	}
	if err := c.applyCertManagerWebhooks(ctx, cs); err != nil {
		return err
	}
	if err := c.start("cert-manager-cainjector", c.bin("cert-manager-cainjector"),
		"--kubeconfig", kubeconfig, "--leader-elect=false", "--v", "2"); err != nil {
		return err
	}
	if err := c.start("cert-manager-controller", c.bin("cert-manager-controller"),
		"--kubeconfig", kubeconfig, "--leader-elect=false",
		"--cluster-resource-namespace", certManagerNamespace,
		"--metrics-listen-address", fmt.Sprintf("127.0.0.1:%d", certManagerMetrics), "--v", "2"); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "cert-manager's controller", fmt.Sprintf("http://127.0.0.1:%d/metrics", certManagerMetrics), nil); err != nil {
		return err
	}
	// The webhook answers the API server: a server-side dry run of an Issuer goes through it.
	issuer := "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: iss-cluster-probe, namespace: default}\nspec: {selfSigned: {}}\n"
	if err := c.poll(ctx, "cert-manager's webhook to answer the API server", func() (bool, string) {
		_, stderr, err := c.kubectl(ctx, issuer, "create", "--dry-run=server", "-f", "-")
		return err == nil, stderr
	}); err != nil {
		return err
	}
	c.progress("cert-manager is up: its controller, CA injector and webhook run on the host")
	return nil
}

// applyCertManagerWebhooks writes cert-manager's webhook configurations as its chart renders
// them with webhook.url.host set: the validating and the mutating webhook of the cert-manager.io
// and acme.cert-manager.io resources, here trusting the cluster's CA, which issued the webhook's
// serving certificate.
func (c *Cluster) applyCertManagerWebhooks(ctx context.Context, cs kubernetes.Interface) error {
	base := "https://" + net.JoinHostPort(NodeIP, strconv.Itoa(certManagerWebhookPort))
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"cert-manager.io", "acme.cert-manager.io"}, APIVersions: []string{"v1"}, Resources: []string{"*/*"},
		},
	}}
	equivalent, fail, none := admissionregistrationv1.Equivalent, admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	hook := func(path string) (admissionregistrationv1.WebhookClientConfig, *int32) {
		url := base + path
		return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: c.pki.caPEM}, ptr.To[int32](30)
	}
	vcc, timeout := hook("/validate")
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: certManagerWebhookName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "webhook.cert-manager.io", ClientConfig: vcc, Rules: rules, TimeoutSeconds: timeout,
			AdmissionReviewVersions: []string{"v1"}, MatchPolicy: &equivalent, FailurePolicy: &fail, SideEffects: &none,
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "cert-manager.io/disable-validation", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}},
				{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{certManagerNamespace}},
			}},
		}},
	}
	mcc, timeout := hook("/mutate")
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: certManagerWebhookName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "webhook.cert-manager.io", ClientConfig: mcc, Rules: rules, TimeoutSeconds: timeout,
			AdmissionReviewVersions: []string{"v1"}, MatchPolicy: &equivalent, FailurePolicy: &fail, SideEffects: &none,
		}},
	}
	api := cs.AdmissionregistrationV1()
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, validating, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating cert-manager's validating webhook configuration: %w", err)
	}
	if _, err := api.MutatingWebhookConfigurations().Create(ctx, mutating, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating cert-manager's mutating webhook configuration: %w", err)
	}
	return nil
}

// untemplatedCRD reads a CRD manifest of cert-manager's module, whose metadata labels are Helm
// template expressions, and drops those label lines: what is left is the CRD as cert-manager
// ships it, without labels. A template expression anywhere else is an error, so that nothing
// of the schema is ever changed.
func untemplatedCRD(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	inLabels := false
	for _, line := range strings.SplitAfter(string(data), "\n") {
		switch {
		case line == "  labels:\n":
			inLabels = true
		case inLabels && strings.HasPrefix(line, "    "):
			if strings.Contains(line, "{{") {
				continue
			}
		default:
			inLabels = false
		}
		if strings.Contains(line, "{{") {
			return nil, fmt.Errorf("%s: a template expression outside the labels: %s", path, strings.TrimSpace(line))
		}
		out.WriteString(line)
	}
	var crd struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(out.Bytes(), &crd); err != nil || crd.Kind != "CustomResourceDefinition" {
		return nil, fmt.Errorf("%s: not a CustomResourceDefinition once its template lines are dropped (%v)", path, err)
	}
	return out.Bytes(), nil
}
