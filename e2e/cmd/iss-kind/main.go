// Command iss-kind is `make e2e-kind`: it runs the end-to-end suite of e2e/ against a kind
// cluster where iss-webhook runs as it would in production: the image built from the
// Dockerfile, cert-manager issuing its serving certificate, and the install of the README,
// `issctl install`. Without a Docker engine it says so and exits 0.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/iss-platform/iss-webhook/e2e/devenv"
	"github.com/iss-platform/iss-webhook/policy"
)

const (
	// kind is built from its Go module at this version; its default node image (Kubernetes
	// v1.37.0, pinned by digest) comes with it.
	kindModule  = "sigs.k8s.io/kind"
	kindVersion = "v0.33.0"
	clusterName = "iss-e2e"

	// The image built and loaded into the cluster, which issctl install sets: a tag other than
	// latest, so that the kubelet uses the loaded image and pulls nothing.
	kindImage = "iss-webhook:e2e"
	// issctl install's certificate mode and how long each run of it waits for the webhook.
	installCertMode = "cert-manager"
	installTimeout  = "5m"
	// How long, and how often, issctl install runs again while an apply fails: cert-manager's
	// own webhook may still be starting although its Deployment is Available, and then the
	// apply of the Certificate fails.
	installRetryFor   = 2 * time.Minute
	installRetryEvery = 10 * time.Second

	certManagerVersion  = "v1.21.2"
	certManagerManifest = "https://github.com/cert-manager/cert-manager/releases/download/" + certManagerVersion + "/cert-manager.yaml"
	// The CRD source of devenv.DefaultCRDSources that cert-manager's own install replaces.
	certManagerModule = "github.com/cert-manager/cert-manager"

	webhookNamespace  = "iss-system"
	webhookDeployment = "iss-webhook"
	webhookSelector   = "app.kubernetes.io/name=iss-webhook"

	// kind's kubeconfig is kubeadm's admin.conf, whose user is in the group kubeadm:cluster-admins.
	// The suite acts as the cluster admin that the ISSPolicy trusts by default (system:masters):
	// kubeadm's super-admin.conf on the first control-plane node.
	superAdminConf = "/etc/kubernetes/super-admin.conf"

	progressPrefix = "e2e-kind: "
)

const usageText = `Usage: iss-kind [flags] [-- extra go test arguments]

Runs the end-to-end suite of e2e/ against the kind cluster %[1]s, with iss-webhook
installed as in production:

  1. checks for a Docker engine (docker info); without one, prints why and exits 0
  2. builds kind %[2]s from its Go module into bin/kind, bin/issctl from ./cmd/issctl, and
     the image %[3]s from the Dockerfile
  3. creates the kind cluster %[1]s (or reuses it), kubeconfig in .iss-dev/kind/kubeconfig,
     and loads the image into it
  4. installs cert-manager %[4]s, the CRDs of External Secrets, ClusterNetworkPolicy, Cilium
     and OpenReports from their Go modules, and those of ../shared/crds when present
  5. installs iss-webhook as the README does, with kind's own kubeconfig:
       bin/issctl install --kubeconfig .iss-dev/kind/kind.kubeconfig --image %[3]s \
         --cert-mode %[5]s --timeout %[6]s
     (its CRD, RBAC, Deployment, certificate, ISSPolicy and webhook configurations; it waits
     until the webhook answers), again for up to %[7]s while an apply fails, as it does while
     cert-manager's webhook is starting; on a reused cluster it then restarts the Deployment,
     so that it runs the image just loaded, and waits for it again
  6. creates the example namespaces and the developers alice and bob (devenv.PrepareCluster)
  7. runs go test -count=1 -v -timeout 30m ./e2e/ -ginkgo.v with ISS_E2E_KUBECONFIG set, and
     any extra arguments after them (for example -- -ginkgo.focus=Egress)
  8. deletes the cluster, unless --keep

Environment:
  ISS_KIND_KEEP=1     the default of --keep
  ISS_E2E_SHOW_LOG=1  print the webhook's log after the suite (it is printed when the suite fails)

Flags:
`

func main() {
	// A flag set of its own: imported packages register flags (-kubeconfig) on the default one.
	flags := flag.NewFlagSet("iss-kind", flag.ExitOnError)
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), usageText, clusterName, kindVersion, kindImage, certManagerVersion, installCertMode, installTimeout, installRetryFor)
		flags.PrintDefaults()
	}
	repo := flags.String("repo", ".", "root of the iss-webhook checkout (Dockerfile, cmd/issctl, e2e/; bin/ and .iss-dev/ are written under it)")
	keep := flags.Bool("keep", os.Getenv("ISS_KIND_KEEP") == "1", "keep the kind cluster after the suite, to look at it or to run again faster")
	_ = flags.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *repo, *keep, flags.Args(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, progressPrefix+err.Error())
		os.Exit(1)
	}
}

// run checks for a Docker engine and, when one answers, runs the suite on kind.
func run(ctx context.Context, repo string, keep bool, testArgs []string, stdout, stderr io.Writer) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	if reason := dockerUnavailable(ctx, exec.LookPath, captureCommand); reason != "" {
		fmt.Fprintf(stdout, "%sskipped: no Docker engine on this machine (%s)\n", progressPrefix, reason)
		return nil
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		return errors.New("kubectl is not on PATH: install kubectl to run the suite")
	}
	state := filepath.Join(repo, ".iss-dev", "kind")
	k := &kindRun{
		repo:           repo,
		stateDir:       state,
		kind:           filepath.Join(repo, "bin", "kind"),
		issctl:         filepath.Join(repo, "bin", "issctl"),
		kindKubeconfig: filepath.Join(state, "kind.kubeconfig"),
		kubeconfig:     filepath.Join(state, "kubeconfig"),
		keep:           keep,
		testArgs:       testArgs,
		out:            stdout,
		errOut:         stderr,
	}
	return k.run(ctx)
}

// commandRunner runs a command and returns its standard output, and its standard error as part
// of the error when it fails.
type commandRunner func(ctx context.Context, name string, args ...string) (string, error)

// dockerUnavailable returns why no Docker engine can be used, or "" when `docker info` answers.
func dockerUnavailable(ctx context.Context, lookPath func(string) (string, error), capture commandRunner) string {
	if _, err := lookPath("docker"); err != nil {
		return "docker is not on PATH"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := capture(ctx, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		return "docker info failed: " + firstLine(err.Error())
	}
	return ""
}

// captureCommand is the commandRunner that runs the command for real.
func captureCommand(ctx context.Context, name string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(errOut.String()); msg != "" {
			return out.String(), fmt.Errorf("%s", msg)
		}
		return out.String(), err
	}
	return out.String(), nil
}

// kindRun is one run of the suite on the kind cluster.
type kindRun struct {
	repo, stateDir string
	// kind is the kind binary that go install builds from the pinned module.
	kind string
	// issctl is the binary of ./cmd/issctl, which installs iss-webhook.
	issctl string
	// kindKubeconfig is kind's own kubeconfig (kubeadm's admin.conf, group kubeadm:cluster-admins),
	// which issctl install uses as a cluster admin would; kubeconfig is the same cluster as
	// system:masters, which everything else here and the suite use.
	kindKubeconfig, kubeconfig string
	keep                       bool
	testArgs                   []string
	out, errOut                io.Writer
}

func (k *kindRun) run(ctx context.Context) (err error) {
	if err := os.MkdirAll(k.stateDir, 0o755); err != nil {
		return err
	}
	k.step("building kind %s from its Go module into %s", kindVersion, k.kind)
	if err := k.installKind(ctx); err != nil {
		return err
	}
	k.step("building %s from ./cmd/issctl", k.issctl)
	if err := k.buildIssctl(ctx); err != nil {
		return err
	}
	// The image first: a failed build needs no cluster.
	k.step("building the image %s from %s", kindImage, filepath.Join(k.repo, "Dockerfile"))
	if err := k.stream(ctx, nil, "docker", "build", "-t", kindImage, k.repo); err != nil {
		return fmt.Errorf("docker build: %w", err)
	}

	existed, err := k.clusterExists(ctx)
	if err != nil {
		return err
	}
	if existed {
		k.step("reusing the existing kind cluster %s", clusterName)
	} else {
		k.step("creating the kind cluster %s", clusterName)
		// kind removes what it created when this fails.
		if err := k.stream(ctx, nil, k.kind, "create", "cluster", "--name", clusterName, "--kubeconfig", k.kindKubeconfig, "--wait", "3m"); err != nil {
			return fmt.Errorf("kind create cluster: %w", err)
		}
	}
	defer func() { err = errors.Join(err, k.finish(err, ctx.Err() != nil)) }()

	if err := k.writeKubeconfig(ctx); err != nil {
		return err
	}
	k.step("cluster admin kubeconfig (system:masters) written to %s", k.kubeconfig)
	k.step("loading %s into the kind cluster %s", kindImage, clusterName)
	if err := k.stream(ctx, nil, k.kind, "load", "docker-image", kindImage, "--name", clusterName); err != nil {
		return fmt.Errorf("kind load docker-image: %w", err)
	}

	k.step("installing cert-manager %s from %s", certManagerVersion, certManagerManifest)
	if _, err := k.kubectl(ctx, "", "apply", "--server-side", "-f", certManagerManifest); err != nil {
		return fmt.Errorf("installing cert-manager: %w", err)
	}
	k.step("waiting for cert-manager's deployments to be Available")
	if _, err := k.kubectl(ctx, "", "wait", "--for=condition=Available", "--timeout=5m", "-n", "cert-manager", "deployment", "--all"); err != nil {
		return fmt.Errorf("waiting for cert-manager: %w", err)
	}

	// The CRDs first: the webhook asks which kinds the cluster serves when it starts.
	if err := k.installCRDs(ctx); err != nil {
		return err
	}
	if err := k.installWebhook(ctx); err != nil {
		return err
	}

	o := devenv.DefaultOptions(k.repo, k.stateDir, &prefixWriter{w: k.out, prefix: progressPrefix})
	if err := devenv.PrepareCluster(ctx, k.kubeconfig, o); err != nil {
		return fmt.Errorf("preparing the namespaces and developers: %w", err)
	}
	if err := k.checkEngineMutation(ctx, o.DeveloperNamespaces[0]); err != nil {
		return err
	}
	return k.runSuite(ctx)
}

// installKind builds kind from its pinned module (go install caches the build) and checks its
// version.
func (k *kindRun) installKind(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "install", kindModule+"@"+kindVersion)
	cmd.Dir = k.repo
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(k.kind))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install %s@%s: %v: %s", kindModule, kindVersion, err, out)
	}
	out, err := captureCommand(ctx, k.kind, "version")
	if err != nil {
		return fmt.Errorf("%s version: %w", k.kind, err)
	}
	if !strings.Contains(out, kindVersion) {
		return fmt.Errorf("%s is not kind %s: %s", k.kind, kindVersion, strings.TrimSpace(out))
	}
	return nil
}

// buildIssctl builds bin/issctl from the checkout; after `make build` it is up to date already.
func (k *kindRun) buildIssctl(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", k.issctl, "./cmd/issctl")
	cmd.Dir = k.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/issctl: %v: %s", err, out)
	}
	return nil
}

func (k *kindRun) clusterExists(ctx context.Context) (bool, error) {
	out, err := captureCommand(ctx, k.kind, "get", "clusters")
	if err != nil {
		return false, fmt.Errorf("kind get clusters: %w", err)
	}
	for _, name := range strings.Fields(out) {
		if name == clusterName {
			return true, nil
		}
	}
	return false, nil
}

// writeKubeconfig writes kind's kubeconfig and, from it and the first control-plane node's
// super-admin.conf, the system:masters kubeconfig.
func (k *kindRun) writeKubeconfig(ctx context.Context) error {
	kindKC, err := captureCommand(ctx, k.kind, "get", "kubeconfig", "--name", clusterName)
	if err != nil {
		return fmt.Errorf("kind get kubeconfig: %w", err)
	}
	if err := os.WriteFile(k.kindKubeconfig, []byte(kindKC), 0o600); err != nil {
		return err
	}
	nodes, err := captureCommand(ctx, k.kind, "get", "nodes", "--name", clusterName)
	if err != nil {
		return fmt.Errorf("kind get nodes: %w", err)
	}
	node, err := controlPlaneNode(nodes, clusterName)
	if err != nil {
		return err
	}
	superAdmin, err := captureCommand(ctx, "docker", "exec", node, "cat", superAdminConf)
	if err != nil {
		return fmt.Errorf("reading %s on %s: %w", superAdminConf, node, err)
	}
	trusted, err := trustedKubeconfig([]byte(kindKC), []byte(superAdmin))
	if err != nil {
		return err
	}
	return os.WriteFile(k.kubeconfig, trusted, 0o600)
}

// controlPlaneNode returns the first control-plane node of `kind get nodes`, where kubeadm init
// ran and wrote super-admin.conf.
func controlPlaneNode(nodes, cluster string) (string, error) {
	want := cluster + "-control-plane"
	for _, n := range strings.Fields(nodes) {
		if n == want {
			return n, nil
		}
	}
	return "", fmt.Errorf("kind cluster %s has no node %s (nodes: %s)", cluster, want, strings.Join(strings.Fields(nodes), ", "))
}

// trustedKubeconfig returns kind's kubeconfig, whose server address is reachable from this
// machine, with the credentials of its current context replaced by those of kubeadm's
// super-admin.conf (group system:masters).
func trustedKubeconfig(kindKubeconfig, superAdmin []byte) ([]byte, error) {
	kc, err := clientcmd.Load(kindKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parsing kind's kubeconfig: %w", err)
	}
	sa, err := clientcmd.Load(superAdmin)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", superAdminConf, err)
	}
	cur := kc.Contexts[kc.CurrentContext]
	if cur == nil {
		return nil, fmt.Errorf("kind's kubeconfig has no current context %q", kc.CurrentContext)
	}
	saCtx := sa.Contexts[sa.CurrentContext]
	if saCtx == nil || sa.AuthInfos[saCtx.AuthInfo] == nil {
		return nil, fmt.Errorf("%s has no user in its current context %q", superAdminConf, sa.CurrentContext)
	}
	user := sa.AuthInfos[saCtx.AuthInfo]
	if len(user.ClientCertificateData) == 0 || len(user.ClientKeyData) == 0 {
		return nil, fmt.Errorf("%s holds no client certificate and key", superAdminConf)
	}
	name := kc.CurrentContext + "-super-admin"
	delete(kc.AuthInfos, cur.AuthInfo)
	kc.AuthInfos[name] = user
	cur.AuthInfo = name
	return clientcmd.Write(*kc)
}

// installCRDs installs the CRDs of the objects the webhook governs, from their projects' Go
// modules and the shared folder, and waits until they are served. The project's own CRD is
// issctl install's.
func (k *kindRun) installCRDs(ctx context.Context) error {
	k.step("fetching CRD manifests from their Go modules")
	var files []string
	for _, s := range devenv.DefaultCRDSources() {
		if s.Module == certManagerModule {
			continue // served by cert-manager's own install
		}
		paths, err := s.Paths(ctx, k.repo)
		if err != nil {
			return err
		}
		files = append(files, paths...)
	}
	shared, err := devenv.SharedCRDs(k.repo)
	if err != nil {
		return err
	}
	if len(shared) == 0 {
		k.step("WARNING: no shared/crds folder beside the checkout: the Pulumi and tofu-controller CRDs are not installed, and the suite's provisioning specs will fail")
	}
	files = append(files, shared...)
	k.step("installing %d CRD manifests from Go modules and the shared folder", len(files))
	args := []string{"apply", "--server-side"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	if _, err := k.kubectl(ctx, "", args...); err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	k.step("waiting for the CRDs to be Established")
	if _, err := k.kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=2m", "crd", "--all"); err != nil {
		return fmt.Errorf("waiting for the CRDs: %w", err)
	}
	return nil
}

// installWebhook installs iss-webhook with issctl install, as the README says, which applies the
// install in phases and waits until the Deployment is available, the certificate issued and the
// webhook answering. On a cluster where it was installed already, it then restarts the
// Deployment: the tag is the same, the image may not be.
func (k *kindRun) installWebhook(ctx context.Context) error {
	_, err := k.kubectl(ctx, "", "get", "deployment", webhookDeployment, "-n", webhookNamespace, "-o", "name")
	redeploy := err == nil
	args := issctlInstallArgs(k.kindKubeconfig)
	k.step("installing iss-webhook: %s %s", k.issctl, strings.Join(args, " "))
	err = retryInstall(ctx, installRetryFor, installRetryEvery, func() (string, error) {
		return k.issctlInstall(ctx, args)
	}, k.step)
	if err != nil {
		return fmt.Errorf("installing iss-webhook with %s: %w", k.issctl, err)
	}
	if redeploy {
		k.step("restarting deployment/%s to run the image just loaded", webhookDeployment)
		if _, err := k.kubectl(ctx, "", "rollout", "restart", "deployment/"+webhookDeployment, "-n", webhookNamespace); err != nil {
			return err
		}
		k.step("waiting for deployment/%s in %s to be Available", webhookDeployment, webhookNamespace)
		if _, err := k.kubectl(ctx, "", "rollout", "status", "deployment/"+webhookDeployment, "-n", webhookNamespace, "--timeout=5m"); err != nil {
			return fmt.Errorf("waiting for deployment/%s: %w", webhookDeployment, err)
		}
		if _, err := k.kubectl(ctx, "", "wait", "--for=condition=Available", "--timeout=1m", "deployment/"+webhookDeployment, "-n", webhookNamespace); err != nil {
			return fmt.Errorf("waiting for deployment/%s: %w", webhookDeployment, err)
		}
	}
	k.step("iss-webhook is ready")
	return nil
}

// issctlInstallArgs is the command line of issctl install: the README's install, with the image
// loaded into the cluster.
func issctlInstallArgs(kubeconfig string) []string {
	return []string{"install", "--kubeconfig", kubeconfig, "--image", kindImage, "--cert-mode", installCertMode, "--timeout", installTimeout}
}

// issctlInstall runs bin/issctl with args, its output shown as it comes with the progress
// prefix, and returns the last line of its standard error, where it says why it failed.
func (k *kindRun) issctlInstall(ctx context.Context, args []string) (string, error) {
	var errOut bytes.Buffer
	cmd := k.command(ctx, nil, k.issctl, args...)
	cmd.Stdout = &prefixWriter{w: k.out, prefix: progressPrefix}
	cmd.Stderr = io.MultiWriter(&prefixWriter{w: k.errOut, prefix: progressPrefix}, &errOut)
	err := cmd.Run()
	return lastLine(errOut.String()), err
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

// checkEngineMutation dry-runs an engine pod and checks that the mutating webhook labelled it
// with its egress policy.
func (k *kindRun) checkEngineMutation(ctx context.Context, namespace string) error {
	k.step("checking that the webhook mutates an engine pod (server-side dry run in %s)", namespace)
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: iss-e2e-kind-probe
  namespace: %s
spec:
  containers:
    - name: dagger-engine
      image: registry.dagger.io/engine:v0.19.7
`, namespace)
	out, err := k.kubectl(ctx, pod, "create", "--dry-run=server", "-o", "json", "-f", "-")
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

// runSuite runs the Ginkgo suite against the cluster.
func (k *kindRun) runSuite(ctx context.Context) error {
	k.step("running the end-to-end suite against the kind cluster %s (ISS_E2E_KUBECONFIG=%s)", clusterName, k.kubeconfig)
	args := append([]string{"test", "-count=1", "-v", "-timeout", "30m", "./e2e/", "-ginkgo.v"}, k.testArgs...)
	err := k.stream(ctx, []string{"ISS_E2E_KUBECONFIG=" + k.kubeconfig}, "go", args...)
	if err != nil || os.Getenv("ISS_E2E_SHOW_LOG") != "" {
		k.webhookLog()
	}
	if err != nil {
		return &suiteError{fmt.Errorf("the end-to-end suite failed on the kind cluster %s: %w", clusterName, err)}
	}
	k.step("the end-to-end suite passed on the kind cluster %s", clusterName)
	return nil
}

// finish runs once the cluster exists: after a failure before the suite ran (and not an
// interruption) it prints what the cluster shows, then it deletes the cluster unless it is kept.
func (k *kindRun) finish(runErr error, interrupted bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var suiteFailed *suiteError
	if runErr != nil && !interrupted && !errors.As(runErr, &suiteFailed) {
		k.diagnose(ctx)
	}
	if k.keep {
		k.step("keeping the kind cluster %s: export KUBECONFIG=%s; delete it with: %s delete cluster --name %s", clusterName, k.kubeconfig, k.kind, clusterName)
		return nil
	}
	k.step("deleting the kind cluster %s (ISS_KIND_KEEP=1 keeps it)", clusterName)
	err := k.stream(ctx, nil, k.kind, "delete", "cluster", "--name", clusterName, "--kubeconfig", k.kindKubeconfig)
	for _, f := range []string{k.kubeconfig, k.kindKubeconfig} {
		if rerr := os.Remove(f); rerr != nil && !os.IsNotExist(rerr) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("deleting the kind cluster %s: %w", clusterName, err)
	}
	return nil
}

// suiteError marks the suite's own failure, after which diagnose has nothing to add.
type suiteError struct{ error }

// diagnose prints the cluster's pods, the events of the webhook's namespace and its log.
func (k *kindRun) diagnose(ctx context.Context) {
	k.step("the cluster at the time of the failure:")
	for _, args := range [][]string{
		{"get", "pods", "--all-namespaces", "-o", "wide"},
		{"get", "events", "-n", webhookNamespace, "--sort-by=.lastTimestamp"},
	} {
		out, err := k.kubectl(ctx, "", args...)
		if err != nil {
			out = err.Error()
		}
		fmt.Fprintf(k.out, "$ kubectl %s\n%s\n", strings.Join(args, " "), out)
	}
	k.webhookLog()
}

// webhookLog prints the log of every iss-webhook pod.
func (k *kindRun) webhookLog() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := k.kubectl(ctx, "", "logs", "-n", webhookNamespace, "-l", webhookSelector, "--all-containers", "--prefix", "--tail=-1")
	if err != nil {
		out = err.Error()
	}
	fmt.Fprintf(k.out, "%siss-webhook log:\n%s\n", progressPrefix, out)
}

// kubectl runs kubectl as the cluster admin and returns stdout; the error carries stderr.
func (k *kindRun) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	stdout, stderr, err := devenv.Kubectl(ctx, k.kubeconfig, in, args...)
	if err != nil {
		return stdout, fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr))
	}
	return stdout, nil
}

// stream runs a command in the checkout with its output shown as it comes. On Ctrl-C the
// command gets the interrupt first, so that go test and docker stop cleanly.
func (k *kindRun) stream(ctx context.Context, env []string, name string, args ...string) error {
	cmd := k.command(ctx, env, name, args...)
	cmd.Stdout, cmd.Stderr = k.out, k.errOut
	return cmd.Run()
}

// command returns a command that runs in the checkout with env added to the environment and
// gets the interrupt when ctx ends.
func (k *kindRun) command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = k.repo
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

func (k *kindRun) step(format string, args ...any) {
	fmt.Fprintf(k.out, progressPrefix+format+"\n", args...)
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	w       io.Writer
	prefix  string
	midLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	var buf bytes.Buffer
	for len(b) > 0 {
		if !p.midLine {
			buf.WriteString(p.prefix)
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			buf.Write(b)
			p.midLine = true
			break
		}
		buf.Write(b[:i+1])
		b = b[i+1:]
		p.midLine = false
	}
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}
