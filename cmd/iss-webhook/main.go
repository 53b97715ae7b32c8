// Command iss-webhook is the admission webhook that enforces the Infrastructure & Secrets
// Standard (ISS-001) on a Kubernetes cluster. It serves the mutating and validating webhooks over
// TLS, reloading its serving certificate when the files change, and exposes health probes and
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
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/iss-platform/iss-webhook/policy"
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

	restConfig, err := loadRESTConfig(opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("cannot load the Kubernetes client configuration: %w", err)
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: webhook.NewScheme(),
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host:    opts.WebhookHost,
			Port:    opts.WebhookPort,
			CertDir: opts.CertDir,
			TLSOpts: opts.tlsOptions(),
		}),
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddress},
		HealthProbeBindAddress:  opts.HealthAddress,
		GracefulShutdownTimeout: &opts.ShutdownTimeout,
	})
	if err != nil {
		return fmt.Errorf("cannot create the controller manager: %w", err)
	}
	// GetWebhookServer also adds the server to the manager's runnables.
	webhookServer := mgr.GetWebhookServer()
	policies := policy.NewHolder(policy.Default())
	metrics, err := webhook.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	webhook.Register(webhookServer, mgr.GetScheme(), webhook.Options{Policies: policies, Metrics: metrics})

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready only once the TLS listener serves, so that no review is sent to a replica that
	// would refuse the connection.
	if err := mgr.AddReadyzCheck("webhook", webhookServer.StartedChecker()); err != nil {
		return err
	}

	// On SIGTERM, report not ready at once but keep serving for --shutdown-delay, so that the
	// Service stops sending reviews here before the listener closes; a review refused during a
	// rollout would deny an engine pod under failurePolicy Fail. Then stop, letting in-flight
	// reviews finish.
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	var draining atomic.Bool
	if err := mgr.AddReadyzCheck("not-draining", func(*http.Request) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return nil
	}); err != nil {
		return err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-serveCtx.Done():
			return
		}
		draining.Store(true)
		log.Info("shutting down: not ready any more, still serving", "delay", opts.ShutdownDelay)
		select {
		case <-time.After(opts.ShutdownDelay):
		case <-serveCtx.Done():
		}
		stopServing()
	}()

	log.Info("starting iss-webhook", "webhookPort", opts.WebhookPort, "certDir", opts.CertDir,
		"metrics", opts.MetricsAddress, "health", opts.HealthAddress)
	if err := mgr.Start(serveCtx); err != nil {
		return fmt.Errorf("manager stopped: %w", err)
	}
	log.Info("iss-webhook stopped")
	return nil
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

// loadRESTConfig reads the kubeconfig named by the flag, else the in-cluster configuration or
// $KUBECONFIG, as controller-runtime resolves them.
func loadRESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return config.GetConfig()
}
