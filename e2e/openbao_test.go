package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/internal/openbao/openbaotest"
)

var _ = Describe("The OpenBao existence check", Ordered, func() {
	var double *openbaotest.KVv2TestDouble

	BeforeAll(func(ctx SpecContext) {
		if localEnv == nil {
			Skip("the KV v2 test double and the token file live on this machine, which only the local control plane's webhook reaches, and the token file is a flag")
		}
		// The KV v2 test double stands in for OpenBao, which no registry here serves; the
		// integration test of package internal/openbao runs against a real server when
		// OPENBAO_ADDR and OPENBAO_TOKEN are set.
		double = openbaotest.NewKVv2TestDouble("s.e2e-token")
		double.Seed("kv-dev", "artifacts/team-a/public/secrets/api-token")
		tokenFile := filepath.Join(GinkgoT().TempDir(), "openbao-token")
		Expect(os.WriteFile(tokenFile, []byte("s.e2e-token"), 0o600)).To(Succeed())
		// The token file is the Deployment's (a flag); the check itself is the policy's.
		Expect(localEnv.RestartWebhook(ctx, "--openbao-token-file", tokenFile)).To(Succeed())
		applyPolicy(ctx, suitePolicy()+fmt.Sprintf(`openbao:
  verify: true
  address: %s
  auth: {method: token}
  cacheTTL: {miss: 1s}
`, double.Server.URL))
	})
	AfterAll(func(ctx SpecContext) {
		if localEnv != nil {
			applyPolicy(ctx, suitePolicy())
			Expect(localEnv.RestartWebhook(ctx)).To(Succeed())
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
