package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"time"
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
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 5*time.Second, "after SIGTERM, how long to keep serving while /readyz reports not ready, so that the Service stops sending reviews first")
	fs.DurationVar(&o.ShutdownTimeout, "graceful-shutdown-timeout", 30*time.Second, "after the shutdown delay, how long to let in-flight reviews finish")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug (also logs each mutation), info or error")
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
