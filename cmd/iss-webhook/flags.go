package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/iss-platform/iss-webhook/policy"
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

	OpenBao policy.OpenBaoPolicy

	FQDNBackend             string
	GCGracePeriod           time.Duration
	LeaderElect             bool
	LeaderElectionNamespace string
}

// parseFlags reads the command line into options. It uses a flag set of its own rather than the
// process-wide one, so that no library can add flags behind the user's back.
func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("iss-webhook", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, `Usage: iss-webhook [flags]

Serves the ISS-001 admission webhooks over TLS. The serving certificate and key are read from
--cert-dir (tls.crt, tls.key) and reloaded without restart when they change on disk.

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
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 5*time.Second, "after SIGTERM, how long to keep serving while /readyz reports not ready, so that the Service stops sending reviews first")
	fs.DurationVar(&o.ShutdownTimeout, "graceful-shutdown-timeout", 30*time.Second, "after the shutdown delay, how long to let in-flight reviews finish")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug (also logs each mutation), info or error")
	o.OpenBao = policy.DefaultOpenBaoPolicy()
	fs.BoolVar(&o.OpenBao.Verify, "openbao-verify", false, "check that every OpenBao path an ExternalSecret reads exists (KV v2 metadata)")
	fs.StringVar(&o.OpenBao.Address, "openbao-address", "", "OpenBao URL, such as https://openbao.openbao.svc:8200 (needed with --openbao-verify)")
	fs.StringVar(&o.OpenBao.AuthMethod, "openbao-auth-method", o.OpenBao.AuthMethod, "how to log in to OpenBao: kubernetes (service account token) or token (--openbao-token-file)")
	fs.StringVar(&o.OpenBao.KubernetesRole, "openbao-role", o.OpenBao.KubernetesRole, "role of the Kubernetes auth method")
	fs.StringVar(&o.OpenBao.KubernetesMount, "openbao-kubernetes-mount", o.OpenBao.KubernetesMount, "mount of the Kubernetes auth method")
	fs.StringVar(&o.OpenBao.ServiceAccountTokenFile, "openbao-service-account-token-file", o.OpenBao.ServiceAccountTokenFile, "JWT the Kubernetes auth method logs in with")
	fs.StringVar(&o.OpenBao.TokenFile, "openbao-token-file", "", "file holding the OpenBao token of the token auth method")
	fs.DurationVar(&o.OpenBao.Timeout, "openbao-timeout", o.OpenBao.Timeout, "how long the check of one ExternalSecret may take, all its paths together")
	fs.DurationVar(&o.OpenBao.HitTTL, "openbao-hit-ttl", o.OpenBao.HitTTL, "how long a path found in OpenBao is remembered")
	fs.DurationVar(&o.OpenBao.MissTTL, "openbao-miss-ttl", o.OpenBao.MissTTL, "how long a path missing from OpenBao is remembered")
	onUnavailable := fs.String("openbao-on-unavailable", string(o.OpenBao.OnUnavailable), "when OpenBao does not answer: Deny, or Warn (admit with a warning)")
	fs.StringVar(&o.FQDNBackend, "fqdn-backend", "", `FQDN policy backend: auto, cilium, clusternetworkpolicy or none; empty means the policy's ("auto")`)
	fs.DurationVar(&o.GCGracePeriod, "gc-grace-period", 0, "how long a generated egress policy may select no pod before it is deleted; 0 means the policy's (5m)")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "elect one replica to run the egress policy collector")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "iss-system", "namespace of the leader election Lease")
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
	switch policy.FQDNBackend(o.FQDNBackend) {
	case "", policy.BackendAuto, policy.BackendCilium, policy.BackendClusterNetworkPolicy, policy.BackendNone:
	default:
		return nil, fmt.Errorf("--fqdn-backend %q is not one of auto, cilium, clusternetworkpolicy, none", o.FQDNBackend)
	}
	o.OpenBao.OnUnavailable = policy.OnUnavailable(*onUnavailable)
	if o.OpenBao.OnUnavailable != policy.UnavailableDeny && o.OpenBao.OnUnavailable != policy.UnavailableWarn {
		return nil, fmt.Errorf("--openbao-on-unavailable %q is not Deny or Warn", *onUnavailable)
	}
	if o.OpenBao.Timeout <= 0 || o.OpenBao.Timeout > 4*time.Second {
		return nil, fmt.Errorf("--openbao-timeout %s must be above 0 and at most 4s, within the API server's 5s webhook timeout", o.OpenBao.Timeout)
	}
	if o.OpenBao.HitTTL < 0 || o.OpenBao.MissTTL < 0 {
		return nil, errors.New("--openbao-hit-ttl and --openbao-miss-ttl must not be negative")
	}
	if o.OpenBao.Verify && o.OpenBao.Address == "" {
		return nil, errors.New("--openbao-verify needs --openbao-address")
	}
	if o.OpenBao.Verify && o.OpenBao.AuthMethod == policy.AuthToken && o.OpenBao.TokenFile == "" {
		return nil, errors.New("--openbao-auth-method token needs --openbao-token-file")
	}
	if o.GCGracePeriod < 0 {
		return nil, fmt.Errorf("--gc-grace-period %s is negative", o.GCGracePeriod)
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

// policy returns the built-in policy with the overrides of the command line.
func (o *options) policy() *policy.Policy {
	p := policy.Default()
	p.OpenBao = o.OpenBao
	if o.FQDNBackend != "" {
		p.Network.FQDNBackend = policy.FQDNBackend(o.FQDNBackend)
	}
	if o.GCGracePeriod > 0 {
		p.Network.GCGracePeriod = o.GCGracePeriod
	}
	return p
}
