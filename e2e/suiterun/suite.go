package suiterun

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// RunSuite runs the Ginkgo suite against the cluster: go test -count=1 -v -timeout timeout
// ./e2e/ -ginkgo.v, then testArgs, with ISS_E2E_KUBECONFIG=t.Kubeconfig and env added to the
// environment. It prints the webhook's log when the suite fails or ISS_E2E_SHOW_LOG is set. A
// failure of the suite is a *SuiteError.
func (t *Target) RunSuite(ctx context.Context, timeout time.Duration, env []string, testArgs []string) error {
	t.Step("running the end-to-end suite against %s (ISS_E2E_KUBECONFIG=%s)", t.Name, t.Kubeconfig)
	args := append([]string{"test", "-count=1", "-v", "-timeout", timeout.String(), "./e2e/", "-ginkgo.v"}, testArgs...)
	env = append([]string{"ISS_E2E_KUBECONFIG=" + t.Kubeconfig}, env...)
	err := t.Stream(ctx, env, "go", args...)
	if err != nil || os.Getenv("ISS_E2E_SHOW_LOG") != "" {
		t.WebhookLog()
	}
	if err != nil {
		return &SuiteError{fmt.Errorf("the end-to-end suite failed on %s: %w", t.Name, err)}
	}
	t.Step("the end-to-end suite passed on %s", t.Name)
	return nil
}

// SuiteError is the suite's own failure, which it has reported itself: Diagnose has nothing to
// add to it.
type SuiteError struct{ error }

// Unwrap returns the failure of go test.
func (e *SuiteError) Unwrap() error { return e.error }

// Diagnose prints the cluster's pods, the events of the webhook's namespace and the webhook's
// log, for a failure before the suite ran.
func (t *Target) Diagnose(ctx context.Context) {
	t.Step("the cluster at the time of the failure:")
	for _, args := range [][]string{
		{"get", "pods", "--all-namespaces", "-o", "wide"},
		{"get", "events", "-n", WebhookNamespace, "--sort-by=.lastTimestamp"},
	} {
		out, err := t.Kubectl(ctx, "", args...)
		if err != nil {
			out = err.Error()
		}
		fmt.Fprintf(t.Out, "$ kubectl %s\n%s\n", strings.Join(args, " "), out)
	}
	t.WebhookLog()
}

// WebhookLog prints the log of every iss-webhook pod. It has a minute of its own, so that it
// also prints after an interruption.
func (t *Target) WebhookLog() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := t.Kubectl(ctx, "", "logs", "-n", WebhookNamespace, "-l", WebhookSelector, "--all-containers", "--prefix", "--tail=-1")
	if err != nil {
		out = err.Error()
	}
	fmt.Fprintf(t.Out, "%siss-webhook log:\n%s\n", t.Prefix, out)
}
