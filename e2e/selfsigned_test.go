package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/internal/selfsigned"
)

// selfSignedSecret is the Secret of the self-signed mode in this suite.
const selfSignedSecret = "iss-webhook-tls"

// secretDataOf reads the data of a Secret of iss-system, or nil when it does not exist.
func secretDataOf(ctx context.Context, name string) map[string][]byte {
	GinkgoHelper()
	obj := getJSON(ctx, "secret", name, "-n", "iss-system")
	if obj == nil {
		return nil
	}
	out := map[string][]byte{}
	data, _ := obj["data"].(map[string]any)
	for k, v := range data {
		b, err := base64.StdEncoding.DecodeString(v.(string))
		Expect(err).NotTo(HaveOccurred())
		out[k] = b
	}
	return out
}

// configuredBundles returns the caBundle of every webhook of both configurations.
func configuredBundles(ctx context.Context) [][]byte {
	GinkgoHelper()
	var out [][]byte
	for _, kind := range []string{"mutatingwebhookconfiguration", "validatingwebhookconfiguration"} {
		raw, err := kubectl(ctx, "", "get", kind, "iss-webhook", "-o", "json")
		Expect(err).NotTo(HaveOccurred())
		var cfg struct {
			Webhooks []struct {
				ClientConfig struct {
					CABundle []byte `json:"caBundle"`
				} `json:"clientConfig"`
			} `json:"webhooks"`
		}
		Expect(json.Unmarshal([]byte(raw), &cfg)).To(Succeed())
		for _, w := range cfg.Webhooks {
			out = append(out, w.ClientConfig.CABundle)
		}
	}
	return out
}

func certs(data []byte) []*x509.Certificate {
	GinkgoHelper()
	list, err := selfsigned.ParseBundle(data)
	Expect(err).NotTo(HaveOccurred())
	return list
}

var _ = Describe("The self-signed certificate mode", Label("cert-mode"), Ordered, Serial, func() {
	// Short lifetimes, so that the suite sees a CA rotation: the serving certificate lives 15s
	// and the CA 45s, each renewed with a third left.
	shortLived := []string{"--self-signed-ca-validity=45s", "--self-signed-cert-validity=15s"}
	// The name the serving certificate is for: the local control plane calls the webhook on
	// loopback; a cluster calls it through its Service.
	servingName := "iss-webhook.iss-system.svc"

	BeforeAll(func(ctx SpecContext) {
		if localEnv != nil {
			servingName = "127.0.0.1"
			_, err := kubectl(ctx, "", "apply", "-f", repoRoot+"/manifests/self-signed/rbac.yaml")
			Expect(err).NotTo(HaveOccurred())
			restartWebhook(ctx, append([]string{"--cert-mode", "self-signed", "--cert-dir", GinkgoT().TempDir(),
				"--self-signed-secret", "iss-system/" + selfSignedSecret, "--self-signed-hosts", servingName}, shortLived...)...)
			DeferCleanup(func(ctx context.Context) {
				restartWebhook(ctx)
				Expect(localEnv.TrustServingCA(ctx)).To(Succeed())
				_, err := kubectl(ctx, "", "delete", "secret", selfSignedSecret, "-n", "iss-system", "--ignore-not-found")
				Expect(err).NotTo(HaveOccurred())
			})
			return
		}
		if mode := installedCertMode(ctx); mode != "self-signed" {
			Skip("the cluster's webhook was installed in the " + mode + " certificate mode")
		}
		// On a cluster, the installed Deployment's replicas get the short lifetimes, as an
		// operator would set them, and get the installed ones back afterwards. The install's CA
		// lives for years and is renewed by its own lifetime: the Secret goes, so that the
		// replicas make a CA of the short lifetime, as after an operator deleted it to replace it.
		restartWebhook(ctx, shortLived...)
		_, err := kubectl(ctx, "", "delete", "secret", selfSignedSecret, "-n", "iss-system")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			data := secretDataOf(ctx, selfSignedSecret)
			g.Expect(data).To(HaveKey(selfsigned.KeyCACert))
			g.Expect(certs(data[selfsigned.KeyCACert])[0].NotAfter).To(BeTemporally("<", time.Now().Add(time.Hour)))
		}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).Should(Succeed())
		DeferCleanup(func(ctx context.Context) {
			restartWebhook(ctx)
			// The keeper replaces the short-lived CA by one of the installed lifetime; the
			// specs after this one need the configurations to trust what the replicas serve.
			Eventually(func(g Gomega) {
				data := secretDataOf(ctx, selfSignedSecret)
				g.Expect(certs(data[selfsigned.KeyCABundle])).To(HaveLen(1))
				g.Expect(certs(data[selfsigned.KeyCACert])[0].NotAfter).To(BeTemporally(">", time.Now().Add(time.Hour)))
				for _, b := range configuredBundles(ctx) {
					g.Expect(b).To(Equal(data[selfsigned.KeyCABundle]))
				}
				_, err := kubectl(ctx, enginePod("engine-self-signed-restored", "", ""), "apply", "--dry-run=server", "-f", "-")
				g.Expect(err).NotTo(HaveOccurred())
			}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).Should(Succeed())
		})
	})

	It("creates its CA and serving certificate, and injects the CA into its webhook configurations", func(ctx SpecContext) {
		data := secretDataOf(ctx, selfSignedSecret)
		Expect(data).To(HaveKey(selfsigned.KeyServingCert))
		serving := certs(data[selfsigned.KeyServingCert])[0]
		Expect(serving.VerifyHostname(servingName)).To(Succeed())
		Eventually(func(g Gomega) {
			bundle := secretDataOf(ctx, selfSignedSecret)[selfsigned.KeyCABundle]
			for _, b := range configuredBundles(ctx) {
				g.Expect(b).To(Equal(bundle))
			}
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
		// The API server now reaches the webhook through the injected CA only.
		out, err := kubectl(ctx, enginePod("engine-self-signed", "", ""), "apply", "--dry-run=server", "-o", "jsonpath={.metadata.labels}", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("iss.platform/egress-policy"))
	})

	It("rotates its CA with the old one trusted until the new certificate serves, and no review fails", func(ctx SpecContext) {
		firstCA := secretDataOf(ctx, selfSignedSecret)[selfsigned.KeyCACert]
		var sawOverlap, sawNewServing bool
		failures := 0
		Eventually(func(g Gomega) {
			// A review every pass: none may fail while the certificates turn over.
			if _, err := kubectl(ctx, enginePod("engine-rotation", "", ""), "apply", "--dry-run=server", "-f", "-"); err != nil {
				failures++
				GinkgoWriter.Printf("review failed during the rotation: %v\n", err)
			}
			data := secretDataOf(ctx, selfSignedSecret)
			bundle := certs(data[selfsigned.KeyCABundle])
			ca := certs(data[selfsigned.KeyCACert])[0]
			if len(bundle) == 2 {
				sawOverlap = true
			}
			if !bytes.Equal(data[selfsigned.KeyCACert], firstCA) && certs(data[selfsigned.KeyServingCert])[0].CheckSignatureFrom(ca) == nil {
				sawNewServing = true
			}
			g.Expect(sawOverlap).To(BeTrue(), "a bundle with the old and the new CA")
			g.Expect(sawNewServing).To(BeTrue(), "a serving certificate from the new CA")
			g.Expect(bundle).To(HaveLen(1), "the old CA gone after the settling time")
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		Expect(failures).To(BeZero())
		// The keeper writes the Secret, then the configurations, in one pass: between the two
		// writes the configurations still hold both CAs. They follow the Secret within a pass
		// (or the next one, after a conflict), which must hold.
		Eventually(func(g Gomega) {
			bundle := secretDataOf(ctx, selfSignedSecret)[selfsigned.KeyCABundle]
			for _, b := range configuredBundles(ctx) {
				g.Expect(b).To(Equal(bundle))
			}
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	})
})
