// Command iss-webhook is the admission webhook that enforces the Infrastructure & Secrets
// Standard (ISS-001) on a Kubernetes cluster. It serves the mutating and validating webhooks over
// TLS, reloading its serving certificate when the files change, writes and collects the engines'
// egress policies and the records of Temporal builds' code, and exposes health probes and
// Prometheus metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/iss-platform/iss-webhook/internal/buildrecord"
	"github.com/iss-platform/iss-webhook/internal/configsync"
	"github.com/iss-platform/iss-webhook/internal/egress"
	"github.com/iss-platform/iss-webhook/internal/openbao"
	"github.com/iss-platform/iss-webhook/internal/reload"
	"github.com/iss-platform/iss-webhook/internal/selfsigned"
	"github.com/iss-platform/iss-webhook/internal/usersecrets"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
	"github.com/iss-platform/iss-webhook/webhook"
)

func main() {
	if err := run(ctrl.SetupSignalHandler(), os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "iss-webhook:", err)
		os.Exit(1)
	}
}

// run serves until ctx is cancelled (SIGTERM or SIGINT in main), then lets in-flight reviews
// finish and returns.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(opts.LogLevel)
	if err != nil {
		return err
	}
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	log := logger.WithName("setup")

	c, err := inspectCluster(ctx, opts)
	if err != nil {
		return err
	}
	if opts.CertMode == certModeSelfSigned {
		// The server cannot start without a certificate: get one before it starts.
		if err := bootstrapSelfSigned(ctx, c.restConfig, opts.SelfSigned); err != nil {
			return err
		}
	}
	mgr, err := newManager(c, opts)
	if err != nil {
		return err
	}
	// The built-in default until the ISSPolicy is loaded; the webhook is not ready before.
	policies := policy.NewHolder(policy.Default())
	loader, err := reload.New(mgr.GetClient(), policies, ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	if err := loader.SetupWithManager(mgr); err != nil {
		return err
	}
	writer := egress.NewWriter(mgr.GetClient(), mgr.GetCache(), c.served)
	records := newBuildRecords(mgr, opts)
	// A deleted ExternalSecret's Secret stays private for as long as the garbage collector
	// could take to delete it after its owner.
	privates, err := usersecrets.New(c.restConfig, webhook.ExcludedNamespaces(), time.Minute, 2*time.Minute)
	if err != nil {
		return err
	}
	if err := mgr.Add(privates); err != nil {
		return err
	}
	shutdown := &drain{}
	if err := registerWebhooks(mgr, shutdown, c, policies, writer, records, privates, opts); err != nil {
		return err
	}
	if err := addControllers(mgr, policies, writer, records, opts); err != nil {
		return err
	}
	if err := startInformers(ctx, mgr, c.served); err != nil {
		return err
	}
	if err := addProbes(mgr, loader, privates); err != nil {
		return err
	}
	log.Info("starting iss-webhook", "webhookPort", opts.WebhookPort, "certDir", opts.CertDir,
		"metrics", opts.MetricsAddress, "health", opts.HealthAddress, "identity", c.self,
		"ciliumNetworkPolicies", c.served.Cilium, "clusterNetworkPolicies", c.served.ClusterNetworkPolicy)
	if err := serve(ctx, mgr, shutdown, opts); err != nil {
		return err
	}
	log.Info("iss-webhook stopped")
	return nil
}

// cluster is what the webhook learns of the cluster once, at start-up, never during a review.
type cluster struct {
	restConfig *rest.Config
	// self is the user name the webhook authenticates as.
	self string
	// served are the FQDN policy kinds the cluster serves.
	served egress.Served
}

// inspectCluster loads the client configuration and asks the API server who the webhook is,
// whether it serves the ISSPolicy CRD and which FQDN policy kinds it serves.
func inspectCluster(ctx context.Context, opts *options) (*cluster, error) {
	restConfig, err := loadRESTConfig(opts.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("cannot load the Kubernetes client configuration: %w", err)
	}
	self, err := whoAmI(ctx, restConfig)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	if err := requireISSPolicyCRD(dc); err != nil {
		return nil, err
	}
	served, err := egress.DiscoverServed(dc)
	if err != nil {
		return nil, err
	}
	return &cluster{restConfig: restConfig, self: self, served: served}, nil
}

// newManager returns the controller manager: the TLS webhook server, the informer caches, the
// metrics and probe endpoints, and leader election.
func newManager(c *cluster, opts *options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(c.restConfig, ctrl.Options{
		Scheme: webhook.NewScheme(),
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host:    opts.WebhookHost,
			Port:    opts.WebhookPort,
			CertDir: opts.CertDir,
			TLSOpts: opts.tlsOptions(),
		}),
		Cache:                   cacheOptions(c.served, opts),
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddress},
		HealthProbeBindAddress:  opts.HealthAddress,
		GracefulShutdownTimeout: &opts.ShutdownTimeout,
		LeaderElection:          opts.LeaderElect,
		LeaderElectionID:        "iss-webhook",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// run returns once the manager has stopped, so the lease can go at once: the next
		// replica takes over without waiting for it to expire.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the controller manager: %w", err)
	}
	return mgr, nil
}

// newBuildRecords returns the store of the records of Temporal builds' code: read from the
// informer cache during reviews, written through the API server before a Deployment is
// admitted.
func newBuildRecords(mgr ctrl.Manager, opts *options) *buildrecord.Store {
	return buildrecord.NewStore(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache(), opts.BuildRecordNamespace)
}

// registerWebhooks serves every webhook path; the reviews read only informer caches and the
// policy, never the API server.
func registerWebhooks(mgr ctrl.Manager, shutdown *drain, c *cluster, policies policy.Provider, writer *egress.Writer, records *buildrecord.Store, privates *usersecrets.Index, opts *options) error {
	metrics, err := webhook.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	verifiers, err := openbao.NewPool(opts.OpenBao, ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	// GetWebhookServer also adds the server to the manager's runnables.
	webhook.Register(shutdown.server(mgr.GetWebhookServer()), mgr.GetScheme(), webhook.Options{Policies: policies, Metrics: metrics, Egress: writer, Self: c.self,
		Namespaces: webhook.NewCachedNamespaces(mgr.GetCache()), OpenBao: verifiers, Engines: webhook.NewCachedEngines(mgr.GetCache()),
		BuildRecords: records, Builds: records, PrivateSecrets: privates, Pods: privates})
	return nil
}

// addControllers adds what runs beside the reviews: the egress policy and build record
// collectors, the configurations' image tests, and in self-signed mode the certificates and
// their CA bundle.
func addControllers(mgr ctrl.Manager, policies policy.Provider, writer *egress.Writer, records *buildrecord.Store, opts *options) error {
	if err := mgr.Add(egress.NewCollector(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache(), writer, policies)); err != nil {
		return err
	}
	if err := mgr.Add(buildrecord.NewCollector(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache(), records.Namespace(), policies)); err != nil {
		return err
	}
	// Pods of the policy's engine images reach the webhook only if the configurations' image
	// tests name them: the leader keeps them in step with the policy.
	if err := mgr.Add(configsync.New(mgr.GetClient(), mgr.GetAPIReader(), policies, opts.WebhookConfiguration, 10*time.Second)); err != nil {
		return err
	}
	if opts.CertMode != certModeSelfSigned {
		return nil
	}
	if err := mgr.Add(selfsigned.NewKeeper(mgr.GetClient(), mgr.GetAPIReader(), opts.SelfSigned)); err != nil {
		return err
	}
	syncer, err := selfsigned.NewSyncer(mgr.GetClient(), opts.SelfSigned, ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	return mgr.Add(syncer)
}

// startInformers creates the informers now, so that the first review finds them synced rather
// than starting them; the readiness probe waits for them.
func startInformers(ctx context.Context, mgr ctrl.Manager, served egress.Served) error {
	for _, obj := range cachedObjects(served) {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("creating the informer for %T: %w", obj, err)
		}
	}
	return nil
}

// addProbes adds /healthz and the /readyz checks: the TLS listener serves, the ISSPolicy is
// loaded, the informers are synced, those of the index of user-private Secrets too.
func addProbes(mgr ctrl.Manager, loader *reload.Reconciler, privates *usersecrets.Index) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("policy", func(*http.Request) error {
		if !loader.Loaded() {
			return errors.New("the ISSPolicy is not loaded yet")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("user-secrets", func(*http.Request) error { return privates.Synced() }); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("informers", func(r *http.Request) error {
		syncCtx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(syncCtx) {
			return errors.New("informer caches are not synced yet")
		}
		return nil
	})
}

// serve runs the manager until ctx is cancelled. On SIGTERM it starts the drain (not ready,
// every answer closing its connection) but keeps serving for --shutdown-delay, so that the
// Service and the API server's connections leave this replica before the listener closes; a
// review refused during a rollout would deny an engine pod under failurePolicy Fail. Then it
// stops, letting in-flight reviews finish.
func serve(ctx context.Context, mgr ctrl.Manager, shutdown *drain, opts *options) error {
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	if err := mgr.AddReadyzCheck("not-draining", shutdown.readyz); err != nil {
		return err
	}
	log := mgr.GetLogger().WithName("shutdown")
	go func() {
		select {
		case <-ctx.Done():
		case <-serveCtx.Done():
			return
		}
		shutdown.start()
		log.Info("shutting down: not ready any more, still serving, asking clients to close their connections", "delay", opts.ShutdownDelay)
		select {
		case <-time.After(opts.ShutdownDelay):
		case <-serveCtx.Done():
		}
		stopServing()
	}()
	if err := mgr.Start(serveCtx); err != nil {
		return fmt.Errorf("manager stopped: %w", err)
	}
	return nil
}

// cachedObjects are the kinds the webhook keeps informers for: engine pods, namespaces' metadata
// (for their ISS labels), the ISSPolicy, the build records with the metadata of builds'
// Deployments and ReplicaSets, and the generated objects of every served kind.
func cachedObjects(served egress.Served) []client.Object {
	objs := []client.Object{&corev1.Pod{}, webhook.NamespaceMetadata(), &v1alpha1.ISSPolicy{}}
	objs = append(objs, buildrecord.CachedObjects()...)
	for _, gvk := range served.GVKs() {
		objs = append(objs, egress.NewObject(gvk))
	}
	return objs
}

// cacheOptions restrict the informers to what the webhook needs: pods that carry the egress
// label (engines), namespaces' metadata, the build records in their namespace, the metadata of
// Deployments and ReplicaSets that carry a build id, and objects that the webhook generated.
// Nothing else is held in memory.
func cacheOptions(served egress.Served, opts *options) cache.Options {
	byObject := buildrecord.CacheOptions(opts.BuildRecordNamespace)
	// CachedEngines counts the engines a generated policy selects in this cache.
	byObject[&corev1.Pod{}] = cache.ByObject{Label: webhook.EngineCacheSelector()}
	for _, gvk := range served.GVKs() {
		byObject[egress.NewObject(gvk)] = cache.ByObject{Label: labels.SelectorFromSet(labels.Set{policy.LabelManagedBy: policy.ManagedByValue})}
	}
	if opts.CertMode == certModeSelfSigned {
		// Only the self-signed certificates' Secret, never the cluster's other Secrets.
		byObject[&corev1.Secret{}] = cache.ByObject{Namespaces: map[string]cache.Config{opts.SelfSigned.Secret.Namespace: {
			FieldSelector: fields.OneTermEqualSelector("metadata.name", opts.SelfSigned.Secret.Name),
		}}}
	}
	return cache.Options{ByObject: byObject}
}

// bootstrapSelfSigned makes the self-signed certificates exist and writes the serving
// certificate into the cert directory, with a client of its own: the manager has not started.
func bootstrapSelfSigned(ctx context.Context, cfg *rest.Config, o selfsigned.Options) error {
	if err := os.MkdirAll(o.CertDir, 0o700); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: webhook.NewScheme()})
	if err != nil {
		return err
	}
	return selfsigned.Bootstrap(ctx, c, o)
}

// requireISSPolicyCRD fails with a clear message when the cluster does not serve the ISSPolicy
// CRD, which the webhook reads its policy from.
func requireISSPolicyCRD(dc discovery.DiscoveryInterface) error {
	served, err := egress.Serves(dc, v1alpha1.GroupVersion, "isspolicies")
	if err != nil || served {
		return err
	}
	return errors.New("the cluster does not serve the ISSPolicy CRD (isspolicies.iss.platform): install it first: kubectl apply -k manifests/crds")
}

// whoAmI returns the user name the webhook authenticates as, so that it recognises its own
// changes to the objects it generates.
func whoAmI(ctx context.Context, cfg *rest.Config) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("asking the API server who the webhook is (SelfSubjectReview): %w", err)
	}
	return review.Status.UserInfo.Username, nil
}

// newLogger returns a JSON logger at the given level: "info", "debug" (which also shows the
// outcome of every review) or "error".
func newLogger(level string) (logr.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return logr.Discard(), fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	z, err := cfg.Build()
	if err != nil {
		return logr.Discard(), err
	}
	return zapr.NewLogger(z), nil
}

// loadRESTConfig reads the kubeconfig named by the flag; without it, $KUBECONFIG, then the
// in-cluster configuration, then ~/.kube/config, as controller-runtime resolves them.
func loadRESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}
