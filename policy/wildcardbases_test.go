package policy

// These tests pin down which egress hosts are specific names: wildcards over public suffixes or
// over domains with public suffixes below them (either section of the Public Suffix List), and
// names that spell an IP address, are denied, whatever their spelling; the ISSPolicy can allow
// or deny further wildcard bases.

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/weppos/publicsuffix-go/publicsuffix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEgressHosts(t *testing.T) {
	const (
		suffix   = "is a public suffix"
		below    = "the Public Suffix List has public suffixes below"
		embeds   = "embeds the IP address"
		denied   = "the policy denies wildcards over"
		noPolicy = ""
	)
	allowAmazon := func(n *NetworkSection) { n.WildcardBases.Allow = []string{"amazonaws.com"} }
	denyExample := func(n *NetworkSection) { n.WildcardBases.Deny = append(n.WildcardBases.Deny, "example.org") }
	for _, tc := range []struct {
		host string
		// policy changes the default network section; nil keeps it.
		policy func(*NetworkSection)
		// want are fragments of the reason, in order; none when the host is admitted.
		want []string
	}{
		// Wildcards over suffixes of the ICANN section.
		{host: "*.co.uk", want: []string{`"co.uk" is a public suffix (rule "co.uk" in the ICANN section of the Public Suffix List)`, "belong to many owners", `such as "*.example.co.uk"`, "spec.network.wildcardBases.allow"}},
		{host: "*.com.au", want: []string{`"com.au" ` + suffix, "ICANN section"}},
		{host: "*.gov.uk", want: []string{suffix}},
		{host: "*.com", want: []string{"a wildcard must stand before a domain of at least two labels"}},
		{host: "*.xn--55qx5d.cn", want: []string{`"xn--55qx5d.cn" ` + suffix, "ICANN section"}},
		{host: "*.x.kawasaki.jp", want: []string{`"x.kawasaki.jp" is a public suffix (rule "*.kawasaki.jp"`}},
		// Wildcards over suffixes of the private section.
		{host: "*.github.io", want: []string{`"github.io" ` + suffix, "private section", `such as "*.example.github.io"`}},
		{host: "*.s3.amazonaws.com", want: []string{`"s3.amazonaws.com" ` + suffix, "private section"}},
		{host: "*.cloudfront.net", want: []string{suffix, "private section"}},
		{host: "*.googleapis.com", want: []string{suffix, "private section"}},
		{host: "*.blob.core.windows.net", want: []string{suffix}},
		{host: "*.ec2-1.compute.amazonaws.com", want: []string{`"ec2-1.compute.amazonaws.com" is a public suffix (rule "*.compute.amazonaws.com" in the private section`}},
		// Wildcards over domains with suffixes below them.
		{host: "*.amazonaws.com", want: []string{`below "amazonaws.com" (`, "in its private section), such as", "list the hosts you need by name"}},
		{host: "*.compute.amazonaws.com", want: []string{below + ` "compute.amazonaws.com"`, `such as "*.compute.amazonaws.com"`}},
		{host: "*.core.windows.net", want: []string{below + ` "core.windows.net"`}},
		{host: "*.windows.net", want: []string{below}},
		{host: "*.kawasaki.jp", want: []string{below + ` "kawasaki.jp" (1 in its ICANN section)`}},
		{host: "*.r.appspot.com", want: []string{below}},
		// Admitted: one owner's domain.
		{host: "*.pkg.dev"},
		{host: "*.example.co.uk"},
		{host: "*.mybucket.s3.amazonaws.com"},
		{host: "*.example.github.io"},
		{host: "*.github.com"},
		{host: "*.city.kawasaki.jp"}, // the list's exception "!city.kawasaki.jp"
		{host: "*.xn--bcher-kva.example"},
		{host: "s3.amazonaws.com"}, // one name, not a wildcard
		{host: "co.uk"},
		// Upper case and trailing dots: the spelling to write, or why it is denied too.
		{host: "*.PKG.DEV", want: []string{`must be lower case: write "*.pkg.dev"`}},
		{host: "*.CO.UK", want: []string{`must be lower case, and "*.co.uk" is not allowed either: "co.uk" ` + suffix}},
		{host: "*.Amazonaws.Com", want: []string{`must be lower case, and "*.amazonaws.com" is not allowed either: ` + below}},
		{host: "*.pkg.dev.", want: []string{`must not end with a dot: write "*.pkg.dev"`}},
		{host: "*.co.uk.", want: []string{`must not end with a dot, and "*.co.uk" is not allowed either: "co.uk" ` + suffix}},
		{host: "*.co.uk..", want: []string{"must not end with a dot, and", suffix}},
		{host: "*.CO.UK.", want: []string{`must be lower case, must not end with a dot, and "*.co.uk" is not allowed either`}},
		{host: "*.XN--55QX5D.CN", want: []string{`must be lower case, and "*.xn--55qx5d.cn" is not allowed either`, suffix}},
		// IDN: Unicode labels are written as A-labels, which the list is checked in.
		{host: "*.公司.cn", want: []string{`must be written with A-labels (punycode), as DNS carries it, and "*.xn--55qx5d.cn" is not allowed either`, suffix}},
		{host: "bücher.example.org", want: []string{`must be written with A-labels (punycode), as DNS carries it: write "xn--bcher-kva.example.org"`}},
		{host: "*.BÜCHER.example", want: []string{`write "*.xn--bcher-kva.example"`}},
		{host: "*.ак.срб", want: []string{`"*.xn--80au.xn--90a3ac" is not allowed either`, suffix}},
		// Names that spell an IP address, in the forms of nip.io and sslip.io.
		{host: "169.254.169.254.nip.io", want: []string{embeds + " 169.254.169.254", "name the host by its own DNS name"}},
		{host: "app.10.0.0.1.nip.io", want: []string{embeds + " 10.0.0.1"}},
		{host: "10.0.0.1.example.org", want: []string{embeds + " 10.0.0.1"}},
		{host: "010.000.000.001.sslip.io", want: []string{embeds + " 10.0.0.1"}},
		{host: "10-0-0-1.sslip.io", want: []string{embeds + " 10.0.0.1"}},
		{host: "app-192-168-1-2.nip.io", want: []string{embeds + " 192.168.1.2"}},
		{host: "ip-169-254-169-254-x.example.org", want: []string{embeds + " 169.254.169.254"}},
		{host: "0a000001.nip.io", want: []string{embeds + " 10.0.0.1"}},
		{host: "magic-a9fea9fe.nip.io", want: []string{embeds + " 169.254.169.254"}},
		{host: "7f000001.sslip.io", want: []string{embeds + " 127.0.0.1"}},
		{host: "fe80--1.sslip.io", want: []string{embeds + " fe80::1"}},
		{host: "www-2001-db8--1.sslip.io", want: []string{embeds + " 2001:db8::1"}},
		{host: "www---1.sslip.io", want: []string{embeds + " ::1"}},
		{host: "0-0-0-0-0-0-0-1.sslip.io", want: []string{embeds}},
		{host: "fd00-ec2--254.sslip.io", want: []string{embeds + " fd00:ec2::254"}},
		{host: "--1.sslip.io", want: []string{`label "--1"`}},
		{host: "169.254.169.254.NIP.IO", want: []string{`must be lower case, and "169.254.169.254.nip.io" is not allowed either: ` + embeds}},
		{host: "*.10.0.0.1.example.org", want: []string{embeds + " 10.0.0.1"}},
		{host: "*.169-254-169-254.example.org", want: []string{embeds + " 169.254.169.254"}},
		// Not an address: admitted.
		{host: "1.2.3.example.org"},
		{host: "256.1.1.1.example.org"},
		{host: "v1-2-3.example.org"},
		{host: "a0a00001b.example.org"},
		{host: "xn--abc.example.org"},
		{host: "deploy-preview-42--site.example.org"},
		// Wildcard DNS services, denied by the default policy.
		{host: "*.nip.io", want: []string{denied + ` "nip.io" and the domains below it (spec.network.wildcardBases.deny)`, "list the hosts you need by name"}},
		{host: "*.sslip.io", want: []string{denied + ` "sslip.io"`}},
		{host: "*.apps.nip.io", want: []string{denied + ` "nip.io"`}},
		{host: "*.localtest.me", want: []string{denied + ` "localtest.me"`}},
		{host: "*.NIP.IO.", want: []string{`must be lower case, must not end with a dot, and "*.nip.io" is not allowed either: ` + denied}},
		{host: "app.nip.io"}, // one name; the private ranges are the generated policies'
		// The policy's allow and deny lists.
		{host: "*.amazonaws.com", policy: allowAmazon},
		{host: "*.s3.amazonaws.com", policy: allowAmazon},
		{host: "*.co.uk", policy: allowAmazon, want: []string{suffix}},
		{host: "*.169-254-169-254.amazonaws.com", policy: allowAmazon, want: []string{embeds}},
		{host: "*.amazonaws.com", policy: func(n *NetworkSection) { n.WildcardBases.Allow = []string{"s3.amazonaws.com"} }, want: []string{below}},
		{host: "*.amazonaws.com", policy: func(n *NetworkSection) { n.WildcardBases.Allow = []string{"com"} }},
		{host: "*.example.org", policy: denyExample, want: []string{denied + ` "example.org"`}},
		{host: "*.a.example.org", policy: denyExample, want: []string{denied + ` "example.org"`}},
		{host: "*.example.org.uk", policy: denyExample},
		{host: "a.example.org", policy: denyExample},
		{host: "*.amazonaws.com", policy: func(n *NetworkSection) {
			n.WildcardBases.Allow = []string{"amazonaws.com"}
			n.WildcardBases.Deny = []string{"amazonaws.com"}
		}, want: []string{denied + ` "amazonaws.com"`}},
		{host: "*.nip.io", policy: func(n *NetworkSection) { n.WildcardBases.Deny = nil }},
		{host: "*.nip.io", policy: func(n *NetworkSection) { n.WildcardBases.Allow = []string{"nip.io"} }, want: []string{denied}},
		{host: "*.metadata.google.internal", policy: func(n *NetworkSection) { n.WildcardBases.Allow = []string{"google.internal"} }, want: []string{`names under ".internal"`}},
		// Another list: the index is data, and a policy may carry its own.
		{host: "*.pkg.dev", policy: func(n *NetworkSection) { n.Suffixes = testIndex(t, "dev", "pkg.dev") }, want: []string{`"pkg.dev" ` + suffix}},
		{host: "*.pkg.dev", policy: func(n *NetworkSection) { n.Suffixes = testIndex(t, "dev", "*.a.pkg.dev") }, want: []string{below + ` "pkg.dev" (1 in its ICANN section)`}},
		{host: "*.co.uk", policy: func(n *NetworkSection) { n.Suffixes = testIndex(t, "uk") }},
	} {
		name := tc.host
		if tc.policy != nil {
			name += " under another policy"
		}
		t.Run(name, func(t *testing.T) {
			n := DefaultNetworkSection()
			if tc.policy != nil {
				tc.policy(&n)
			}
			reason := n.checkEgressHost(tc.host)
			if len(tc.want) == 0 {
				if reason != "" {
					t.Fatalf("%q denied: %s", tc.host, reason)
				}
				return
			}
			if reason == "" {
				t.Fatalf("%q admitted", tc.host)
			}
			rest := reason
			for _, frag := range tc.want {
				i := strings.Index(rest, frag)
				if i < 0 {
					t.Fatalf("reason %q lacks %q (after the fragments before it)", reason, frag)
				}
				rest = rest[i+len(frag):]
			}
		})
	}
}

// TestEgressHostsInTheAnnotation checks that the host checks reach the annotation's errors, one
// per entry with its index, all at once.
func TestEgressHostsInTheAnnotation(t *testing.T) {
	n := DefaultNetworkSection()
	_, errs := n.ParseNetworkAccess(`[{"host":"*.pkg.dev"},{"host":"*.co.uk"},{"host":"*.amazonaws.com","ports":[443]},{"host":"169.254.169.254.nip.io","ports":[80]},{"host":"*.nip.io"}]`)
	want := []string{`entry [1]: host "*.co.uk": "co.uk" is a public suffix`, `entry [2]: host "*.amazonaws.com": the Public Suffix List has public suffixes below "amazonaws.com"`,
		`entry [3]: host "169.254.169.254.nip.io": embeds the IP address 169.254.169.254`, `entry [4]: host "*.nip.io": the policy denies wildcards over "nip.io"`}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d %q lacks %q", i, errs[i], w)
		}
	}
}

// TestWildcardRoutes tries the other ways to a wildcard over a public suffix: a workload's pod
// template, an update of an admitted engine's annotation, and a policy that allows the base,
// which decides for the review it is in force for.
func TestWildcardRoutes(t *testing.T) {
	const key = "metadata.annotations[" + AnnotationNetworkAccess + "]"
	engine := func(access string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationNetworkAccess: access}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dagger-engine", Image: "registry.dagger.io/engine:v0.19.7"}}}}
	}
	wildcard := `[{"host":"*.co.uk"}]`

	t.Run("pod template", func(t *testing.T) {
		tmpl := engine(wildcard)
		deploy := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}}}
		errs, _ := Default().ValidateWorkload(deploy)
		checkErrs(t, errs, []wantErr{{"spec.template." + key, `entry [0]: host "*.co.uk": "co.uk" is a public suffix`}})
	})
	t.Run("update of an admitted engine", func(t *testing.T) {
		integrity, eng := Default().ReviewPodUpdate(engine(`[{"host":"www.example.co.uk"}]`), engine(wildcard))
		checkErrs(t, integrity, []wantErr{{key, "ISS annotations are immutable"}})
		checkErrs(t, eng, []wantErr{{key, "is a public suffix"}})
	})
	t.Run("the policy in force decides", func(t *testing.T) {
		pod := engine(`[{"host":"*.amazonaws.com"}]`)
		if _, _, errs := Default().ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil); len(errs) != 1 || !strings.Contains(errs[0].Error(), "public suffixes below") {
			t.Errorf("default policy: %v", errs)
		}
		allowing := Default()
		allowing.Network.WildcardBases.Allow = []string{"amazonaws.com"}
		eng, _, errs := allowing.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
		if len(errs) > 0 || len(eng.Egress) != 1 {
			t.Errorf("policy allowing amazonaws.com: %v, %v", eng.Egress, errs)
		}
	})
}

// testIndex builds an index from rules written as the list writes them.
func testIndex(t testing.TB, rules ...string) *SuffixIndex {
	var parsed []publicsuffix.Rule
	for _, r := range rules {
		rule, err := publicsuffix.NewRule(r)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, *rule)
	}
	return NewSuffixIndex("test", parsed)
}

// TestSuffixIndex holds the index to the list's own algorithm (publicsuffix-go's Find) for
// every rule, the names above each and names below each, and to a count of the rules below
// for a sample of names, counted the slow way.
func TestSuffixIndex(t *testing.T) {
	x := BuiltinSuffixes()
	if x.Version() != SuffixListVersion || x.Version() == "" {
		t.Fatalf("version %q, want %q", x.Version(), SuffixListVersion)
	}
	all := publicsuffix.DefaultRules()
	isSuffix := func(name string) (bool, bool) {
		rule := publicsuffix.DefaultList.Find(name, &publicsuffix.FindOptions{DefaultRule: publicsuffix.DefaultRule})
		parts := rule.Decompose(name)
		return parts[1] == "", rule.Private
	}
	names := map[string]bool{}
	for _, r := range all {
		for n := r.Value; n != ""; n = parentDomain(n) {
			names[n] = true
		}
		names["example."+r.Value] = true
		names["a.example."+r.Value] = true
	}
	for n := range names {
		want, private := isSuffix(n)
		got := x.Lookup(n)
		if got.Suffix != want || (want && got.Private != private) {
			t.Errorf("Lookup(%q) = suffix %v private %v (rule %q); the list's algorithm says suffix %v private %v", n, got.Suffix, got.Private, got.Rule, want, private)
		}
	}
	for _, n := range []string{"amazonaws.com", "com", "uk", "co.uk", "jp", "kawasaki.jp", "city.kawasaki.jp", "github.io", "pkg.dev", "dev", "core.windows.net", "appspot.com", "r.appspot.com", "compute.amazonaws.com", "example.org", "ck", "www.ck"} {
		var icann, private int
		for _, r := range all {
			under := strings.HasSuffix(r.Value, "."+n) || (r.Type == publicsuffix.WildcardType && r.Value == n)
			if !under || r.Type == publicsuffix.ExceptionType {
				continue
			}
			if r.Private {
				private++
			} else {
				icann++
			}
		}
		f := x.Lookup(n)
		if f.BelowICANN != icann || f.BelowPrivate != private {
			t.Errorf("Lookup(%q) counts %d ICANN and %d private suffixes below, the rules %d and %d", n, f.BelowICANN, f.BelowPrivate, icann, private)
		}
		if f.Below() != (f.Example != "") || (f.Example != "" && !strings.HasSuffix(f.Example, "."+n)) {
			t.Errorf("Lookup(%q) gives the example %q", n, f.Example)
		}
	}
	if f := x.Lookup("pkg.dev"); f.Suffix || f.Below() {
		t.Errorf("pkg.dev: %+v; a wildcard over it must stay admitted", f)
	}
}

// TestSuffixListVersionInDocs makes a bump of the list's module update the docs, which say
// which list is built in.
func TestSuffixListVersionInDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), SuffixListVersion) {
		t.Errorf("docs/rules.md does not name the built-in Public Suffix List, %q: update it with the module", SuffixListVersion)
	}
}

func TestEmbeddedIP(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string
	}{
		{"10.0.0.1.nip.io", "10.0.0.1"},
		{"a.b.1.2.3.4.c", "1.2.3.4"},
		{"1.2.3.example.org", ""},
		{"255.255.255.255.x.y", "255.255.255.255"},
		{"1.2.3.1000.x.y", ""},
		{"x-1-2-3-4-5.y", "1.2.3.4"},
		{"ffffffff.x", "255.255.255.255"},
		{"fffffff.x", ""},
		{"a-b-c-d-e-f-0-1.x", "a:b:c:d:e:f:0:1"},
		{"a--b.x", "a::b"},
		{"xn--abc.x", ""},
		{"xn--e1a.x", ""},
		{"g--1.x", ""},
	} {
		got := embeddedIP(strings.Split(tc.name, "."))
		want := netip.Addr{}
		if tc.want != "" {
			want = netip.MustParseAddr(tc.want)
		}
		if got != want {
			t.Errorf("embeddedIP(%q) = %v, want %v", tc.name, got, want)
		}
	}
}

// BenchmarkWildcardBase measures the check of one wildcard host against the built-in list, as a
// review pays it per wildcard entry, and the building of the index, paid once per process.
func BenchmarkWildcardBase(b *testing.B) {
	n := DefaultNetworkSection()
	for _, host := range []string{"*.pkg.dev", "*.amazonaws.com", "*.mybucket.s3.amazonaws.com"} {
		b.Run(host, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n.checkEgressHost(host)
			}
		})
	}
	b.Run("index build", func(b *testing.B) {
		rules := publicsuffix.DefaultRules()
		b.ReportAllocs()
		for b.Loop() {
			NewSuffixIndex(SuffixListVersion, rules[:])
		}
	})
}

// FuzzEgressHost feeds the host check arbitrary hosts: it never panics, and what it admits is
// written as the allowlist wants it, spells no IP address, and, for a wildcard, stands before one
// owner's domain by the list's own algorithm (publicsuffix-go's): its base is no public suffix,
// and a name below it has the base's registrable domain. A denial of a misspelt host either
// gives the spelling to write, which is admitted, or says why that spelling is denied too.
func FuzzEgressHost(f *testing.F) {
	for _, seed := range []string{"*.pkg.dev", "*.co.uk", "*.amazonaws.com", "*.CO.UK.", "169.254.169.254.nip.io", "10-0-0-1.sslip.io",
		"app-0a000001.nip.io", "fe80--1.sslip.io", "*.nip.io", "*.公司.cn", "bücher.example.org", "*.xn--55qx5d.cn", "*.city.kawasaki.jp",
		"*.x.compute.amazonaws.com", "api.github.com", "*.*.example.com", "10.0.0.1", "[::1]", "a..b", "*."} {
		f.Add(seed)
	}
	n := DefaultNetworkSection()
	f.Fuzz(func(t *testing.T, host string) {
		reason := n.checkEgressHost(host)
		canonical, spelling := canonicalHost(host)
		if reason == "" {
			if spelling != "" || canonical != host || !isASCII(host) || host != strings.ToLower(host) {
				t.Fatalf("%q admitted, but written otherwise than %q (%s)", host, canonical, spelling)
			}
			name := strings.TrimPrefix(host, "*.")
			if ip := embeddedIP(strings.Split(name, ".")); ip.IsValid() {
				t.Fatalf("%q admitted, but spells %v", host, ip)
			}
			if name != host {
				base, err := publicsuffix.Domain(name)
				if err != nil {
					t.Fatalf("wildcard %q admitted, but the list's algorithm says of its base: %v", host, err)
				}
				if below, err := publicsuffix.Domain("zz9." + name); err != nil || below != base {
					t.Fatalf("wildcard %q admitted, but a name below it has the registrable domain %q (%v), not %q", host, below, err, base)
				}
			}
			return
		}
		if spelling != "" && strings.HasPrefix(reason, spelling) {
			write := fmt.Sprintf("%s: write %q", spelling, canonical)
			if (reason == write) != (n.checkEgressHost(canonical) == "") {
				t.Fatalf("%q: %s; but %q gives %q", host, reason, canonical, n.checkEgressHost(canonical))
			}
		}
	})
}
