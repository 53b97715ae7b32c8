package policy

import (
	"fmt"
	"strconv"
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
	// HitTTL is how long a path whose version External Secrets can read is remembered;
	// MissTTL how long any other answer is: missing, deleted, destroyed, or denied to the token.
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
// paths and pinned versions, in the order they appear.
func ExternalSecretPaths(es *ExternalSecret) []ObjectPath {
	var out []ObjectPath
	spec := field.NewPath("spec")
	for i, d := range es.Spec.Data {
		ref := spec.Child("data").Index(i).Child("remoteRef")
		out = append(out, ObjectPath{Field: ref.Child("key"), Key: d.RemoteRef.Key, VersionField: ref.Child("version"), Version: d.RemoteRef.Version})
	}
	for i, d := range es.Spec.DataFrom {
		if d.Extract != nil {
			ref := spec.Child("dataFrom").Index(i).Child("extract")
			out = append(out, ObjectPath{Field: ref.Child("key"), Key: d.Extract.Key, VersionField: ref.Child("version"), Version: d.Extract.Version})
		}
	}
	return out
}

// ObjectPath is an OpenBao path an object names, and where it names it.
type ObjectPath struct {
	Field *field.Path
	Key   string
	// Version is the KV v2 version the object pins (empty: the current one), at VersionField.
	VersionField *field.Path
	Version      string
}

// PathState is what a KV v2 mount holds at a path, for the version an object reads.
type PathState int

// The PathStates. Only PathFound lets External Secrets read a value.
const (
	// PathFound is a version that is there, neither deleted nor destroyed.
	PathFound PathState = iota
	// PathMissing is a path with no secret: no metadata, or metadata without a version.
	PathMissing
	// PathDeleted is a soft-deleted version: `kv undelete` brings it back.
	PathDeleted
	// PathDestroyed is a destroyed version: its value is gone for good.
	PathDestroyed
	// PathNoSuchVersion is a pinned version that the path does not have: never written, or
	// pruned by the mount's max_versions.
	PathNoSuchVersion
)

// PathAnswer is what OpenBao says of a path, for the version an object reads.
type PathAnswer struct {
	State PathState
	// Version is the version the state is of: the pinned one, else the current one (0 when the
	// path has none).
	Version int
	// Current is the path's current version (0 when the path has none).
	Current int
	// Caveat qualifies the answer, such as a mount type that could not be confirmed; empty
	// when there is nothing to add.
	Caveat string
}

// ParseSecretVersion reads an ExternalSecret's remoteRef.version or extract.version for the KV v2
// provider: empty or "0" reads the current version (as OpenBao does with version=0), otherwise a
// positive version number.
func ParseSecretVersion(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || strconv.Itoa(n) != v {
		return 0, fmt.Errorf("must be a KV v2 version number, such as \"3\", or left out to read the current version")
	}
	return n, nil
}

// detail is the message of an answer that is not PathFound, for an object that reads the path
// at pinned (0: the current version) from mount of environment env.
func (a PathAnswer) detail(pinned int, mount, env, path string) string {
	where := fmt.Sprintf("OpenBao (KV v2 mount %q of environment %q)", mount, env)
	var msg string
	switch {
	case a.State == PathMissing:
		msg = fmt.Sprintf("no secret at this path in %s: create it there first, or fix the path", where)
	case a.State == PathNoSuchVersion && a.Current == 0:
		msg = fmt.Sprintf("version %d of this secret does not exist in %s: the path has no version; write one, or fix the path", a.Version, where)
	case a.State == PathNoSuchVersion:
		msg = fmt.Sprintf("version %d of this secret does not exist in %s (its current version is %d, and older ones may have been pruned by max_versions): pin a version it has, or leave version out to read the current one", a.Version, where, a.Current)
	case a.State == PathDeleted && pinned == 0:
		msg = fmt.Sprintf("the current version (%d) of this secret in %s is deleted, so External Secrets can read no value: undelete it (bao kv undelete -mount=%s -versions=%d %s) or write a new version", a.Version, where, mount, a.Version, path)
	case a.State == PathDeleted:
		msg = fmt.Sprintf("version %d of this secret in %s is deleted, so External Secrets can read no value: undelete it (bao kv undelete -mount=%s -versions=%d %s), or pin a version that is not deleted", a.Version, where, mount, a.Version, path)
	case a.State == PathDestroyed && pinned == 0:
		msg = fmt.Sprintf("the current version (%d) of this secret in %s is destroyed, so External Secrets can read no value: write a new version", a.Version, where)
	case a.State == PathDestroyed:
		msg = fmt.Sprintf("version %d of this secret in %s is destroyed, so External Secrets can read no value: pin a version that is not destroyed (the current one is %d), or leave version out", a.Version, where, a.Current)
	default:
		msg = fmt.Sprintf("OpenBao answered with an unknown state %d for this path in %s", a.State, where)
	}
	if a.Caveat != "" {
		msg += " (" + a.Caveat + ")"
	}
	return msg
}
