package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestParseNetworkAccess(t *testing.T) {
	for _, tc := range []struct {
		name    string
		value   string
		want    Allowlist
		wantErr []string // fragments, one per error, in order
	}{
		{name: "absent", value: "", want: Allowlist{}},
		{name: "empty array", value: "[]", want: Allowlist{}},
		{name: "defaults", value: `[{"host":"api.github.com"}]`, want: Allowlist{{Host: "api.github.com", Ports: []int32{443}, Protocol: "TCP"}}},
		{name: "normalised: merged, sorted, unique", value: `[{"host":"b.example.org","ports":[80,443,80]},{"host":"a.example.org"},{"host":"b.example.org","ports":[8443]}]`,
			want: Allowlist{{Host: "a.example.org", Ports: []int32{443}, Protocol: "TCP"}, {Host: "b.example.org", Ports: []int32{80, 443, 8443}, Protocol: "TCP"}}},
		{name: "udp kept apart from tcp", value: `[{"host":"ntp.example.org","ports":[123],"protocol":"UDP"},{"host":"ntp.example.org"}]`,
			want: Allowlist{{Host: "ntp.example.org", Ports: []int32{443}, Protocol: "TCP"}, {Host: "ntp.example.org", Ports: []int32{123}, Protocol: "UDP"}}},
		{name: "wildcard", value: `[{"host":"*.pkg.dev"}]`, want: Allowlist{{Host: "*.pkg.dev", Ports: []int32{443}, Protocol: "TCP"}}},
		{name: "syntax error with position", value: "[\n  {\"host\": \"a.example.org\"},\n  {\"host\" \"b.example.org\"}\n]", wantErr: []string{"at line 3, column 11"}},
		{name: "trailing data", value: `[] []`, wantErr: []string{"after top-level value"}},
		{name: "not an array", value: `{"host":"a.example.org"}`, wantErr: []string{"the value is a JSON object, but must be an array of entries"}},
		{name: "null", value: `null`, wantErr: []string{"not null"}},
		{name: "wrong type", value: `[{"host":"a.example.org","ports":"443"}]`, wantErr: []string{`"ports" is a JSON string, but must be an array of port numbers`}},
		{name: "unknown field", value: `[{"host":"a.example.org"},{"host":"b.example.org","port":443}]`, wantErr: []string{`entry [1]: unknown field "[1].port"`}},
		{name: "duplicate field", value: `[{"host":"a.example.org","host":"b.example.org"}]`, wantErr: []string{`duplicate field "[0].host": give each field once`}},
		{name: "missing host", value: `[{"ports":[443]}]`, wantErr: []string{`entry [0]: "host" is required`}},
		{name: "null entry", value: `[null]`, wantErr: []string{"entry [0]: null is not an entry"}},
		{name: "every entry fault at once", value: `[{"host":"10.1.2.3"},{"host":"[::1]"},{"host":"API.github.com"},{"host":"https://a.example.org/x"},{"host":"a.example.org."},{"host":"*.com"},{"host":"a.*.example.org"},{"host":"localhost"},{"host":"-a.example.org"},{"host":"a.example.123"}]`,
			wantErr: []string{"entry [0]: host \"10.1.2.3\": IP literals", "entry [1]: host \"[::1]\": IP literals", `must be lower case: write "api.github.com"`,
				"must be a bare host name", `must not end with a dot: write "a.example.org"`, "a wildcard must stand before a domain of at least two labels",
				`only one "*." at the start`, "at least two labels", `label "-a"`, "the last label must not be all digits"}},
		{name: "ports and protocol", value: `[{"host":"a.example.org","ports":[0,65536,22],"protocol":"tcp"},{"host":"b.example.org","ports":[]}]`,
			wantErr: []string{`protocol "tcp": must be "TCP" or "UDP"`, "port 0: must be from 1 to 65535", "port 65536", `"ports" is empty`}},
		{name: "more than 25 hosts", value: manyHosts(26), wantErr: []string{"26 hosts listed, at most 25"}},
		{name: "names that resolve inside", value: `[{"host":"metadata.google.internal"},{"host":"kubernetes.default.svc"},{"host":"printer.local"},{"host":"localhost.localdomain"}]`,
			wantErr: []string{`".internal"`, `".svc"`, `".local"`, `".localdomain"`}},
		{name: "too many ports", value: `[{"host":"a.example.org","ports":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21]}]`, wantErr: []string{"21 ports listed, at most 20"}},
		{name: "too many port sets", value: manyPortSets(21), wantErr: []string{"21 different sets of protocol and ports"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := parseDefault(tc.value)
			if len(errs) != len(tc.wantErr) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tc.wantErr))
			}
			for i, frag := range tc.wantErr {
				if !strings.Contains(errs[i].Error(), frag) {
					t.Errorf("error %d %q lacks %q", i, errs[i], frag)
				}
			}
			if tc.wantErr == nil {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tc.want)
				if string(g) != string(w) {
					t.Errorf("got %s, want %s", g, w)
				}
			}
		})
	}
	if ok, _ := parseDefault(manyHosts(25)); len(ok) != 25 {
		t.Errorf("25 hosts: got %d rules", len(ok))
	}
}

// parseDefault parses an annotation under the default network section.
func parseDefault(value string) (Allowlist, []error) {
	n := DefaultNetworkSection()
	return n.ParseNetworkAccess(value)
}

func manyPortSets(n int) string {
	var entries []string
	for i := range n {
		entries = append(entries, fmt.Sprintf(`{"host":"h%d.example.org","ports":[%d]}`, i, 1000+i))
	}
	return "[" + strings.Join(entries, ",") + "]"
}

func manyHosts(n int) string {
	var entries []string
	for i := range n {
		entries = append(entries, `{"host":"h`+strings.Repeat("x", i%3)+string(rune('a'+i%26))+`.example.org"}`)
	}
	return "[" + strings.Join(entries, ",") + "]"
}

func TestAllowlistHash(t *testing.T) {
	a, _ := parseDefault(`[{"host":"a.example.org"},{"host":"b.example.org","ports":[22]}]`)
	b, _ := parseDefault(` [ {"ports":[22,22],"host":"b.example.org"}, {"protocol":"TCP","host":"a.example.org","ports":[443]} ] `)
	c, _ := parseDefault(`[{"host":"a.example.org"}]`)
	if a.Hash() != b.Hash() {
		t.Errorf("equal allowlists hash differently: %s %s", a.Hash(), b.Hash())
	}
	if a.Hash() == c.Hash() || len(a.Hash()) != 16 {
		t.Errorf("hashes %s %s", a.Hash(), c.Hash())
	}
	if (Allowlist{}).Hash() != (Allowlist(nil)).Hash() {
		// nil and empty differ in JSON; absent and [] annotations must not.
		empty1, _ := parseDefault("")
		empty2, _ := parseDefault("[]")
		if empty1.Hash() != empty2.Hash() {
			t.Error("absent and empty annotations hash differently")
		}
	}
}

// FuzzParseNetworkAccess feeds the parser arbitrary annotations: it must never panic, every
// error must be a *NetworkAccessError with a position inside the value, and what it accepts must
// be normalised: encoding it and parsing it again gives the same allowlist.
func FuzzParseNetworkAccess(f *testing.F) {
	for _, seed := range []string{
		``, `[]`, `[{"host":"api.github.com","ports":[443]},{"host":"*.pkg.dev"}]`,
		`[{"host":"ntp.example.org","ports":[123],"protocol":"UDP"}]`, `[{"host":"10.0.0.1"}]`,
		`[{"host":"a.example.org",}]`, `[{"host":1}]`, `null`, `[null]`, `{"host":"x"}`, "[\n{\"host\":\"a.b\"}\n] x",
		`[{"host":"a.example.org","host":"b.example.org"}]`, `[{"host":"\u00e9.example.org"}]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		list, errs := parseDefault(value)
		for _, err := range errs {
			nerr, ok := err.(*NetworkAccessError)
			if !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if nerr.Offset > int64(len(value)) {
				t.Fatalf("offset %d beyond the value's %d bytes", nerr.Offset, len(value))
			}
		}
		if len(errs) > 0 {
			if list != nil {
				t.Fatalf("an allowlist with errors: %v", list)
			}
			return
		}
		encoded, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		again, errs := parseDefault(string(encoded))
		if len(errs) > 0 {
			t.Fatalf("normalised form %s rejected: %v", encoded, errs)
		}
		if again.Hash() != list.Hash() {
			t.Fatalf("normalised form %s hashes differently", encoded)
		}
		if len(list) > 2*MaxEgressHosts {
			t.Fatalf("%d rules accepted", len(list))
		}
	})
}
