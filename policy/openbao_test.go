package policy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// answers is a PathVerifier with an answer per path, and the versions it was asked for.
type answers struct {
	byPath map[string]PathAnswer
	asked  map[string]int
}

func (a *answers) Check(_ context.Context, _ OpenBaoPolicy, _, path string, version int) (PathAnswer, error) {
	if a.asked == nil {
		a.asked = map[string]int{}
	}
	a.asked[path] = version
	if strings.Contains(path, "unavailable") {
		return PathAnswer{}, errors.New("OpenBao mount kv-dev is a KV version 1 mount")
	}
	return a.byPath[path], nil
}

// TestExistenceCheckVersions: the check reads the version an ExternalSecret pins (else the
// current one) and denies a deleted, destroyed or absent one at the field that names it, saying
// which and which version.
func TestExistenceCheckVersions(t *testing.T) {
	const root = "artifacts/team-a/public/secrets/"
	verifier := &answers{byPath: map[string]PathAnswer{
		root + "found":             {State: PathFound, Version: 3, Current: 3},
		root + "deleted":           {State: PathDeleted, Version: 4, Current: 4},
		root + "destroyed":         {State: PathDestroyed, Version: 2, Current: 2},
		root + "pinned-deleted":    {State: PathDeleted, Version: 2, Current: 5},
		root + "pinned-destroyed":  {State: PathDestroyed, Version: 1, Current: 5},
		root + "pinned-absent":     {State: PathNoSuchVersion, Version: 9, Current: 5},
		root + "missing":           {State: PathMissing},
		root + "missing-pinned":    {State: PathMissing, Version: 2},
		root + "unconfirmed-mount": {State: PathMissing, Caveat: "the webhook could not confirm that kv-dev is a KV v2 mount"},
	}}
	p := Default()
	p.OpenBao.Verify, p.OpenBao.Address = true, "https://openbao:8200"
	for _, tc := range []struct {
		name    string
		ref     string // a data[0].remoteRef
		field   string
		message []string
		asked   int
		invalid bool // not asked: the version is not one
		refused string
	}{
		{name: "the current version is there", ref: `{"key":"` + root + `found"}`},
		{name: "a pinned version that is there", ref: `{"key":"` + root + `found","version":"3"}`, asked: 3},
		{name: "version 0 reads the current one", ref: `{"key":"` + root + `found","version":"0"}`},
		{name: "a soft-deleted current version", ref: `{"key":"` + root + `deleted"}`, field: "spec.data[0].remoteRef.key",
			message: []string{"the current version (4) of this secret", "is deleted", "bao kv undelete -mount=kv-dev -versions=4 " + root + "deleted"}},
		{name: "a destroyed current version", ref: `{"key":"` + root + `destroyed"}`, field: "spec.data[0].remoteRef.key",
			message: []string{"the current version (2) of this secret", "is destroyed", "write a new version"}},
		{name: "a pinned soft-deleted version", ref: `{"key":"` + root + `pinned-deleted","version":"2"}`, field: "spec.data[0].remoteRef.version", asked: 2,
			message: []string{`Not found: "2": version 2 of this secret`, "is deleted", "pin a version that is not deleted"}},
		{name: "a pinned destroyed version", ref: `{"key":"` + root + `pinned-destroyed","version":"1"}`, field: "spec.data[0].remoteRef.version", asked: 1,
			message: []string{"version 1 of this secret", "is destroyed", "the current one is 5"}},
		{name: "a pinned version that does not exist", ref: `{"key":"` + root + `pinned-absent","version":"9"}`, field: "spec.data[0].remoteRef.version", asked: 9,
			message: []string{"version 9 of this secret does not exist", "its current version is 5"}},
		{name: "a missing path", ref: `{"key":"` + root + `missing"}`, field: "spec.data[0].remoteRef.key",
			message: []string{`no secret at this path in OpenBao (KV v2 mount "kv-dev" of environment "dev"): create it there first, or fix the path`}},
		{name: "a missing path, pinned: the key is at fault", ref: `{"key":"` + root + `missing-pinned","version":"2"}`, field: "spec.data[0].remoteRef.key", asked: 2,
			message: []string{"no secret at this path"}},
		{name: "a missing path whose mount type is unconfirmed says so", ref: `{"key":"` + root + `unconfirmed-mount"}`, field: "spec.data[0].remoteRef.key",
			message: []string{"no secret at this path", "(the webhook could not confirm that kv-dev is a KV v2 mount)"}},
		{name: "a version that is not a number", ref: `{"key":"` + root + `found","version":"latest"}`, invalid: true, field: "spec.data[0].remoteRef.version",
			message: []string{`Invalid value: "latest": must be a KV v2 version number`}},
		{name: "a negative version", ref: `{"key":"` + root + `found","version":"-1"}`, invalid: true, field: "spec.data[0].remoteRef.version",
			message: []string{"must be a KV v2 version number"}},
		{name: "a version with a leading zero", ref: `{"key":"` + root + `found","version":"03"}`, invalid: true, field: "spec.data[0].remoteRef.version",
			message: []string{"must be a KV v2 version number"}},
		{name: "a misconfigured mount refuses, saying so", ref: `{"key":"` + root + `unavailable"}`, refused: "is a KV version 1 mount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{"name":"es","namespace":"team-a-dev","annotations":{"iss.platform/initiator-id":"alice"}},
				"spec":{"secretStoreRef":{"kind":"ClusterSecretStore","name":"openbao-dev"},"data":[{"secretKey":"a","remoteRef":` + tc.ref + `}]}}`
			obj := &SecretObject{}
			if err := json.Unmarshal([]byte(doc), obj); err != nil {
				t.Fatal(err)
			}
			req := &Request{Operation: Create, Namespace: "team-a-dev", User: "alice", Facts: Facts{Namespaces: appNamespaces{}, Paths: verifier}}
			out := AdmitExternalSecret(context.Background(), p, req, obj, nil)
			if tc.refused != "" {
				if out.Refusal == nil || !strings.Contains(out.Refusal.Message, tc.refused) {
					t.Fatalf("refusal %+v, want one that says %q", out.Refusal, tc.refused)
				}
				return
			}
			if out.Refusal != nil {
				t.Fatalf("refused: %s", out.Refusal.Message)
			}
			var errs []string
			for _, f := range out.Findings {
				for _, e := range f.Errors {
					errs = append(errs, e.Error())
					if e.Field != tc.field {
						t.Errorf("field %s, want %s", e.Field, tc.field)
					}
				}
			}
			if (tc.field == "") != (len(errs) == 0) || len(errs) > 1 {
				t.Fatalf("findings %q, want one at %q", errs, tc.field)
			}
			for _, want := range tc.message {
				if !strings.Contains(errs[0], want) {
					t.Errorf("%s\ndoes not say %q", errs[0], want)
				}
			}
			key := strings.Split(strings.Split(tc.ref, `"key":"`)[1], `"`)[0]
			if got, asked := verifier.asked[key]; tc.invalid == asked || got != tc.asked {
				t.Errorf("asked OpenBao %v, for version %d; want asked %v, for version %d", asked, got, !tc.invalid, tc.asked)
			}
			delete(verifier.asked, key)
		})
	}
}

// TestExternalSecretPathsVersions: both places an ExternalSecret names a path carry its version.
func TestExternalSecretPathsVersions(t *testing.T) {
	es := &ExternalSecret{}
	if err := json.Unmarshal([]byte(`{"spec":{"data":[{"remoteRef":{"key":"a","version":"2"}}],"dataFrom":[{"extract":{"key":"b","version":"5"}},{"extract":{"key":"c"}}]}}`), es); err != nil {
		t.Fatal(err)
	}
	got := ExternalSecretPaths(es)
	want := []struct{ field, key, versionField, version string }{
		{"spec.data[0].remoteRef.key", "a", "spec.data[0].remoteRef.version", "2"},
		{"spec.dataFrom[0].extract.key", "b", "spec.dataFrom[0].extract.version", "5"},
		{"spec.dataFrom[1].extract.key", "c", "spec.dataFrom[1].extract.version", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d paths", len(got))
	}
	for i, w := range want {
		if g := got[i]; g.Field.String() != w.field || g.Key != w.key || g.VersionField.String() != w.versionField || g.Version != w.version {
			t.Errorf("path %d: %s %s %s %s, want %+v", i, g.Field, g.Key, g.VersionField, g.Version, w)
		}
	}
}
