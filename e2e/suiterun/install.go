package suiterun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
	"github.com/iss-platform/iss-webhook/policy"
)

// BuildIssctl builds t.Issctl from ./cmd/issctl of the checkout; after `make build` it is up to
// date already.
func (t *Target) BuildIssctl(ctx context.Context) error {
	t.Step("building %s from ./cmd/issctl", t.Issctl)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", t.Issctl, "./cmd/issctl")
	cmd.Dir = t.Repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/issctl: %v: %s", err, out)
	}
	return nil
}

// InstallCRDs installs the CRDs of the objects the webhook governs, from their projects' Go
// modules (devenv.DefaultCRDSources, but those whose Module is in skipModules, which the target
// installs its own way) and the shared folder, and waits until they are served. The project's
// own CRD is issctl install's. Run it before InstallWebhook: the webhook asks which kinds the
// cluster serves when it starts.
func (t *Target) InstallCRDs(ctx context.Context, skipModules ...string) error {
	t.Step("fetching CRD manifests from their Go modules")
	var files []string
	for _, s := range devenv.DefaultCRDSources() {
		if slices.Contains(skipModules, s.Module) {
			continue
		}
		paths, err := s.Paths(ctx, t.Repo)
		if err != nil {
			return err
		}
		files = append(files, paths...)
	}
	shared, err := devenv.SharedCRDs(t.Repo)
	if err != nil {
		return err
	}
	if len(shared) == 0 {
		t.Step("WARNING: no shared/crds folder beside the checkout: the Pulumi and tofu-controller CRDs are not installed, and the suite's provisioning specs will fail")
	}
	files = append(files, shared...)
	t.Step("installing %d CRD manifests from Go modules and the shared folder", len(files))
	args := []string{"apply", "--server-side"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	if _, err := t.Kubectl(ctx, "", args...); err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	// A CRD is Established within seconds of its apply; two minutes leave room for a slow node.
	t.Step("waiting for the CRDs to be Established")
	if _, err := t.Kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=2m", "crd", "--all"); err != nil {
		return fmt.Errorf("waiting for the CRDs: %w", err)
	}
	return nil
}

// InstallWebhook installs iss-webhook with `issctl args...` (args start with "install"), as the
// README says: issctl applies the install in phases and waits until the Deployment is available,
// the certificate issued and the webhook answering. It runs issctl again, every retryEvery for up
// to retryFor, while an apply fails, as it does while an admission webhook on the way
// (cert-manager's, for the Certificate) is still starting. When the Deployment existed before, it
// then restarts it and waits for it again: the image tag is the same, the image may not be.
func (t *Target) InstallWebhook(ctx context.Context, args []string, retryFor, retryEvery time.Duration) error {
	_, err := t.Kubectl(ctx, "", "get", "deployment", WebhookDeployment, "-n", WebhookNamespace, "-o", "name")
	redeploy := err == nil
	t.Step("installing iss-webhook: %s %s", t.Issctl, strings.Join(args, " "))
	err = retryInstall(ctx, retryFor, retryEvery, func() (string, error) {
		return t.issctlInstall(ctx, args)
	}, t.Step)
	if err != nil {
		return fmt.Errorf("installing iss-webhook with %s: %w", t.Issctl, err)
	}
	if redeploy {
		t.Step("restarting deployment/%s to run the image just loaded", WebhookDeployment)
		if _, err := t.Kubectl(ctx, "", "rollout", "restart", "deployment/"+WebhookDeployment, "-n", WebhookNamespace); err != nil {
			return err
		}
		t.Step("waiting for deployment/%s in %s to be Available", WebhookDeployment, WebhookNamespace)
		if _, err := t.Kubectl(ctx, "", "rollout", "status", "deployment/"+WebhookDeployment, "-n", WebhookNamespace, "--timeout=5m"); err != nil {
			return fmt.Errorf("waiting for deployment/%s: %w", WebhookDeployment, err)
		}
		if _, err := t.Kubectl(ctx, "", "wait", "--for=condition=Available", "--timeout=1m", "deployment/"+WebhookDeployment, "-n", WebhookNamespace); err != nil {
			return fmt.Errorf("waiting for deployment/%s: %w", WebhookDeployment, err)
		}
	}
	t.Step("iss-webhook is ready")
	return nil
}

// issctlInstall runs issctl with args, its output shown as it comes with the progress prefix,
// and returns the last line of its standard error, where it says why it failed.
func (t *Target) issctlInstall(ctx context.Context, args []string) (string, error) {
	var errOut bytes.Buffer
	cmd := t.command(ctx, nil, t.Issctl, args...)
	var lock sync.Mutex // Out and ErrOut may be one writer, written from two goroutines
	cmd.Stdout = &PrefixWriter{W: t.Out, Prefix: t.Prefix, Lock: &lock}
	cmd.Stderr = io.MultiWriter(&PrefixWriter{W: t.ErrOut, Prefix: t.Prefix, Lock: &lock}, &errOut)
	err := cmd.Run()
	return LastLine(errOut.String()), err
}

// retryInstall runs install, and runs it again every interval while it fails in an apply
// (retryableInstall) and less than timeout has passed since the first run, printing why with
// progress. It returns the last failure with its reason.
func retryInstall(ctx context.Context, timeout, interval time.Duration, install func() (reason string, err error), progress func(format string, args ...any)) error {
	deadline := time.Now().Add(timeout)
	for {
		reason, err := install()
		if err == nil {
			return nil
		}
		if reason != "" {
			err = fmt.Errorf("%w: %s", err, reason)
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		if !retryableInstall(reason) {
			return err
		}
		if time.Now().Add(interval).After(deadline) {
			return fmt.Errorf("%w (still failing after %s)", err, timeout)
		}
		progress("%s; cert-manager's webhook may still be starting: running issctl install again in %s", reason, interval)
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// retryableInstall tells whether issctl install failed applying an object, as it does while an
// admission webhook on the way (cert-manager's, for the Certificate) does not answer yet, rather
// than waiting, which it did for its whole timeout, or before touching the cluster.
func retryableInstall(reason string) bool {
	return strings.HasPrefix(reason, "issctl install: applying ")
}

// Prepare creates the example namespaces and the developers with devenv.PrepareCluster and
// devenv.DefaultOptions, then checks with a dry-run engine pod in the first developer namespace
// that the mutating webhook answers. It returns the options it used; their StateDir is empty, as
// PrepareCluster writes no state.
func (t *Target) Prepare(ctx context.Context) (devenv.Options, error) {
	o := devenv.DefaultOptions(t.Repo, "", &PrefixWriter{W: t.Out, Prefix: t.Prefix})
	if err := devenv.PrepareCluster(ctx, t.Kubeconfig, o); err != nil {
		return o, fmt.Errorf("preparing the namespaces and developers: %w", err)
	}
	return o, t.checkEngineMutation(ctx, o.DeveloperNamespaces[0])
}

// checkEngineMutation dry-runs an engine pod and checks that the mutating webhook labelled it
// with its egress policy.
func (t *Target) checkEngineMutation(ctx context.Context, namespace string) error {
	t.Step("checking that the webhook mutates an engine pod (server-side dry run in %s)", namespace)
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: iss-e2e-probe
  namespace: %s
spec:
  containers:
    - name: dagger-engine
      image: registry.dagger.io/engine:v0.19.7
`, namespace)
	out, err := t.Kubectl(ctx, pod, "create", "--dry-run=server", "-o", "json", "-f", "-")
	if err != nil {
		return fmt.Errorf("dry run of an engine pod: %w", err)
	}
	var got corev1.Pod
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		return fmt.Errorf("dry run of an engine pod: %w", err)
	}
	if got.Labels[policy.LabelEgressPolicy] == "" {
		return fmt.Errorf("the dry-run engine pod has no %s label: the mutating webhook did not run", policy.LabelEgressPolicy)
	}
	return nil
}
