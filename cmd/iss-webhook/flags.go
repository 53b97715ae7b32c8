package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/iss-platform/iss-webhook/internal/openbao"
	"github.com/iss-platform/iss-webhook/internal/selfsigned"
)

// options are the command-line settings of iss-webhook.
type options struct {
	Kubeconfig      string
	WebhookHost     string
	WebhookPort     int
	CertDir         string
	MetricsAddress  string
	HealthAddress   string
	ShutdownTimeout time.Duration
	ShutdownDelay   time.Duration
	LogLevel        string
	EnableHTTP2     bool

	// CertMode is certModeCertManager (tls.crt and tls.key in CertDir, written by someone else,
	// cert-manager in the install manifests) or certModeSelfSigned.
	CertMode   string
	SelfSigned selfsigned.Options
	// WebhookConfiguration names the webhook configurations the webhook keeps in step.
	WebhookConfiguration string
	// OpenBao are the files the OpenBao existence check logs in and verifies OpenBao's
	// certificate with; the rest of its settings are the policy's.
	OpenBao openbao.Credentials

	LeaderElect             bool
	LeaderElectionNamespace string

	// BuildRecordNamespace is where the records of Temporal builds' code are kept: the
	// webhook's own namespace, which namespace editors have no RBAC for.
	BuildRecordNamespace string
}

// The values of --cert-mode.
const (
	certModeCertManager = "cert-manager"
	certModeSelfSigned  = "self-signed"
)

// parseFlags reads the command line into options. It uses a flag set of its own rather than the
// process-wide one, so that no library can add flags behind the user's back.
func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("iss-webhook", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, `Usage: iss-webhook [flags]

Serves the ISS-001 admission webhooks over TLS. The serving certificate and key are read from
--cert-dir (tls.crt, tls.key) and reloaded without restart when they change on disk. The policy
is the cluster's ISSPolicy "default" (the built-in default without one), reloaded without
restart when it changes.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path of a kubeconfig; empty means $KUBECONFIG, else the in-cluster configuration, else ~/.kube/config")
	fs.StringVar(&o.WebhookHost, "webhook-host", "", "address the webhook server listens on; empty means all addresses")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "port of the webhook server (TLS)")
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory holding the serving certificate tls.crt and key tls.key")
	fs.StringVar(&o.MetricsAddress, "metrics-bind-address", ":8080", `address of the Prometheus metrics endpoint /metrics; "0" turns it off`)
	fs.StringVar(&o.HealthAddress, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 5*time.Second, "after SIGTERM, how long to keep serving while /readyz reports not ready, every answer asking the client to close its connection, so that the Service and kube-apiserver's connections move to other replicas first")
	fs.DurationVar(&o.ShutdownTimeout, "graceful-shutdown-timeout", 30*time.Second, "after the shutdown delay, how long to let in-flight reviews finish")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug (also logs each mutation), info or error")
	fs.StringVar(&o.CertMode, "cert-mode", certModeCertManager, "where the serving certificate comes from: cert-manager (files in --cert-dir, written by cert-manager or anyone else) or self-signed (the webhook keeps its own CA and certificate in --self-signed-secret and injects the CA into its webhook configurations)")
	secret := fs.String("self-signed-secret", "iss-system/iss-webhook-tls", "with --cert-mode self-signed: namespace/name of the Secret that holds the CA and the serving certificate")
	hosts := fs.String("self-signed-hosts", "iss-webhook.iss-system.svc,iss-webhook.iss-system.svc.cluster.local", "with --cert-mode self-signed: comma-separated DNS names and IP addresses of the serving certificate")
	fs.DurationVar(&o.SelfSigned.CAValidity, "self-signed-ca-validity", 365*24*time.Hour, "with --cert-mode self-signed: the CA's lifetime; a new CA is made when a third is left, and the old one stays trusted until it expires or is no longer needed")
	fs.DurationVar(&o.SelfSigned.CertValidity, "self-signed-cert-validity", 90*24*time.Hour, "with --cert-mode self-signed: the serving certificate's lifetime, at most a third of the CA's; it is reissued when a third is left")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", "iss-webhook", "name of the Mutating- and ValidatingWebhookConfiguration whose engine image tests follow the policy, and which get the CA bundle with --cert-mode self-signed")
	fs.StringVar(&o.OpenBao.ServiceAccountTokenFile, "openbao-service-account-token-file", "/var/run/secrets/openbao/token", "the JWT the OpenBao Kubernetes auth method logs in with (the policy's openbao.auth.method kubernetes): a service account token bound to the audience openbao, as the install mounts it")
	fs.StringVar(&o.OpenBao.TokenFile, "openbao-token-file", "", "the file holding the OpenBao token of the policy's openbao.auth.method token")
	fs.StringVar(&o.OpenBao.CACertFile, "openbao-ca-file", "", "PEM certificates that OpenBao's serving certificate is verified with; empty means the system's roots")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "elect one replica to run the egress policy and build record collectors")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "iss-system", "namespace of the leader election Lease")
	fs.StringVar(&o.BuildRecordNamespace, "build-record-namespace", "iss-system", "namespace of the records of Temporal builds' code (ConfigMaps): the webhook's own, whose records only the build-records webhook of the install's configurations guards")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "serve HTTP/2 as well as HTTP/1.1; off by default to stay clear of HTTP/2 stream-reset attacks")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q; see --help", fs.Args())
	}
	if o.WebhookPort <= 0 || o.WebhookPort > 65535 {
		return nil, fmt.Errorf("--webhook-port %d is not a TCP port", o.WebhookPort)
	}
	switch o.CertMode {
	case certModeCertManager:
	case certModeSelfSigned:
		ns, name, ok := strings.Cut(*secret, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("--self-signed-secret %q is not namespace/name", *secret)
		}
		o.SelfSigned.Secret = types.NamespacedName{Namespace: ns, Name: name}
		for _, h := range strings.Split(*hosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				o.SelfSigned.Hosts = append(o.SelfSigned.Hosts, h)
			}
		}
		o.SelfSigned.CertDir = o.CertDir
		o.SelfSigned.WebhookConfiguration = o.WebhookConfiguration
		if err := o.SelfSigned.Config.Validate(); err != nil {
			return nil, fmt.Errorf("--cert-mode self-signed: %w", err)
		}
	default:
		return nil, fmt.Errorf("--cert-mode %q is not cert-manager or self-signed", o.CertMode)
	}
	return o, nil
}

// tlsOptions returns the TLS settings of the webhook server.
func (o *options) tlsOptions() []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if !o.EnableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
}
