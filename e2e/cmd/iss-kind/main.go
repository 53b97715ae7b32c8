// Command iss-kind is `make e2e-kind`: it runs the end-to-end suite of e2e/ against a kind
// cluster where iss-webhook runs as it would in production: the image built from the
// Dockerfile, cert-manager issuing its serving certificate, and the install of the README,
// `issctl install`. Without a Docker engine it says so and exits 0. What it does once the cluster
// runs and cert-manager is installed (the CRDs, issctl install, the namespaces and developers,
// the suite, what is printed on a failure) is e2e/suiterun's, as on any other target.
package main

import (
	"bytes"
	"context"
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

	"k8s.io/client-go/tools/clientcmd"

	"github.com/iss-platform/iss-webhook/e2e/suiterun"
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

	// How long go test may run the suite.
	suiteTimeout = 30 * time.Minute

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
  6. creates the example namespaces and the developers alice and bob (devenv.PrepareCluster),
     and checks with a server-side dry run of an engine pod that the webhook mutates it
  7. runs go test -count=1 -v -timeout %[8]s ./e2e/ -ginkgo.v with ISS_E2E_KUBECONFIG set, and
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
		fmt.Fprintf(flags.Output(), usageText, clusterName, kindVersion, kindImage, certManagerVersion, installCertMode, installTimeout, installRetryFor, suiteTimeout)
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
		Target: &suiterun.Target{
			Name:       "the kind cluster " + clusterName,
			Repo:       repo,
			Kubeconfig: filepath.Join(state, "kubeconfig"),
			Issctl:     filepath.Join(repo, "bin", "issctl"),
			Out:        stdout,
			ErrOut:     stderr,
			Prefix:     progressPrefix,
		},
		stateDir:       state,
		kind:           filepath.Join(repo, "bin", "kind"),
		kindKubeconfig: filepath.Join(state, "kind.kubeconfig"),
		keep:           keep,
		testArgs:       testArgs,
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
		return "docker info failed: " + suiterun.FirstLine(err.Error())
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

// kindRun is one run of the suite on the kind cluster. Its Target's Kubeconfig is the
// system:masters one, which everything here but issctl install uses, and the suite too.
type kindRun struct {
	*suiterun.Target
	stateDir string
	// kind is the kind binary that go install builds from the pinned module.
	kind string
	// kindKubeconfig is kind's own kubeconfig (kubeadm's admin.conf, group kubeadm:cluster-admins),
	// which issctl install uses as a cluster admin would.
	kindKubeconfig string
	keep           bool
	testArgs       []string
}

func (k *kindRun) run(ctx context.Context) (err error) {
	if err := os.MkdirAll(k.stateDir, 0o755); err != nil {
		return err
	}
	k.Step("building kind %s from its Go module into %s", kindVersion, k.kind)
	if err := k.installKind(ctx); err != nil {
		return err
	}
	if err := k.BuildIssctl(ctx); err != nil {
		return err
	}
	// The image first: a failed build needs no cluster.
	k.Step("building the image %s from %s", kindImage, filepath.Join(k.Repo, "Dockerfile"))
	if err := k.Stream(ctx, nil, "docker", "build", "-t", kindImage, k.Repo); err != nil {
		return fmt.Errorf("docker build: %w", err)
	}

	existed, err := k.clusterExists(ctx)
	if err != nil {
		return err
	}
	if existed {
		k.Step("reusing the existing kind cluster %s", clusterName)
	} else {
		k.Step("creating the kind cluster %s", clusterName)
		// kind removes what it created when this fails.
		if err := k.Stream(ctx, nil, k.kind, "create", "cluster", "--name", clusterName, "--kubeconfig", k.kindKubeconfig, "--wait", "3m"); err != nil {
			return fmt.Errorf("kind create cluster: %w", err)
		}
	}
	defer func() { err = errors.Join(err, k.finish(err, ctx.Err() != nil)) }()

	if err := k.writeKubeconfig(ctx); err != nil {
		return err
	}
	k.Step("cluster admin kubeconfig (system:masters) written to %s", k.Kubeconfig)
	k.Step("loading %s into the kind cluster %s", kindImage, clusterName)
	if err := k.Stream(ctx, nil, k.kind, "load", "docker-image", kindImage, "--name", clusterName); err != nil {
		return fmt.Errorf("kind load docker-image: %w", err)
	}

	k.Step("installing cert-manager %s from %s", certManagerVersion, certManagerManifest)
	if _, err := k.Kubectl(ctx, "", "apply", "--server-side", "-f", certManagerManifest); err != nil {
		return fmt.Errorf("installing cert-manager: %w", err)
	}
	k.Step("waiting for cert-manager's deployments to be Available")
	if _, err := k.Kubectl(ctx, "", "wait", "--for=condition=Available", "--timeout=5m", "-n", "cert-manager", "deployment", "--all"); err != nil {
		return fmt.Errorf("waiting for cert-manager: %w", err)
	}

	// cert-manager's CRDs came with its own install.
	if err := k.InstallCRDs(ctx, certManagerModule); err != nil {
		return err
	}
	if err := k.InstallWebhook(ctx, issctlInstallArgs(k.kindKubeconfig), installRetryFor, installRetryEvery); err != nil {
		return err
	}
	if _, err := k.Prepare(ctx); err != nil {
		return err
	}
	return k.RunSuite(ctx, suiteTimeout, nil, k.testArgs)
}

// installKind builds kind from its pinned module (go install caches the build) and checks its
// version.
func (k *kindRun) installKind(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "install", kindModule+"@"+kindVersion)
	cmd.Dir = k.Repo
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
	return os.WriteFile(k.Kubeconfig, trusted, 0o600)
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

// issctlInstallArgs is the command line of issctl install: the README's install, with the image
// loaded into the cluster.
func issctlInstallArgs(kubeconfig string) []string {
	return []string{"install", "--kubeconfig", kubeconfig, "--image", kindImage, "--cert-mode", installCertMode, "--timeout", installTimeout}
}

// finish runs once the cluster exists: after a failure before the suite ran (and not an
// interruption) it prints what the cluster shows, then it deletes the cluster unless it is kept.
func (k *kindRun) finish(runErr error, interrupted bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var suiteFailed *suiterun.SuiteError
	if runErr != nil && !interrupted && !errors.As(runErr, &suiteFailed) {
		k.Diagnose(ctx)
	}
	if k.keep {
		k.Step("keeping the kind cluster %s: export KUBECONFIG=%s; delete it with: %s delete cluster --name %s", clusterName, k.Kubeconfig, k.kind, clusterName)
		return nil
	}
	k.Step("deleting the kind cluster %s (ISS_KIND_KEEP=1 keeps it)", clusterName)
	err := k.Stream(ctx, nil, k.kind, "delete", "cluster", "--name", clusterName, "--kubeconfig", k.kindKubeconfig)
	for _, f := range []string{k.Kubeconfig, k.kindKubeconfig} {
		if rerr := os.Remove(f); rerr != nil && !os.IsNotExist(rerr) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("deleting the kind cluster %s: %w", clusterName, err)
	}
	return nil
}
