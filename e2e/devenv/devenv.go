// Package devenv brings up the local control plane that `make run` and the end-to-end suite use:
// kube-apiserver and etcd built from pinned Go modules, the iss-webhook binary serving TLS on
// loopback, and the webhook configurations of manifests/webhook pointing the API server at it.
// Nothing is faked: the API server calls the webhook over TLS as it would in a cluster.
package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	// Developers are ordinary users, bound to the edit ClusterRole in the namespaces of
	// DeveloperNamespaces, that tests and people impersonate with kubectl --as.
	Developers []string
	// DeveloperNamespaces are the namespaces where Developers may edit.
	DeveloperNamespaces []string
	// WebhookArgs are extra flags of iss-webhook.
	WebhookArgs []string
	// OpenBao, when set, turns the existence check on against that OpenBao: Start applies the
	// ISSPolicy of OpenBao.PolicyManifest and passes the webhook the credentials' flags.
	OpenBao *OpenBao
	// RecordReviews, when set, is the path of a file of JSON lines that every AdmissionReview
	// the API server sends, with the webhook's answer, is appended to (see Recorder). Empty: the
	// API server calls the webhook directly.
	RecordReviews string
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
	// WebhookUser is the user name the webhook authenticates as: its service account's.
	WebhookUser string
	// ProvisioningCRDs tells whether the Pulumi and tofu-controller CRDs of the shared folder
	// beside the checkout were found and installed.
	ProvisioningCRDs bool

	opts              Options
	cp                *ControlPlane
	webhookKubeconfig string
	webhook           *exec.Cmd
	exited            chan error
	recorder          *Recorder
}

// The waits of the local control plane: generous, because a loaded 2-core machine (a parallel
// build, a CI neighbour) is many times slower than an idle one.
const (
	controlPlaneStartTimeout = 5 * time.Minute
	crdInstallTimeout        = 3 * time.Minute
	webhookReadyTimeout      = 3 * time.Minute
)

// ControlPlane is etcd and kube-apiserver, built from the pinned modules into bin/, with the
// given CRDs and webhook configurations installed.
type ControlPlane struct {
	env *envtest.Environment
}

// StartControlPlane starts etcd and kube-apiserver from repoRoot/bin, installs the CRD manifests
// and registers the webhook configurations in webhookFiles, pointed at a local serving address
// with a CA of their own (see WebhookServing).
func StartControlPlane(repoRoot string, crds, webhookFiles []string) (*ControlPlane, error) {
	bin := filepath.Join(repoRoot, "bin")
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("%s is missing from %s: run `make controlplane` first", name, bin)
		}
	}
	cp := &ControlPlane{env: &envtest.Environment{
		// envtest waits 10s for the CRDs to be served by default: too short on a loaded machine.
		CRDInstallOptions:        envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true, MaxTime: crdInstallTimeout},
		BinaryAssetsDirectory:    bin,
		ControlPlaneStartTimeout: controlPlaneStartTimeout,
		ControlPlaneStopTimeout:  30 * time.Second,
		WebhookInstallOptions:    envtest.WebhookInstallOptions{Paths: webhookFiles, LocalServingHost: "127.0.0.1"},
	}}
	if _, err := cp.env.Start(); err != nil {
		_ = cp.env.Stop()
		return nil, fmt.Errorf("starting the control plane (etcd and kube-apiserver answering within %s, then %d CRDs served within %s): %w",
			controlPlaneStartTimeout, len(crds), crdInstallTimeout, err)
	}
	return cp, nil
}

// WriteKubeconfig writes a kubeconfig for a user with a client certificate, and returns its
// client configuration.
func (cp *ControlPlane) WriteKubeconfig(path, user string, groups ...string) (*rest.Config, error) {
	u, err := cp.env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("creating user %s: %w", user, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return nil, err
	}
	return u.Config(), os.WriteFile(path, data, 0o600)
}

// WebhookServing returns where the registered webhook configurations send reviews and the
// directory of the serving certificate (tls.crt, tls.key) that their CA bundle trusts.
func (cp *ControlPlane) WebhookServing() (host string, port int, certDir string) {
	o := &cp.env.WebhookInstallOptions
	return o.LocalServingHost, o.LocalServingPort, o.LocalServingCertDir
}

// Stop stops kube-apiserver and etcd.
func (cp *ControlPlane) Stop() error { return cp.env.Stop() }

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
		Developers: []string{"alice", "bob"}, DeveloperNamespaces: []string{"team-a-dev", "team-a-prod"},
	}
}

// Start brings the environment up: control plane, webhook, registration, example namespaces.
// On error everything started so far is stopped again.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	if _, err := os.Stat(filepath.Join(o.RepoRoot, "bin", "iss-webhook")); err != nil {
		return nil, fmt.Errorf("iss-webhook is missing from %s/bin: run `make build` first", o.RepoRoot)
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return nil, err
	}
	if o.OpenBao != nil {
		if err := o.OpenBao.Validate(); err != nil {
			return nil, fmt.Errorf("the OpenBao settings: %w", err)
		}
		o.WebhookArgs = append(slices.Clone(o.WebhookArgs), o.OpenBao.WebhookArgs()...)
	}
	e := &Env{opts: o, Kubeconfig: filepath.Join(o.StateDir, "kubeconfig"), WebhookLog: filepath.Join(o.StateDir, "webhook.log"),
		webhookKubeconfig: filepath.Join(o.StateDir, "webhook.kubeconfig"), WebhookUser: "system:serviceaccount:iss-system:iss-webhook"}
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
	shared, err := SharedCRDs(o.RepoRoot)
	if err != nil {
		return nil, err
	}
	if e.ProvisioningCRDs = len(shared) > 0; !e.ProvisioningCRDs {
		e.progress("WARNING: no shared/crds folder beside the checkout: the Pulumi and tofu-controller CRDs are not installed")
	}
	crds = append(append(crds, OwnCRDs(o.RepoRoot)...), shared...)
	e.progress("starting etcd and kube-apiserver, installing %d CRDs", len(crds))
	if e.cp, err = StartControlPlane(o.RepoRoot, crds, []string{filepath.Join(o.RepoRoot, "manifests", "webhook", "webhooks.yaml")}); err != nil {
		return nil, err
	}
	if e.Config, err = e.cp.WriteKubeconfig(e.Kubeconfig, "iss-admin", "system:masters"); err != nil {
		return nil, err
	}
	e.progress("kube-apiserver is serving at %s; admin kubeconfig written to %s", e.Config.Host, e.Kubeconfig)

	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "iss-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace iss-system: %w", err)
	}
	// The webhook runs as its service account would in a cluster, with the RBAC of manifests/rbac:
	// the control plane has no token controller, so the identity is a client certificate.
	if _, stderr, err := Kubectl(ctx, e.Kubeconfig, nil, "apply", "-f", filepath.Join(o.RepoRoot, "manifests", "rbac", "rbac.yaml")); err != nil {
		return nil, fmt.Errorf("applying manifests/rbac: %v: %s", err, stderr)
	}
	if _, err := e.cp.WriteKubeconfig(e.webhookKubeconfig, e.WebhookUser, "system:serviceaccounts", "system:serviceaccounts:iss-system"); err != nil {
		return nil, err
	}
	if o.RecordReviews != "" {
		// The recorder takes the registered address, for the whole life of the environment;
		// the webhook moves behind it, to a port that each start picks.
		host, port, certDir := e.cp.WebhookServing()
		if e.recorder, err = StartRecorder(net.JoinHostPort(host, strconv.Itoa(port)), certDir, o.RecordReviews); err != nil {
			return nil, fmt.Errorf("starting the review recorder: %w", err)
		}
		e.progress("recording the reviews sent to %s:%d in %s", host, port, o.RecordReviews)
	}
	if err := e.startWebhook(ctx); err != nil {
		return nil, err
	}
	// With the webhook up: the namespaces' ISS labels go through it, as the platform's would.
	if err := e.createNamespaces(ctx, cs); err != nil {
		return nil, err
	}
	if o.OpenBao != nil {
		if err := e.applyOpenBaoPolicy(ctx); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// applyOpenBaoPolicy applies the ISSPolicy that turns the existence check on against the
// options' OpenBao.
func (e *Env) applyOpenBaoPolicy(ctx context.Context) error {
	manifest, err := e.opts.OpenBao.PolicyManifest()
	if err != nil {
		return err
	}
	if _, stderr, err := Kubectl(ctx, e.Kubeconfig, bytes.NewReader(manifest), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("applying the ISSPolicy for OpenBao: %v: %s", err, stderr)
	}
	o := e.opts.OpenBao
	e.progress("the existence check reads OpenBao at %s (auth method %s; ISSPolicy default, spec.openbao)", o.Address, o.AuthMethod)
	return nil
}

// TrustServingCA puts the CA of the serving certificate that the control plane issued back into
// every webhook of the iss-webhook configurations, after a test let the webhook inject a CA of
// its own (the self-signed mode).
func (e *Env) TrustServingCA(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	ca := e.cp.env.WebhookInstallOptions.LocalServingCAData
	mutating, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "iss-webhook", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i := range mutating.Webhooks {
		mutating.Webhooks[i].ClientConfig.CABundle = ca
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mutating, metav1.UpdateOptions{}); err != nil {
		return err
	}
	validating, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "iss-webhook", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i := range validating.Webhooks {
		validating.Webhooks[i].ClientConfig.CABundle = ca
	}
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, validating, metav1.UpdateOptions{})
	return err
}

// RestartWebhook stops the webhook and starts it again with extra flags after those of the
// options, as a rollout with new settings would.
func (e *Env) RestartWebhook(ctx context.Context, extraArgs ...string) error {
	if err := e.stopWebhook(); err != nil {
		return err
	}
	return e.startWebhook(ctx, extraArgs...)
}

// startWebhook runs bin/iss-webhook against the control plane with the serving certificate that
// envtest issued for the registered webhook configurations, and waits until it is ready.
func (e *Env) startWebhook(ctx context.Context, extraArgs ...string) error {
	host, port, certDir := e.cp.WebhookServing()
	if e.recorder != nil {
		// The recorder serves the registered address and forwards to this one.
		backendPort, err := FreePort()
		if err != nil {
			return err
		}
		host, port = "127.0.0.1", backendPort
		e.recorder.SetBackend(net.JoinHostPort(host, strconv.Itoa(port)))
	}
	healthPort, err := FreePort()
	if err != nil {
		return err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return err
	}
	e.MetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	logFile, err := os.OpenFile(e.WebhookLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig", e.webhookKubeconfig,
		"--webhook-host", host,
		"--webhook-port", strconv.Itoa(port),
		"--cert-dir", certDir,
		"--metrics-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)),
		"--health-probe-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(healthPort)),
		"--log-level", "debug",
		// Nothing load-balances in front of it here: stop at once.
		"--shutdown-delay", "0s",
	}
	args = append(append(args, e.opts.WebhookArgs...), extraArgs...)
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
	e.progress("iss-webhook serving TLS on %s:%d as %s (log: %s)", host, port, e.WebhookUser, e.WebhookLog)

	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	deadline := time.Now().Add(webhookReadyTimeout)
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
	return fmt.Errorf("iss-webhook was not ready (%s answering 200) within %s; its log:\n%s", readyz, webhookReadyTimeout, tail(e.WebhookLog, 20))
}

func (e *Env) createNamespaces(ctx context.Context, cs kubernetes.Interface) error {
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
	if len(e.opts.Developers) == 0 {
		return nil
	}
	// An ordinary developer's rights are the edit ClusterRole, which a cluster's controller
	// manager aggregates from the bootstrap roles and from the roles that add-ons label for it,
	// as the External Secrets chart does for its kinds. This control plane has no controller
	// manager, so the developer is bound to the roles the aggregation would combine.
	esEdit := externalSecretsEditRole()
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, esEdit, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ClusterRole %s: %w", esEdit.Name, err)
	}
	for _, ns := range e.opts.DeveloperNamespaces {
		for _, role := range []string{"system:aggregate-to-edit", "system:aggregate-to-view", esEdit.Name} {
			rb := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "developer-" + strings.TrimPrefix(role, "system:"), Namespace: ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   developerSubjects(e.opts.Developers),
			}
			if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("binding %s to %s in %s: %w", strings.Join(e.opts.Developers, ", "), role, ns, err)
			}
		}
	}
	e.progress("users %s may edit in %s (kubectl --as=%s)", strings.Join(e.opts.Developers, ", "), strings.Join(e.opts.DeveloperNamespaces, ", "), e.opts.Developers[0])
	return nil
}

// Stop stops the webhook (SIGTERM, so that in-flight reviews finish) and the control plane, and
// removes the kubeconfigs, which would point at a server that is gone.
func (e *Env) Stop() error {
	errs := []error{e.stopWebhook()}
	if e.recorder != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.recorder.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the review recorder: %w", err))
		}
	}
	if e.cp != nil {
		if err := e.cp.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the control plane: %w", err))
		}
	}
	for _, f := range []string{e.Kubeconfig, e.webhookKubeconfig} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Env) stopWebhook() error {
	if e.webhook == nil || e.webhook.Process == nil {
		return nil
	}
	defer func() { e.webhook = nil }()
	_ = e.webhook.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		return nil
	case <-time.After(40 * time.Second):
		_ = e.webhook.Process.Kill()
		return errors.New("iss-webhook did not stop within 40s of SIGTERM; killed")
	}
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

func developerSubjects(users []string) []rbacv1.Subject {
	subjects := make([]rbacv1.Subject, len(users))
	for i, u := range users {
		subjects[i] = rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: u}
	}
	return subjects
}
