package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"time"

	"github.com/iss-platform/iss-webhook/e2e/cluster"
	"github.com/iss-platform/iss-webhook/e2e/suiterun"
)

const (
	// webhookImage is the image that `make image` writes and the cluster imports: a tag other
	// than latest, and a pull policy that never pulls.
	webhookImage = "localhost/iss-webhook:dev"
	// installTimeout is how long each run of issctl install waits for the webhook to answer.
	installTimeout = 5 * time.Minute
	// How long, and how often, issctl install runs again while an apply fails.
	installRetryFor   = 2 * time.Minute
	installRetryEvery = 10 * time.Second
	// suiteTimeout bounds the whole suite on the cluster, whose node-only specs wait for pods.
	suiteTimeout   = 45 * time.Minute
	progressPrefix = "e2e-cluster: "
	// certManagerModule is the module of cert-manager's controllers and CRDs that the cluster
	// runs, pinned in e2e/tools/cert-manager.
	certManagerModule = "github.com/cert-manager/cert-manager"
)

// e2eRun is one run of the suite on the cluster.
type e2eRun struct {
	repo        string
	keep        bool
	testArgs    []string
	out, errOut io.Writer
}

// installArgs is issctl install's command line on the cluster in a certificate mode
// (self-signed or cert-manager): the imported image, never pulled.
func installArgs(kubeconfig, certMode string) []string {
	return []string{"install", "--kubeconfig", kubeconfig, "--image", webhookImage, "--image-pull-policy", "Never",
		"--cert-mode", certMode, "--timeout", installTimeout.String()}
}

// certModeLabel labels the specs whose outcome depends on how the webhook's serving certificate
// is issued and rotated: after the whole suite in the self-signed mode, they run again with the
// webhook installed in the cert-manager mode.
const certModeLabel = "cert-mode"

// modeSwitchLabel labels the spec that switches the installed webhook from the self-signed
// certificate mode to cert-manager, with ISS_E2E_SWITCH_INSTALL its issctl install arguments.
const modeSwitchLabel = "mode-switch"

// runE2E brings the cluster up, installs iss-webhook on it and runs the suite. A machine that
// cannot run the cluster skips it, saying why.
func runE2E(ctx context.Context, c *cluster.Cluster, r e2eRun) (err error) {
	t := &suiterun.Target{
		Name: "the single-node cluster", Repo: r.repo, Kubeconfig: c.Kubeconfig,
		Issctl: filepath.Join(r.repo, "bin", "issctl"), Out: r.out, ErrOut: r.errOut, Prefix: progressPrefix,
	}
	if err := c.Start(ctx); err != nil {
		var unsupported *cluster.UnsupportedError
		if errors.As(err, &unsupported) {
			t.Step("skipped: %s", unsupported.Reason)
			return nil
		}
		return err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			var se *suiterun.SuiteError
			if !errors.As(err, &se) {
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				t.Diagnose(dctx)
				cancel()
			}
		}
		if r.keep && ctx.Err() == nil {
			t.Step("keeping the cluster: export KUBECONFIG=%s; Ctrl-C stops it", c.Kubeconfig)
			<-ctx.Done()
		}
		err = errors.Join(err, c.Stop())
	}()
	// The cluster runs cert-manager with the CRDs of its own version: not those of the module
	// the local control plane takes them from.
	if err := t.InstallCRDs(ctx, certManagerModule); err != nil {
		return err
	}
	env := []string{"ISS_E2E_NODE=1", "ISS_E2E_CONTAINERD_SOCKET=" + c.ContainerdSocket(), "ISS_E2E_HOST_ADDRESS=" + cluster.PodGateway}
	// The whole suite, in the mode that needs nothing but the webhook.
	t.Step("installing iss-webhook in the self-signed certificate mode")
	if err := t.InstallWebhook(ctx, installArgs(c.Kubeconfig, "self-signed"), installRetryFor, installRetryEvery); err != nil {
		return err
	}
	if _, err := t.Prepare(ctx); err != nil {
		return err
	}
	if err := t.RunSuite(ctx, suiteTimeout, env, append([]string{"-ginkgo.label-filter=!uninstall && !" + modeSwitchLabel}, r.testArgs...)); err != nil {
		return err
	}
	// Then the switch to the cert-manager mode, on the running install, as an operator would
	// run it; the spec runs issctl install itself, and counts the admissions that fail meanwhile.
	t.Step("switching iss-webhook to the cert-manager certificate mode, alone")
	switchArgs, err := json.Marshal(installArgs(c.Kubeconfig, "cert-manager"))
	if err != nil {
		return err
	}
	if err := t.RunSuite(ctx, 15*time.Minute, append(env, "ISS_E2E_SWITCH_INSTALL="+string(switchArgs)), append([]string{"-ginkgo.label-filter=" + modeSwitchLabel}, r.testArgs...)); err != nil {
		return err
	}
	// Then the specs of the certificates in the cert-manager mode.
	if err := t.RunSuite(ctx, suiteTimeout, env, append([]string{"-ginkgo.label-filter=" + certModeLabel + " && !uninstall"}, r.testArgs...)); err != nil {
		return err
	}
	// issctl uninstall removes the product: its spec runs alone, after all the others.
	t.Step("and the uninstall spec, alone and last")
	return t.RunSuite(ctx, 10*time.Minute, append(env, "ISS_E2E_UNINSTALL=1"), append([]string{"-ginkgo.label-filter=uninstall"}, r.testArgs...))
}
