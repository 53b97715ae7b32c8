package devenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// TestOpenBaoOptions: what `make run OPENBAO_ADDR=...` turns into: the webhook's flags with
// absolute paths, an ISSPolicy with the check on that the webhook accepts, and a message naming
// the make variable of each setting that is missing.
func TestOpenBaoOptions(t *testing.T) {
	dir := t.TempDir()
	token, jwt, ca := filepath.Join(dir, "token"), filepath.Join(dir, "jwt"), filepath.Join(dir, "ca.crt")
	for _, f := range []string{token, jwt, ca} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("the token method", func(t *testing.T) {
		o := &OpenBao{Address: "https://127.0.0.1:8200", AuthMethod: policy.AuthToken, TokenFile: token, CACertFile: ca, KVMount: "secret"}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if got, want := o.WebhookArgs(), []string{"--openbao-token-file", token, "--openbao-ca-file", ca}; !slices.Equal(got, want) {
			t.Errorf("flags %q, want %q", got, want)
		}
		raw, err := o.PolicyManifest()
		if err != nil {
			t.Fatal(err)
		}
		obj := &v1alpha1.ISSPolicy{}
		if err := json.Unmarshal(raw, obj); err != nil {
			t.Fatal(err)
		}
		p, errs := policy.FromISSPolicy(&obj.Spec)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if obj.Name != "default" || !p.OpenBao.Verify || p.OpenBao.Address != o.Address || p.OpenBao.AuthMethod != policy.AuthToken {
			t.Errorf("policy %s: %+v", obj.Name, p.OpenBao)
		}
		for name, env := range p.Secrets.Environments {
			if env.Mount != "secret" {
				t.Errorf("environment %s reads mount %s, want secret", name, env.Mount)
			}
		}
	})
	t.Run("the Kubernetes method", func(t *testing.T) {
		o := &OpenBao{Address: "http://127.0.0.1:8200", AuthMethod: policy.AuthKubernetes, ServiceAccountTokenFile: jwt, KubernetesMount: "k8s-dev", Role: "webhook"}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if got, want := o.WebhookArgs(), []string{"--openbao-service-account-token-file", jwt}; !slices.Equal(got, want) {
			t.Errorf("flags %q, want %q", got, want)
		}
		p := o.policy()
		if a := p.Spec.OpenBao.Auth; a.Method != policy.AuthKubernetes || a.KubernetesMount != "k8s-dev" || a.Role != "webhook" {
			t.Errorf("auth %+v", a)
		}
		if p.Spec.Secrets.Environments[0].Mount != "kv-dev" {
			t.Errorf("the environments' mounts changed: %+v", p.Spec.Secrets.Environments)
		}
	})
	for _, tc := range []struct {
		name string
		o    OpenBao
		want []string
	}{
		{"nothing set", OpenBao{AuthMethod: policy.AuthToken}, []string{"set OPENBAO_ADDR", "set OPENBAO_TOKEN_FILE"}},
		{"a Kubernetes method without a JWT", OpenBao{Address: "https://x", AuthMethod: policy.AuthKubernetes}, []string{"set OPENBAO_JWT_FILE"}},
		{"an unknown method", OpenBao{Address: "https://x", AuthMethod: "ldap"}, []string{`OPENBAO_AUTH "ldap"`}},
		{"files that are not there", OpenBao{Address: "https://x", AuthMethod: policy.AuthToken, TokenFile: filepath.Join(dir, "nope"), CACertFile: filepath.Join(dir, "nope.crt")}, []string{"OPENBAO_TOKEN_FILE:", "OPENBAO_CACERT:"}},
		{"an address that is not a URL", OpenBao{Address: "openbao:8200", AuthMethod: policy.AuthToken, TokenFile: token}, []string{"spec.openbao.address", "must be an http or https URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v\ndoes not say %q", err, want)
				}
			}
		})
	}
}
