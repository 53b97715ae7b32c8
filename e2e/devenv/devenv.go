// Package devenv brings up the local control plane that `make run` and the end-to-end suite use:
// kube-apiserver and etcd built from pinned Go modules, the iss-webhook binary serving TLS on
// loopback, and the webhook configurations of manifests/webhook pointing the API server at it.
// Nothing is faked: the API server calls the webhook over TLS as it would in a cluster.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/iss-platform/iss-webhook/policy"
)

// Options configure a local environment.
type Options struct {
	// RepoRoot is the root of the checkout; bin/ and manifests/ are found under it.
	RepoRoot string
	// StateDir receives the admin kubeconfig and the webhook's log.
	StateDir string
	// Progress receives one line per step, for a person watching.
	Progress io.Writer
	// Namespaces are created labelled; nil means DefaultNamespaces().
	Namespaces []Namespace
	// CRDs are installed from their Go modules; nil means DefaultCRDSources().
	CRDs []CRDSource
	// Developer is an ordinary user, bound to the edit ClusterRole in the namespaces of
	// DeveloperNamespaces, that tests and people impersonate with kubectl --as.
	Developer string
	// DeveloperNamespaces are the namespaces where Developer may edit.
	DeveloperNamespaces []string
}

// Env is a running local environment.
type Env struct {
	// Kubeconfig is the path of the admin kubeconfig (group system:masters).
	Kubeconfig string
	// Config is the admin client configuration.
	Config *rest.Config
	// WebhookLog is the path of the webhook's log file.
	WebhookLog string
	// MetricsURL is the webhook's Prometheus endpoint.
	MetricsURL string

	opts    Options
	testEnv *envtest.Environment
	webhook *exec.Cmd
	exited  chan error
}

// Namespace is an example namespace that Start creates, labelled as a platform would label it.
type Namespace struct {
	Name, AppID, Environment string
}

// DefaultNamespaces are the example namespaces. The examples in manifests/examples and the
// end-to-end suite use them.
func DefaultNamespaces() []Namespace {
	return []Namespace{
		{Name: "team-a-dev", AppID: "team-a", Environment: "dev"},
		{Name: "team-a-prod", AppID: "team-a", Environment: "prod"},
		{Name: "team-b-staging", AppID: "team-b", Environment: "staging"},
	}
}

// DefaultOptions returns the options of `make run` for a checkout at repoRoot.
func DefaultOptions(repoRoot, stateDir string, progress io.Writer) Options {
	return Options{
		RepoRoot: repoRoot, StateDir: stateDir, Progress: progress,
		Namespaces: DefaultNamespaces(), CRDs: DefaultCRDSources(),
		Developer: "alice", DeveloperNamespaces: []string{"team-a-dev", "team-a-prod"},
	}
}

// Start brings the environment up: control plane, webhook, registration, example namespaces.
// On error everything started so far is stopped again.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	bin := filepath.Join(o.RepoRoot, "bin")
	for _, name := range []string{"kube-apiserver", "etcd", "iss-webhook"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("%s is missing from %s: run `make build controlplane` first", name, bin)
		}
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return nil, err
	}
	e := &Env{opts: o, Kubeconfig: filepath.Join(o.StateDir, "kubeconfig"), WebhookLog: filepath.Join(o.StateDir, "webhook.log")}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()

	e.progress("fetching CRD manifests from their Go modules")
	crds, err := crdPaths(ctx, o.RepoRoot, o.CRDs)
	if err != nil {
		return nil, err
	}
	e.progress("starting etcd and kube-apiserver, installing %d CRDs", len(crds))
	e.testEnv = &envtest.Environment{
		CRDInstallOptions:        envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true},
		BinaryAssetsDirectory:    bin,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths:            []string{filepath.Join(o.RepoRoot, "manifests", "webhook", "webhooks.yaml")},
			LocalServingHost: "127.0.0.1",
		},
	}
	if _, err := e.testEnv.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	admin, err := e.testEnv.AddUser(envtest.User{Name: "iss-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("creating the admin user: %w", err)
	}
	e.Config = admin.Config()
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(e.Kubeconfig, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	e.progress("kube-apiserver is serving at %s; admin kubeconfig written to %s", e.Config.Host, e.Kubeconfig)

	if err := e.startWebhook(ctx); err != nil {
		return nil, err
	}
	if err := e.createNamespaces(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// startWebhook runs bin/iss-webhook against the control plane with the serving certificate that
// envtest issued for the registered webhook configurations, and waits until it is ready.
func (e *Env) startWebhook(ctx context.Context) error {
	wh := &e.testEnv.WebhookInstallOptions
	healthPort, err := FreePort()
	if err != nil {
		return err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return err
	}
	e.MetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	logFile, err := os.Create(e.WebhookLog)
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig", e.Kubeconfig,
		"--webhook-host", wh.LocalServingHost,
		"--webhook-port", strconv.Itoa(wh.LocalServingPort),
		"--cert-dir", wh.LocalServingCertDir,
		"--metrics-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)),
		"--health-probe-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(healthPort)),
		"--log-level", "debug",
		// Nothing load-balances in front of it here: stop at once.
		"--shutdown-delay", "0s",
	}
	e.webhook = exec.Command(filepath.Join(e.opts.RepoRoot, "bin", "iss-webhook"), args...)
	e.webhook.Stdout, e.webhook.Stderr = logFile, logFile
	if err := e.webhook.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting iss-webhook: %w", err)
	}
	e.exited = make(chan error, 1)
	go func() {
		e.exited <- e.webhook.Wait()
		logFile.Close()
	}()
	e.progress("iss-webhook serving TLS on %s:%d (log: %s)", wh.LocalServingHost, wh.LocalServingPort, e.WebhookLog)

	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-e.exited:
			e.exited <- err
			return fmt.Errorf("iss-webhook exited during start-up (%v); its log:\n%s", err, tail(e.WebhookLog, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(readyz); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				e.progress("iss-webhook is ready")
				return nil
			}
		}
	}
	return fmt.Errorf("iss-webhook was not ready within 30s; its log:\n%s", tail(e.WebhookLog, 20))
}

func (e *Env) createNamespaces(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(e.opts.Namespaces))
	for _, ns := range e.opts.Namespaces {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: map[string]string{
			policy.LabelAppID: ns.AppID, policy.LabelEnvironment: ns.Environment,
		}}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
		}
		names = append(names, ns.Name)
	}
	e.progress("created namespaces %s", strings.Join(names, ", "))
	if e.opts.Developer == "" {
		return nil
	}
	// An ordinary developer's rights are the edit ClusterRole, which a cluster's controller
	// manager aggregates from these two bootstrap roles. This control plane has no controller
	// manager, so the developer is bound to the roles the aggregation would combine.
	for _, ns := range e.opts.DeveloperNamespaces {
		for _, role := range []string{"system:aggregate-to-edit", "system:aggregate-to-view"} {
			rb := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "developer-" + strings.TrimPrefix(role, "system:"), Namespace: ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: e.opts.Developer}},
			}
			if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("binding %s to %s in %s: %w", e.opts.Developer, role, ns, err)
			}
		}
	}
	e.progress("user %q may edit in %s (kubectl --as=%s)", e.opts.Developer, strings.Join(e.opts.DeveloperNamespaces, ", "), e.opts.Developer)
	return nil
}

// Stop stops the webhook (SIGTERM, so that in-flight reviews finish) and the control plane, and
// removes the kubeconfig, which would point at a server that is gone.
func (e *Env) Stop() error {
	var errs []error
	if e.webhook != nil && e.webhook.Process != nil {
		_ = e.webhook.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(40 * time.Second):
			_ = e.webhook.Process.Kill()
			errs = append(errs, errors.New("iss-webhook did not stop within 40s of SIGTERM; killed"))
		}
	}
	if e.testEnv != nil {
		if err := e.testEnv.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the control plane: %w", err))
		}
	}
	if err := os.Remove(e.Kubeconfig); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (e *Env) progress(format string, args ...any) {
	if e.opts.Progress != nil {
		fmt.Fprintf(e.opts.Progress, "iss-dev: "+format+"\n", args...)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
