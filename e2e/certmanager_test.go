package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The cert-manager mode's Secret and Certificate, as manifests/cert-manager names them.
const (
	certManagerSecret      = "iss-webhook-tls"
	certManagerCertificate = "iss-webhook"
	// webhookPort is the port the webhook's container serves admission reviews on.
	webhookPort = "9443"
)

// pemCert parses the first certificate of PEM data.
func pemCert(data []byte) *x509.Certificate {
	GinkgoHelper()
	block, _ := pem.Decode(data)
	Expect(block).NotTo(BeNil(), "PEM data")
	cert, err := x509.ParseCertificate(block.Bytes)
	Expect(err).NotTo(HaveOccurred())
	return cert
}

// servedCertificates returns, for each webhook replica, the serial of the certificate it
// serves: a TLS handshake with the pod's address, from this machine, which routes to the
// node's pods.
func servedCertificates(ctx context.Context) map[string]string {
	GinkgoHelper()
	out, err := kubectl(ctx, "", "get", "pods", "-n", "iss-system", "-l", "app.kubernetes.io/name=iss-webhook",
		"-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.status.podIP}{"\n"}{end}`)
	Expect(err).NotTo(HaveOccurred())
	served := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, ip, _ := strings.Cut(line, " ")
		if ip == "" {
			served[name] = "no address yet"
			continue
		}
		dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
			// What is read is the certificate itself; that the API server trusts it, the
			// admissions show.
			Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec
		conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(ip, webhookPort))
		if err != nil {
			served[name] = err.Error()
			continue
		}
		served[name] = conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
		conn.Close()
	}
	return served
}

var _ = Describe("The cert-manager certificate mode", Label("cert-mode"), Ordered, Serial, func() {
	BeforeAll(func(ctx SpecContext) {
		if localEnv != nil {
			Skip("the local control plane runs no cert-manager: there the webhook serves the suite's own certificate")
		}
		if mode := installedCertMode(ctx); mode != "cert-manager" {
			Skip("the cluster's webhook was installed in the " + mode + " certificate mode")
		}
	})

	It("serves the certificate cert-manager issued, and the API server trusts the CA that cert-manager's CA injector wrote", func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "wait", "--for=condition=Ready", "--timeout="+nodeSpecTimeout.String(), "-n", "iss-system", "certificate/"+certManagerCertificate)
		Expect(err).NotTo(HaveOccurred())
		data := secretDataOf(ctx, certManagerSecret)
		serving, ca := pemCert(data["tls.crt"]), pemCert(data["ca.crt"])
		Expect(serving.CheckSignatureFrom(ca)).To(Succeed(), "the serving certificate is the CA issuer's")
		Expect(serving.VerifyHostname("iss-webhook.iss-system.svc")).To(Succeed())
		Eventually(func(g Gomega) {
			for _, b := range configuredBundles(ctx) {
				g.Expect(pemCert(b).Equal(ca)).To(BeTrue(), "the configurations trust the CA, not the serving certificate")
			}
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).Should(Succeed())
		out, err := kubectl(ctx, enginePod("engine-cert-manager", "", ""), "apply", "--dry-run=server", "-o", "jsonpath={.metadata.labels}", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("iss.platform/egress-policy"))
	})

	It("renews its serving certificate: every replica serves the new one from the updated Secret volume, and no review fails", func(ctx SpecContext) {
		requireNode()
		old := pemCert(secretDataOf(ctx, certManagerSecret)["tls.crt"]).SerialNumber.String()
		Eventually(func(g Gomega) {
			for name, serial := range servedCertificates(ctx) {
				g.Expect(serial).To(Equal(old), "replica %s serves the Secret's certificate", name)
			}
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).Should(Succeed())

		By("asking cert-manager to renew it now, as cmctl renew does: the Issuing condition, reason ManuallyTriggered")
		issuing, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status/conditions/-", "value": map[string]any{
			"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
			"message": "Certificate re-issuance manually triggered", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		}}})
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "patch", "certificate", certManagerCertificate, "-n", "iss-system", "--subresource=status", "--type=json", "-p", string(issuing))
		Expect(err).NotTo(HaveOccurred())

		failures, reviews := 0, 0
		var renewed string
		// The kubelet updates a Secret volume within about a minute (its sync period and the
		// Secret cache's); a loaded node may take longer.
		Eventually(func(g Gomega) {
			reviews++
			if _, err := kubectl(ctx, enginePod("engine-renewal", "", ""), "apply", "--dry-run=server", "-f", "-"); err != nil {
				failures++
				GinkgoWriter.Printf("review failed during the renewal: %v\n", err)
			}
			renewed = pemCert(secretDataOf(ctx, certManagerSecret)["tls.crt"]).SerialNumber.String()
			g.Expect(renewed).NotTo(Equal(old), "cert-manager wrote a new certificate into the Secret")
			for name, serial := range servedCertificates(ctx) {
				g.Expect(serial).To(Equal(renewed), "replica %s serves the renewed certificate", name)
			}
		}).WithContext(ctx).WithTimeout(2 * nodeSpecTimeout).WithPolling(2 * time.Second).Should(Succeed())
		GinkgoWriter.Printf("reviews during the renewal: %d, failed: %d\n", reviews, failures)
		Expect(failures).To(BeZero())
		_, err = kubectl(ctx, "", "wait", "--for=condition=Ready", "--timeout="+nodeSpecTimeout.String(), "-n", "iss-system", "certificate/"+certManagerCertificate)
		Expect(err).NotTo(HaveOccurred())
	})
})

// switchInstallEnv holds, as a JSON list, the arguments of the issctl install that switches a
// cluster's webhook from the self-signed mode to cert-manager: make e2e-cluster sets it for the
// switch spec, which runs alone between the suite in the self-signed mode and the specs of the
// cert-manager mode. Elsewhere the spec is skipped.
const switchInstallEnv = "ISS_E2E_SWITCH_INSTALL"

var _ = Describe("Switching the certificate mode from self-signed to cert-manager", Label("mode-switch"), Serial, func() {
	It("hands the serving certificate over to cert-manager's CA while engine pods are created, and none fails", func(ctx SpecContext) {
		raw := os.Getenv(switchInstallEnv)
		if raw == "" {
			Skip("changes the installed certificate mode: runs alone on a cluster that issctl install set up in the self-signed mode (make e2e-cluster)")
		}
		requireNode()
		Expect(installedCertMode(ctx)).To(Equal("self-signed"))
		var args []string
		Expect(json.Unmarshal([]byte(raw), &args)).To(Succeed())
		issctl := buildIssctl(ctx)

		counts, stop := startEngineClient(ctx, "engine-during-switch")
		install, err := exec.CommandContext(ctx, issctl, args...).CombinedOutput()
		GinkgoWriter.Printf("issctl %s:\n%s\n", strings.Join(args, " "), install)
		Expect(err).NotTo(HaveOccurred(), string(install))
		Expect(string(install)).To(ContainSubstring("handing it over"))
		// A few admissions more, through what the install left.
		created := func() int { counts.mu.Lock(); defer counts.mu.Unlock(); return counts.created + counts.failed }
		after := created()
		Eventually(created).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).Should(BeNumerically(">=", after+3))
		stop()
		GinkgoWriter.Printf("engine pods created during the switch: %s\n", counts)
		Expect(counts.failures).To(BeEmpty())
		Expect(counts.created).To(BeNumerically(">", 3))

		By("the serving certificate is cert-manager's, the configurations trust its CA alone and the CA injector keeps them, and every replica serves it")
		serving, ca := secretDataOf(ctx, certManagerSecret), secretDataOf(ctx, "iss-webhook-ca")
		Expect(pemCert(serving["tls.crt"]).CheckSignatureFrom(pemCert(ca["tls.crt"]))).To(Succeed())
		for _, b := range configuredBundles(ctx) {
			Expect(b).To(Equal(serving["ca.crt"]))
		}
		for _, kind := range []string{"mutatingwebhookconfiguration", "validatingwebhookconfiguration"} {
			out, err := kubectl(ctx, "", "get", kind, "iss-webhook", "-o", `jsonpath={.metadata.annotations.cert-manager\.io/inject-ca-from}`)
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(Equal("iss-system/"+certManagerCertificate), kind)
		}
		Expect(serving).NotTo(HaveKey("ca.key"), "the self-signed mode's CA key left the Secret")
		Expect(serving).NotTo(HaveKey("ca-bundle.crt"), "the self-signed mode's bundle left the Secret")
		// The install restarted the replicas after cert-manager's last issuance; each serves what
		// the Secret holds (waited for: a replica reports what it loaded at its own pace).
		want := pemCert(serving["tls.crt"]).SerialNumber.String()
		Eventually(func(g Gomega) {
			for name, serial := range servedCertificates(ctx) {
				g.Expect(serial).To(Equal(want), "replica %s", name)
			}
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(2 * time.Second).Should(Succeed())
	})
})
