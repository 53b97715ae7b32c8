package policy

import (
	"strings"
	"testing"
)

func TestParseSecretPath(t *testing.T) {
	for _, tc := range []struct {
		root    string
		path    string
		want    SecretPath
		wantErr string
	}{
		{path: "artifacts/team-a/public/secrets/api-token", want: SecretPath{Root: "artifacts", Scope: ScopePublic, AppID: "team-a", Name: "api-token"}},
		{path: "/artifacts/team-a/public/secrets/API_TOKEN", want: SecretPath{Root: "artifacts", Scope: ScopePublic, AppID: "team-a", Name: "API_TOKEN"}},
		{path: "artifacts/team-a/users/alice@example.com/secrets/db.password", want: SecretPath{Root: "artifacts", Scope: ScopeUser, AppID: "team-a", UserID: "alice@example.com", Name: "db.password"}},
		{path: "artifacts/team-a/public/secrets/../../team-b/public/secrets/x", wantErr: "neither shape"},
		{path: "artifacts/team-a/public/secrets/..", wantErr: `secretName (last segment) ".." is a relative path element`},
		{path: "artifacts/../public/secrets/x", wantErr: `appId (segment 2) ".." is a relative path element`},
		{path: "artifacts/team%2Da/public/secrets/x", wantErr: "percent-encoding is not allowed"},
		{path: "artifacts/team-a/public/secrets/tökén", wantErr: "non-ASCII"},
		{path: "artifacts/team-a/public/secrets/", wantErr: "segment 5 is empty"},
		{path: "artifacts//public/secrets/x", wantErr: "segment 2 is empty"},
		{path: "//artifacts/team-a/public/secrets/x", wantErr: "segment 1 is empty"},
		{path: "secrets/team-a/public/secrets/x", wantErr: `must start with "artifacts/"`},
		{path: "artifacts/team-a/private/secrets/x", wantErr: `segment 3 is "private"`},
		{path: "artifacts/team-a/public/secret/x", wantErr: "neither shape"},
		{path: "artifacts/team-a/users/bob/secrets", wantErr: "neither shape"},
		{path: "artifacts/-team/public/secrets/x", wantErr: "must start and end with a letter or digit"},
		{path: "artifacts/team-a/public/secrets/x_", wantErr: "must start and end with a letter or digit"},
		{path: "artifacts/team a/public/secrets/x", wantErr: `contains " "`},
		{path: "artifacts/team@a/public/secrets/x", wantErr: `contains "@"`},
		{path: "artifacts/team-a/public/secrets/" + strings.Repeat("x", 64), wantErr: "64 characters long"},
		{path: "", wantErr: "segment 1 is empty"},
		{root: "kv", path: "kv/team-a/public/secrets/x", want: SecretPath{Root: "kv", Scope: ScopePublic, AppID: "team-a", Name: "x"}},
		{root: "kv", path: "artifacts/team-a/public/secrets/x", wantErr: `must start with "kv/"`},
	} {
		root := tc.root
		if root == "" {
			root = DefaultPathRoot
		}
		got, err := ParseSecretPath(root, tc.path)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.path, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.path, got, err, tc.want)
		}
	}
}

// FuzzParseSecretPath: no input panics, and an accepted path is canonical after the leading
// "/": it prints back to itself and parses again to the same value.
func FuzzParseSecretPath(f *testing.F) {
	for _, seed := range []string{"artifacts/team-a/public/secrets/api-token", "/artifacts/a/users/u@x.org/secrets/n",
		"artifacts/../public/secrets/x", "artifacts/a%2F/public/secrets/x", "artifacts/a/public/secrets/é", "", "/", "//"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		p, err := ParseSecretPath(DefaultPathRoot, path)
		if err != nil {
			return
		}
		if p.String() != strings.TrimPrefix(path, "/") {
			t.Fatalf("%q prints as %q", path, p.String())
		}
		again, err := ParseSecretPath(DefaultPathRoot, p.String())
		if err != nil || again != p {
			t.Fatalf("%q: reparsed %+v, %v", path, again, err)
		}
		for _, s := range []string{p.AppID, p.UserID, p.Name} {
			if s == "." || s == ".." || strings.ContainsAny(s, "/%") {
				t.Fatalf("%q: segment %q accepted", path, s)
			}
		}
	})
}
