package policy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestParseSecretKeys(t *testing.T) {
	path := field.NewPath("metadata", "annotations").Key(AnnotationSecrets)
	for _, tc := range []struct {
		value   string
		want    []string
		wantErr []string
	}{
		{value: "", want: nil},
		{value: "API_TOKEN", want: []string{"API_TOKEN"}},
		{value: " API_TOKEN , DB_PASSWORD ", want: []string{"API_TOKEN", "DB_PASSWORD"}},
		{value: "_private", want: []string{"_private"}},
		{value: "A,,B", wantErr: []string{"key 2 is empty"}},
		{value: "API_TOKEN,", wantErr: []string{"key 2 is empty"}},
		{value: "1PASSWORD,db-password,ok", wantErr: []string{`key "1PASSWORD" is not an environment variable name`, `key "db-password"`}},
		{value: "A,A", wantErr: []string{`key "A" is listed twice`}},
		{value: "TOKEN_", wantErr: []string{`maps to the Secret name "iss-token-"`}},
		{value: strings.Repeat("K", 250), wantErr: []string{"which is not valid"}},
	} {
		got, errs := ParseSecretKeys(tc.value, path)
		if len(errs) != len(tc.wantErr) {
			t.Errorf("%q: got errors %v, want %d", tc.value, errs, len(tc.wantErr))
			continue
		}
		for i, frag := range tc.wantErr {
			if !strings.Contains(errs[i].Detail, frag) || errs[i].Field != path.String() {
				t.Errorf("%q: error %d %v lacks %q", tc.value, i, errs[i], frag)
			}
		}
		if tc.wantErr == nil && strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%q: got %v, want %v", tc.value, got, tc.want)
		}
	}
	if got := SecretName("API_TOKEN"); got != "iss-api-token" {
		t.Errorf("SecretName = %s", got)
	}
}

// FuzzParseSecretKeys: no input panics, and every accepted key names a valid Secret and is a
// valid file name in the projected volume.
func FuzzParseSecretKeys(f *testing.F) {
	for _, seed := range []string{"", "API_TOKEN,DB_PASSWORD", " A , B ", "A,,B", "1X", "TOKEN_", "é", strings.Repeat("K", 300)} {
		f.Add(seed)
	}
	path := field.NewPath("metadata", "annotations").Key(AnnotationSecrets)
	f.Fuzz(func(t *testing.T, value string) {
		keys, errs := ParseSecretKeys(value, path)
		if len(errs) > 0 && keys != nil {
			t.Fatalf("keys %v with errors %v", keys, errs)
		}
		for _, k := range keys {
			if msgs := validation.IsDNS1123Subdomain(SecretName(k)); len(msgs) > 0 {
				t.Fatalf("key %q accepted with Secret name %q: %v", k, SecretName(k), msgs)
			}
			if strings.ContainsAny(k, "/.") || k == "" {
				t.Fatalf("key %q is not a plain file name", k)
			}
		}
	})
}
