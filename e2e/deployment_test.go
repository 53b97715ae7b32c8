package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// installedArgs are the webhook container's arguments as issctl install wrote them on the
// cluster, read once before a spec changes them.
var installedArgs []string

// webhookArgs reads the arguments of the webhook container of the installed Deployment.
func webhookArgs(ctx context.Context) []string {
	GinkgoHelper()
	out, err := kubectl(ctx, "", "get", "deployment", "iss-webhook", "-n", "iss-system", "-o", "jsonpath={.spec.template.spec.containers[0].args}")
	Expect(err).NotTo(HaveOccurred())
	var args []string
	Expect(json.Unmarshal([]byte(out), &args)).To(Succeed())
	return args
}

// installedCertMode is the certificate mode the cluster's webhook was installed with.
func installedCertMode(ctx context.Context) string {
	GinkgoHelper()
	if installedArgs == nil {
		installedArgs = webhookArgs(ctx)
	}
	mode := "cert-manager"
	for _, a := range installedArgs {
		if v, ok := strings.CutPrefix(a, "--cert-mode="); ok {
			mode = v
		}
	}
	return mode
}

// restartWebhook restarts the suite's webhook, with extra flags or (none) as it was installed:
// the local control plane's process, or on a cluster the Deployment's replicas, as an
// operator would change them, waiting until the new replicas alone serve.
func restartWebhook(ctx context.Context, extra ...string) {
	GinkgoHelper()
	if localEnv != nil {
		Expect(localEnv.RestartWebhook(ctx, extra...)).To(Succeed())
		return
	}
	if installedArgs == nil {
		installedArgs = webhookArgs(ctx)
	}
	args := append(slices.Clone(installedArgs), extra...)
	if slices.Equal(webhookArgs(ctx), args) {
		_, err := kubectl(ctx, "", "rollout", "restart", "deployment/iss-webhook", "-n", "iss-system")
		Expect(err).NotTo(HaveOccurred())
	} else {
		patch, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args}})
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "patch", "deployment", "iss-webhook", "-n", "iss-system", "--type=json", "-p", string(patch))
		Expect(err).NotTo(HaveOccurred())
	}
	waitForRollout(ctx)
}

// waitForRollout waits until the webhook's Deployment has rolled out and its old replicas are
// gone, so that only replicas of the current template answer.
func waitForRollout(ctx context.Context) {
	GinkgoHelper()
	_, err := kubectl(ctx, "", "rollout", "status", "deployment/iss-webhook", "-n", "iss-system", "--timeout="+nodeSpecTimeout.String())
	Expect(err).NotTo(HaveOccurred())
	want, err := kubectl(ctx, "", "get", "deployment", "iss-webhook", "-n", "iss-system", "-o", "jsonpath={.spec.replicas}")
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() string {
		return strconv.Itoa(len(webhookPods(ctx)))
	}).WithContext(ctx).WithTimeout(nodeSpecTimeout).WithPolling(time.Second).Should(Equal(want), "only the rollout's new replicas are left")
}
