// Package e2e is the end-to-end suite of iss-webhook. It drives kubectl, as a user would, against
// a real kube-apiserver that calls the webhook over TLS: by default the local control plane of
// package devenv, or the cluster of $ISS_E2E_KUBECONFIG when that is set.
package e2e

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
)

// gcGracePeriod is the grace period of the egress policy collector under the suite's policy.
const gcGracePeriod = 3 * time.Second

// The suite's cluster: set up once in BeforeSuite.
var (
	repoRoot   string
	kubeconfig string
	localEnv   *devenv.Env
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "iss-webhook end-to-end")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	repoRoot, err = filepath.Abs("..")
	Expect(err).NotTo(HaveOccurred())
	if kc := os.Getenv("ISS_E2E_KUBECONFIG"); kc != "" {
		By("using the existing cluster of ISS_E2E_KUBECONFIG=" + kc)
		kubeconfig = kc
		applyPolicy(ctx, suitePolicy())
		return
	}
	state, err := os.MkdirTemp("", "iss-e2e-")
	Expect(err).NotTo(HaveOccurred())
	By("starting the local control plane and iss-webhook")
	opts := devenv.DefaultOptions(repoRoot, state, GinkgoWriter)
	// ISS_E2E_RECORD_REVIEWS, when set, is a file that every AdmissionReview the API server sends
	// to the webhook, with its answer, is appended to as a JSON line (devenv.Review), through a
	// proxy on the webhook's registered address. The self-signed mode's specs fail with it: the
	// API server then trusts the webhook's own CA, not the certificate the proxy serves, so skip
	// them: -ginkgo.skip 'self-signed certificate mode'. A relative path is relative to e2e/.
	if path := os.Getenv("ISS_E2E_RECORD_REVIEWS"); path != "" {
		opts.RecordReviews = path
	}
	localEnv, err = devenv.Start(ctx, opts)
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = localEnv.Kubeconfig
	applyPolicy(ctx, suitePolicy())
}, NodeTimeout(10*time.Minute))

// suiteFailed is set when any spec fails, so that AfterSuite can show the webhook's log.
var suiteFailed bool

var _ = ReportAfterEach(func(r SpecReport) {
	if r.Failed() {
		suiteFailed = true
	}
})

var _ = AfterSuite(func() {
	if localEnv == nil {
		return
	}
	if suiteFailed || os.Getenv("ISS_E2E_SHOW_LOG") != "" {
		if log, err := os.ReadFile(localEnv.WebhookLog); err == nil {
			GinkgoWriter.Printf("iss-webhook log:\n%s\n", log)
		}
	}
	Expect(localEnv.Stop()).To(Succeed())
	Expect(os.RemoveAll(filepath.Dir(localEnv.Kubeconfig))).To(Succeed())
})

// kubectl runs kubectl against the suite's cluster and returns stdout, and stderr as an error
// when kubectl fails.
func kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	stdout, _, err := kubectlWithStderr(ctx, stdin, args...)
	return stdout, err
}

// kubectlWithStderr is kubectl that also returns stderr, where kubectl prints warnings.
func kubectlWithStderr(ctx context.Context, stdin string, args ...string) (string, string, error) {
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	GinkgoWriter.Printf("$ kubectl %s\n", strings.Join(args, " "))
	stdout, stderr, err := devenv.Kubectl(ctx, kubeconfig, in, args...)
	if stderr != "" {
		GinkgoWriter.Printf("%s\n", stderr)
	}
	if err != nil {
		return stdout, stderr, &kubectlError{stderr: stderr, err: err}
	}
	return stdout, stderr, nil
}

// kubectlError carries what kubectl printed on stderr, which is what a user reads.
type kubectlError struct {
	stderr string
	err    error
}

func (e *kubectlError) Error() string { return e.err.Error() + ": " + e.stderr }
