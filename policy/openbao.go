package policy

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// OnUnavailable says what the webhook does with an ExternalSecret whose paths it cannot verify
// because OpenBao did not answer.
type OnUnavailable string

// The OnUnavailable modes.
const (
	// UnavailableDeny denies the object: nothing unverified is admitted.
	UnavailableDeny OnUnavailable = "Deny"
	// UnavailableWarn admits the object with a warning that its paths were not verified.
	UnavailableWarn OnUnavailable = "Warn"
)

// OpenBao auth methods.
const (
	// AuthKubernetes logs in with the Kubernetes auth method and the pod's service account token.
	AuthKubernetes = "kubernetes"
	// AuthToken uses a token read from a file.
	AuthToken = "token"
)

// OpenBaoPolicy is the optional existence check of ExternalSecret paths in OpenBao (design.md
// 4.4): the path grammar proves a path is allowed, this proves it is there.
type OpenBaoPolicy struct {
	// Verify turns the check on. It is off by default.
	Verify bool
	// Address is OpenBao's URL, such as https://openbao.openbao.svc:8200.
	Address string
	// AuthMethod is AuthKubernetes or AuthToken.
	AuthMethod string
	// KubernetesMount and KubernetesRole are the Kubernetes auth method's mount and role.
	KubernetesMount, KubernetesRole string
	// Timeout bounds the check of one object, all its paths together.
	Timeout time.Duration
	// HitTTL and MissTTL are how long a path found, or not found, is remembered.
	HitTTL, MissTTL time.Duration
	// OnUnavailable decides when OpenBao does not answer in time.
	OnUnavailable OnUnavailable
}

// DefaultOpenBaoPolicy is the check off, with the settings it uses when turned on.
func DefaultOpenBaoPolicy() OpenBaoPolicy {
	return OpenBaoPolicy{
		AuthMethod:      AuthKubernetes,
		KubernetesMount: "kubernetes",
		KubernetesRole:  "iss-webhook",
		Timeout:         time.Second,
		HitTTL:          5 * time.Minute,
		MissTTL:         30 * time.Second,
		OnUnavailable:   UnavailableDeny,
	}
}

// ExternalSecretPaths returns the OpenBao paths an ExternalSecret reads, with their field
// paths, in the order they appear.
func ExternalSecretPaths(es *ExternalSecret) []ObjectPath {
	var out []ObjectPath
	spec := field.NewPath("spec")
	for i, d := range es.Spec.Data {
		out = append(out, ObjectPath{Field: spec.Child("data").Index(i).Child("remoteRef", "key"), Key: d.RemoteRef.Key})
	}
	for i, d := range es.Spec.DataFrom {
		if d.Extract != nil {
			out = append(out, ObjectPath{Field: spec.Child("dataFrom").Index(i).Child("extract", "key"), Key: d.Extract.Key})
		}
	}
	return out
}

// ObjectPath is an OpenBao path an object names, and where it names it.
type ObjectPath struct {
	Field *field.Path
	Key   string
}
