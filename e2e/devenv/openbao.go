package devenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// OpenBao points the local webhook's existence check at an OpenBao of the user's own: the
// ISSPolicy's openbao section, and the Deployment's flags that carry the credentials.
type OpenBao struct {
	// Address is OpenBao's URL, such as https://127.0.0.1:8200.
	Address string
	// AuthMethod is policy.AuthToken (TokenFile) or policy.AuthKubernetes
	// (ServiceAccountTokenFile, KubernetesMount, Role).
	AuthMethod string
	// TokenFile holds the token of the token method.
	TokenFile string
	// ServiceAccountTokenFile holds the service account JWT of the Kubernetes method: a token
	// of the cluster whose API the method's TokenReview asks, with the role's audience.
	ServiceAccountTokenFile string
	// KubernetesMount and Role are the Kubernetes method's mount and role; empty means the
	// policy's defaults (kubernetes, iss-webhook).
	KubernetesMount, Role string
	// CACertFile, when set, verifies OpenBao's serving certificate instead of the system's roots.
	CACertFile string
	// KVMount, when set, is the KV v2 mount of every environment, instead of kv-dev, kv-staging
	// and kv-prod (a dev server has one, secret).
	KVMount string
}

// Validate says what is missing or wrong, with the make variable that sets it.
func (o *OpenBao) Validate() error {
	var errs []error
	if o.Address == "" {
		errs = append(errs, errors.New("the OpenBao address is missing: set OPENBAO_ADDR"))
	}
	fileExists := func(path, variable string) {
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", variable, err))
		}
	}
	switch o.AuthMethod {
	case policy.AuthToken:
		if o.TokenFile == "" {
			errs = append(errs, errors.New("the token method needs the file of the webhook's token: set OPENBAO_TOKEN_FILE"))
		} else {
			fileExists(o.TokenFile, "OPENBAO_TOKEN_FILE")
		}
	case policy.AuthKubernetes:
		if o.ServiceAccountTokenFile == "" {
			errs = append(errs, errors.New("the kubernetes method needs a service account token that OpenBao's TokenReview accepts: set OPENBAO_JWT_FILE"))
		} else {
			fileExists(o.ServiceAccountTokenFile, "OPENBAO_JWT_FILE")
		}
	default:
		errs = append(errs, fmt.Errorf("OPENBAO_AUTH %q: use %s or %s", o.AuthMethod, policy.AuthToken, policy.AuthKubernetes))
	}
	if o.CACertFile != "" {
		fileExists(o.CACertFile, "OPENBAO_CACERT")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, errList := policy.FromISSPolicy(&o.policy().Spec)
	if err := errList.ToAggregate(); err != nil {
		return fmt.Errorf("the ISSPolicy for this OpenBao is invalid: %w", err)
	}
	return nil
}

// WebhookArgs are the flags that give the webhook the credentials and the CA, as absolute
// paths: the webhook runs in another directory.
func (o *OpenBao) WebhookArgs() []string {
	var args []string
	add := func(flag, path string) {
		if path != "" {
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			args = append(args, flag, path)
		}
	}
	add("--openbao-token-file", o.TokenFile)
	add("--openbao-service-account-token-file", o.ServiceAccountTokenFile)
	add("--openbao-ca-file", o.CACertFile)
	return args
}

// PolicyManifest is the ISSPolicy "default": the built-in default with the existence check on,
// pointed at this OpenBao.
func (o *OpenBao) PolicyManifest() ([]byte, error) {
	return json.Marshal(o.policy())
}

func (o *OpenBao) policy() *v1alpha1.ISSPolicy {
	p := policy.Default()
	p.OpenBao.Verify, p.OpenBao.Address, p.OpenBao.AuthMethod = true, o.Address, o.AuthMethod
	if o.KubernetesMount != "" {
		p.OpenBao.KubernetesMount = o.KubernetesMount
	}
	if o.Role != "" {
		p.OpenBao.KubernetesRole = o.Role
	}
	if o.KVMount != "" {
		for name, env := range p.Secrets.Environments {
			env.Mount = o.KVMount
			p.Secrets.Environments[name] = env
		}
	}
	return policy.ToISSPolicy(p)
}
