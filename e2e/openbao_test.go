package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
	"github.com/iss-platform/iss-webhook/internal/openbao/openbaotest"
)

var _ = Describe("The OpenBao existence check", Ordered, func() {
	var double *openbaotest.KVv2TestDouble

	BeforeAll(func(ctx SpecContext) {
		// The KV v2 test double stands in for OpenBao, which no registry here serves; the
		// integration test of package internal/openbao runs against a real server when
		// OPENBAO_ADDR and OPENBAO_TOKEN are set.
		if localEnv != nil {
			double = openbaotest.NewKVv2TestDouble("s.e2e-token")
			double.Seed("kv-dev", "artifacts/team-a/public/secrets/api-token")
			tokenFile := filepath.Join(GinkgoT().TempDir(), "openbao-token")
			Expect(os.WriteFile(tokenFile, []byte("s.e2e-token"), 0o600)).To(Succeed())
			// The token file is the Deployment's (a flag); the check itself is the policy's.
			restartWebhook(ctx, "--openbao-token-file", tokenFile)
			applyPolicy(ctx, suitePolicy()+fmt.Sprintf(`openbao:
  verify: true
  address: %s
  auth: {method: token}
  cacheTTL: {miss: 1s}
`, double.Server.URL))
			return
		}
		// On a cluster, the double listens where the node's pods reach this machine, and the
		// webhook logs in as installed: the Kubernetes auth method, with the service account
		// token of audience openbao that the kubelet projects into its pods.
		address := os.Getenv("ISS_E2E_HOST_ADDRESS")
		if address == "" {
			Skip("the cluster's pods cannot reach this machine: ISS_E2E_HOST_ADDRESS names no address of it (make e2e-cluster sets it)")
		}
		l, err := net.Listen("tcp", net.JoinHostPort(address, "0"))
		Expect(err).NotTo(HaveOccurred())
		double = openbaotest.NewKVv2TestDoubleOn(l, "s.e2e-token")
		double.AddKubernetesRole("iss-webhook", "openbao")
		double.Seed("kv-dev", "artifacts/team-a/public/secrets/api-token")
		applyPolicy(ctx, suitePolicy()+fmt.Sprintf(`openbao:
  verify: true
  address: %s
  auth: {method: kubernetes, role: iss-webhook}
  cacheTTL: {miss: 1s}
`, double.Server.URL))
	})
	AfterAll(func(ctx SpecContext) {
		applyPolicy(ctx, suitePolicy())
		if localEnv != nil {
			restartWebhook(ctx)
		}
	})

	It("admits an ExternalSecret whose paths exist, and denies one whose path is missing", func(ctx SpecContext) {
		DeferCleanup(deleteIn("externalsecret", namespace), "es-verified")
		_, err := kubectl(ctx, externalSecret("v1", "es-verified", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/api-token"}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, externalSecret("v1", "es-missing", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/not-there"}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.data[0].remoteRef.key: Not found: "artifacts/team-a/public/secrets/not-there": no secret at this path in OpenBao (KV v2 mount "kv-dev" of environment "dev")`)))
	})

	It("denies when OpenBao is unreachable, saying so", func(ctx context.Context) {
		double.Server.Close()
		_, err := kubectl(ctx, externalSecret("v1", "es-unverified", namespace, "openbao-dev", []string{"artifacts/team-a/public/secrets/other"}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(And(ContainSubstring("OpenBao was unreachable"), ContainSubstring("openbao.onUnavailable: Deny"))))
	})
})

var _ = Describe("The OpenBao existence check, pointed at an OpenBao over TLS as make run does", Ordered, func() {
	var double *openbaotest.KVv2TestDouble
	const found, destroyed = "artifacts/team-a/public/secrets/tls-found", "artifacts/team-a/public/secrets/tls-destroyed"

	BeforeAll(func(ctx SpecContext) {
		if localEnv == nil {
			Skip("checks the OpenBao flags of make run (a token file and a CA file on this machine), which only the local control plane's webhook takes; on a cluster the Deployment's own login is checked by the spec before")
		}
		double = openbaotest.NewTLSKVv2TestDouble("s.e2e-tls-token")
		double.Seed("kv-dev", found)
		for range 2 {
			double.Seed("kv-dev", destroyed)
		}
		double.DestroyVersion("kv-dev", destroyed, 1)
		double.DeleteVersion("kv-dev", destroyed, 2)
		dir := GinkgoT().TempDir()
		bao := &devenv.OpenBao{Address: double.Server.URL, AuthMethod: "token",
			TokenFile: filepath.Join(dir, "token"), CACertFile: filepath.Join(dir, "ca.crt")}
		Expect(os.WriteFile(bao.TokenFile, []byte("s.e2e-tls-token"), 0o600)).To(Succeed())
		Expect(os.WriteFile(bao.CACertFile, double.CACertPEM(), 0o600)).To(Succeed())
		Expect(bao.Validate()).To(Succeed())
		// The flags and the ISSPolicy of `make run OPENBAO_ADDR=... OPENBAO_TOKEN_FILE=...
		// OPENBAO_CACERT=...`.
		restartWebhook(ctx, bao.WebhookArgs()...)
		manifest, err := bao.PolicyManifest()
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, string(manifest), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		waitForPolicy(ctx, "True")
	})
	AfterAll(func(ctx SpecContext) {
		if localEnv != nil {
			applyPolicy(ctx, suitePolicy())
			restartWebhook(ctx)
			double.Server.Close()
		}
	})

	It("admits a path that is there, and denies a destroyed pinned version and a deleted current one, saying which", func(ctx SpecContext) {
		DeferCleanup(deleteIn("externalsecret", namespace), "es-tls-found")
		_, err := kubectl(ctx, externalSecret("v1", "es-tls-found", namespace, "openbao-dev", []string{found}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, externalSecret("v1", "es-tls-pinned", namespace, "openbao-dev", []string{destroyed + "\n        version: \"1\""}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.data[0].remoteRef.version: Not found: "1": version 1 of this secret in OpenBao (KV v2 mount "kv-dev" of environment "dev") is destroyed`)))
		_, err = kubectl(ctx, externalSecret("v1", "es-tls-current", namespace, "openbao-dev", []string{destroyed}, ""), "--as", "alice", "apply", "-f", "-")
		Expect(err).To(MatchError(ContainSubstring(`spec.data[0].remoteRef.key: Not found: "` + destroyed + `": the current version (2) of this secret in OpenBao (KV v2 mount "kv-dev" of environment "dev") is deleted`)))
	})
})
