package policy

import (
	"fmt"
	"strings"
)

// Secret path scopes of ISS-001 section 2.1.
const (
	// ScopePublic is artifacts/{appId}/public/secrets/{secretName}: shared by the app.
	ScopePublic = "public"
	// ScopeUser is artifacts/{appId}/users/{userId}/secrets/{secretName}: one user's.
	ScopeUser = "user"
)

// SecretPath is an OpenBao path of the ISS-001 hierarchy, taken apart.
type SecretPath struct {
	// Root is the first segment, the policy's secrets.pathRoot.
	Root string
	// Scope is ScopePublic or ScopeUser.
	Scope string
	// AppID owns the path; it must be the app of the namespace that reads or writes it.
	AppID string
	// UserID is the user of a ScopeUser path, empty otherwise.
	UserID string
	// Name is the secret's name.
	Name string
}

// DefaultPathRoot is the first segment of every path in ISS-001 section 2.1.
const DefaultPathRoot = "artifacts"

// ParseSecretPath parses an OpenBao path of the ISS-001 hierarchy under root (the policy's
// secrets.pathRoot, "artifacts" by default), with or without a leading "/". Each of appId, userId and secretName is 1 to 63 of A-Z a-z 0-9 . _ - ('@' too in
// userId), starting and ending with a letter or digit; "." and "..", empty segments,
// percent-encoding and non-ASCII are never allowed. The error says which segment is wrong and why.
func ParseSecretPath(root, path string) (SecretPath, error) {
	fail := func(format string, args ...any) (SecretPath, error) {
		return SecretPath{}, fmt.Errorf("path %q: %s; paths are %s/{appId}/public/secrets/{secretName} or %s/{appId}/users/{userId}/secrets/{secretName}",
			path, fmt.Sprintf(format, args...), root, root)
	}
	trimmed := strings.TrimPrefix(path, "/")
	segments := strings.Split(trimmed, "/")
	for i, s := range segments {
		if s == "" {
			return fail("segment %d is empty (a doubled, leading or trailing \"/\")", i+1)
		}
	}
	if segments[0] != root {
		return fail("must start with %q, not %q", root+"/", segments[0]+"/")
	}
	var p SecretPath
	switch {
	case len(segments) == 5 && segments[2] == "public" && segments[3] == "secrets":
		p = SecretPath{Root: root, Scope: ScopePublic, AppID: segments[1], Name: segments[4]}
	case len(segments) == 6 && segments[2] == "users" && segments[4] == "secrets":
		p = SecretPath{Root: root, Scope: ScopeUser, AppID: segments[1], UserID: segments[3], Name: segments[5]}
	case len(segments) >= 3 && segments[2] != "public" && segments[2] != "users":
		return fail("segment 3 is %q, but must be \"public\" or \"users\"", segments[2])
	default:
		return fail("has %d segments in an order that matches neither shape", len(segments))
	}
	if reason := checkPathSegment(p.AppID, false); reason != "" {
		return fail("appId (segment 2) %q %s", p.AppID, reason)
	}
	if p.Scope == ScopeUser {
		if reason := checkPathSegment(p.UserID, true); reason != "" {
			return fail("userId (segment 4) %q %s", p.UserID, reason)
		}
	}
	if reason := checkPathSegment(p.Name, false); reason != "" {
		return fail("secretName (last segment) %q %s", p.Name, reason)
	}
	return p, nil
}

// String returns the path in its canonical form, without a leading "/".
func (p SecretPath) String() string {
	if p.Scope == ScopeUser {
		return p.Root + "/" + p.AppID + "/users/" + p.UserID + "/secrets/" + p.Name
	}
	return p.Root + "/" + p.AppID + "/public/secrets/" + p.Name
}

// checkPathSegment returns why a segment is not allowed, or "".
func checkPathSegment(s string, allowAt bool) string {
	switch {
	case s == "." || s == "..":
		return "is a relative path element"
	case len(s) > 63:
		return fmt.Sprintf("is %d characters long, at most 63 are allowed", len(s))
	case strings.Contains(s, "%"):
		return "contains '%': percent-encoding is not allowed"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		switch {
		case c >= 0x80:
			return "contains a non-ASCII character"
		case alnum:
		case c == '.' || c == '_' || c == '-' || (allowAt && c == '@'):
			if i == 0 || i == len(s)-1 {
				return fmt.Sprintf("must start and end with a letter or digit, not %q", string(c))
			}
		default:
			allowed := "A-Z a-z 0-9 . _ -"
			if allowAt {
				allowed += " @"
			}
			return fmt.Sprintf("contains %q: only %s are allowed", string(c), allowed)
		}
	}
	return ""
}
