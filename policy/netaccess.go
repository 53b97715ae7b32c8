package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	k8sjson "sigs.k8s.io/json"
)

// MaxEgressHosts is the most hosts one network-access annotation may list (design.md 4.3).
const MaxEgressHosts = 25

// MaxEgressPorts is the most ports one entry may list, and MaxEgressPortSets the most distinct
// sets of protocol and ports an allowlist may use: each set becomes one rule of the generated
// policies, whose CRDs bound both (Cilium 40 ports a rule, ClusterNetworkPolicy 25 rules).
const (
	MaxEgressPorts    = 20
	MaxEgressPortSets = 20
)

// privateSuffixes are the DNS suffixes of names that resolve inside the cluster, the cloud
// network or the node (cloud metadata servers among them), which the egress allowlist is not for.
var privateSuffixes = []string{".internal", ".local", ".localdomain", ".localhost", ".svc", ".cluster.local", ".arpa", ".home.arpa", ".lan", ".intranet", ".corp"}

// Protocols an egress rule may name; TCP is the default.
const (
	ProtocolTCP = "TCP"
	ProtocolUDP = "UDP"
)

// EgressRule is one normalised entry of the OCS security.networkAccess block: a host (a
// lower-case FQDN, or one with a single leading "*." wildcard), its ports and protocol.
type EgressRule struct {
	Host     string  `json:"host"`
	Ports    []int32 `json:"ports"`
	Protocol string  `json:"protocol"`
}

// Wildcard tells whether the rule's host is a "*." pattern rather than one name.
func (r EgressRule) Wildcard() bool { return strings.HasPrefix(r.Host, "*.") }

// Allowlist is a normalised network-access block: one rule per host and protocol, ports sorted
// and unique, rules sorted by host then protocol. Equal allowlists are equal values and have
// equal hashes, however their annotations were written.
type Allowlist []EgressRule

// Hash identifies the allowlist in the iss.platform/egress-policy label and in the names of the
// generated policies: 16 hex digits of the SHA-256 of its canonical JSON. The empty allowlist
// (DNS only) has a hash too.
func (a Allowlist) Hash() string {
	canonical, err := json.Marshal(a)
	if err != nil {
		// An Allowlist holds only strings and integers: encoding it cannot fail.
		panic(fmt.Sprintf("encoding an allowlist: %v", err))
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:8])
}

// NetworkAccessError is a malformed network-access annotation: what is wrong, and where.
type NetworkAccessError struct {
	// Entry is the index of the offending entry, or -1 when the error is not about one entry.
	Entry int
	// Offset is the index of the byte where a JSON syntax or type error was found, or -1.
	Offset int64
	// Line and Column give Offset as a position in the annotation, both from 1.
	Line, Column int
	// Reason says what is wrong and how to fix it.
	Reason string
}

func (e *NetworkAccessError) Error() string {
	switch {
	case e.Offset >= 0:
		return fmt.Sprintf("at line %d, column %d (offset %d): %s", e.Line, e.Column, e.Offset, e.Reason)
	case e.Entry >= 0:
		return fmt.Sprintf("entry [%d]: %s", e.Entry, e.Reason)
	default:
		return e.Reason
	}
}

// networkAccessEntry is an entry as written. Pointers tell a missing field from a zero one.
type networkAccessEntry struct {
	Host     *string `json:"host"`
	Ports    []int64 `json:"ports"`
	Protocol *string `json:"protocol"`
}

// ParseNetworkAccess parses the iss.platform/network-access annotation: a JSON array of
// {"host": ..., "ports": [...], "protocol": ...}. It is strict: unknown or duplicate fields,
// trailing data, IP literals and names that embed one, upper-case hosts, wildcards that are no
// specific allowance (see checkWildcardBase) and more than MaxEgressHosts hosts are errors.
// ports defaults to [443] and protocol to TCP. Every error found is returned, each one a
// *NetworkAccessError; an empty or whitespace-only value is the empty allowlist.
func (n *NetworkSection) ParseNetworkAccess(value string) (Allowlist, []error) {
	if strings.TrimSpace(value) == "" {
		return Allowlist{}, nil
	}
	var entries []*networkAccessEntry
	strict, err := k8sjson.UnmarshalStrict([]byte(value), &entries)
	if err != nil {
		// The standard decoder reports the same fault with its offset and field.
		var again []*networkAccessEntry
		if stdErr := json.Unmarshal([]byte(value), &again); stdErr != nil {
			err = stdErr
		}
		return nil, []error{jsonError(value, err)}
	}
	var errs []error
	for _, s := range strict {
		hint := `: an entry has only "host", "ports" and "protocol"`
		if strings.HasPrefix(s.Error(), "duplicate") {
			hint = ": give each field once"
		}
		errs = append(errs, &NetworkAccessError{Entry: strictErrorEntry(s.Error()), Offset: -1, Reason: s.Error() + hint})
	}
	if entries == nil {
		return nil, append(errs, &NetworkAccessError{Entry: -1, Offset: -1, Reason: `the value must be a JSON array such as [{"host":"api.github.com","ports":[443]}], not null`})
	}

	type key struct{ host, protocol string }
	merged := map[key][]int32{}
	for i, e := range entries {
		entryErr := func(format string, args ...any) {
			errs = append(errs, &NetworkAccessError{Entry: i, Offset: -1, Reason: fmt.Sprintf(format, args...)})
		}
		if e == nil {
			entryErr(`null is not an entry: write {"host": "..."}`)
			continue
		}
		if e.Host == nil {
			entryErr(`"host" is required`)
			continue
		}
		if reason := n.checkEgressHost(*e.Host); reason != "" {
			entryErr("host %q: %s", *e.Host, reason)
		}
		protocol := ProtocolTCP
		if e.Protocol != nil {
			protocol = *e.Protocol
			if protocol != ProtocolTCP && protocol != ProtocolUDP {
				entryErr("protocol %q: must be %q or %q (default %q)", protocol, ProtocolTCP, ProtocolUDP, ProtocolTCP)
			}
		}
		ports := []int32{443}
		if e.Ports != nil {
			if len(e.Ports) == 0 {
				entryErr(`"ports" is empty: list at least one port, or leave "ports" out for [443]`)
			}
			if len(e.Ports) > MaxEgressPorts {
				entryErr("%d ports listed, at most %d are allowed: split the host's ports over fewer services", len(e.Ports), MaxEgressPorts)
			}
			ports = ports[:0]
			for _, p := range e.Ports {
				if p < 1 || p > 65535 {
					entryErr("port %d: must be from 1 to 65535", p)
					continue
				}
				ports = append(ports, int32(p))
			}
		}
		k := key{*e.Host, protocol}
		merged[k] = append(merged[k], ports...)
	}
	hosts := map[string]bool{}
	for k := range merged {
		hosts[k.host] = true
	}
	sets := map[string]bool{}
	for k, ports := range merged {
		sorted := slices.Clone(ports)
		slices.Sort(sorted)
		sets[k.protocol+fmt.Sprint(slices.Compact(sorted))] = true
	}
	if len(sets) > MaxEgressPortSets {
		errs = append(errs, &NetworkAccessError{Entry: -1, Offset: -1, Reason: fmt.Sprintf(
			"%d different sets of protocol and ports are used, at most %d are allowed: give hosts the same ports where you can", len(sets), MaxEgressPortSets)})
	}
	if len(hosts) > MaxEgressHosts {
		errs = append(errs, &NetworkAccessError{Entry: -1, Offset: -1, Reason: fmt.Sprintf(
			"%d hosts listed, at most %d are allowed: use a \"*.\" wildcard for hosts of one domain", len(hosts), MaxEgressHosts)})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	list := make(Allowlist, 0, len(merged))
	for k, ports := range merged {
		slices.Sort(ports)
		list = append(list, EgressRule{Host: k.host, Protocol: k.protocol, Ports: slices.Compact(ports)})
	}
	slices.SortFunc(list, func(a, b EgressRule) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Protocol, b.Protocol)
	})
	return list, nil
}

// jsonError turns a JSON decoding error into a NetworkAccessError with the position of the fault.
func jsonError(value string, err error) *NetworkAccessError {
	offset := int64(-1)
	reason := err.Error()
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		offset = syntaxErr.Offset
		reason = strings.TrimPrefix(reason, "json: ") + `: the value must be a JSON array such as [{"host":"api.github.com","ports":[443]}]`
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		offset = typeErr.Offset
		reason = fmt.Sprintf("%s is a JSON %s, but must be %s", describeField(typeErr.Field), typeErr.Value, describeType(typeErr.Field))
	}
	if offset < 0 {
		return &NetworkAccessError{Entry: -1, Offset: -1, Reason: reason}
	}
	// The decoder counts the bytes it read; the fault is the last of them.
	if offset > 0 {
		offset--
	}
	line, col := position(value, offset)
	return &NetworkAccessError{Entry: -1, Offset: offset, Line: line, Column: col, Reason: reason}
}

func describeField(field string) string {
	if field == "" {
		return "the value"
	}
	return strconv.Quote(field)
}

func describeType(field string) string {
	switch {
	case field == "":
		return "an array of entries"
	case strings.HasSuffix(field, "ports") || strings.Contains(field, "ports."):
		return "an array of port numbers"
	case strings.HasSuffix(field, "host"), strings.HasSuffix(field, "protocol"):
		return "a string"
	default:
		return `an object {"host": ..., "ports": [...], "protocol": ...}`
	}
}

// position converts a byte offset into a 1-based line and column.
func position(value string, offset int64) (line, col int) {
	if offset > int64(len(value)) {
		offset = int64(len(value))
	}
	before := value[:offset]
	line = strings.Count(before, "\n") + 1
	col = len(before) - strings.LastIndexByte(before, '\n')
	return line, col
}

// checkEgressHost returns why host is not an allowed egress host, or "" when it is. A host
// that is only spelled otherwise than the allowlist wants (upper case, a trailing dot, Unicode
// labels) is denied with the spelling to write, or with why that spelling is denied too.
func (n *NetworkSection) checkEgressHost(host string) string {
	if host == "" {
		return "must not be empty"
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ipLiteralReason
	}
	if strings.Contains(host, "://") || strings.ContainsAny(host, "/:") {
		return `must be a bare host name: no scheme, port or path (put ports in "ports")`
	}
	canonical, spelling := canonicalHost(host)
	reason := n.checkCanonicalHost(canonical)
	switch {
	case spelling == "":
		return reason
	case reason == "":
		return fmt.Sprintf("%s: write %q", spelling, canonical)
	default:
		return fmt.Sprintf("%s, and %q is not allowed either: %s", spelling, canonical, reason)
	}
}

const ipLiteralReason = "IP literals are not allowed: name the host by its DNS name, which the FQDN policy resolves"

// canonicalHost returns the host as the allowlist wants it written, lower case with A-labels
// (punycode) and no trailing dot, and what differs, or "" when nothing does. Unicode labels are
// converted as a resolver looks them up (IDNA2008, UTS #46); a host that cannot be converted is
// left for the label check to deny.
func canonicalHost(host string) (canonical, spelling string) {
	var faults []string
	h := host
	if !isASCII(h) {
		prefix, name := "", h
		if strings.HasPrefix(name, "*.") {
			prefix, name = "*.", name[2:]
		}
		if ascii, err := idna.Lookup.ToASCII(name); err == nil && isASCII(ascii) {
			faults = append(faults, "must be written with A-labels (punycode), as DNS carries it")
			h = prefix + ascii
		}
	}
	if lower := strings.ToLower(h); lower != h && isASCII(h) {
		faults = append(faults, "must be lower case")
		h = lower
	}
	if trimmed := strings.TrimRight(h, "."); trimmed != h {
		faults = append(faults, "must not end with a dot")
		h = trimmed
	}
	return h, strings.Join(faults, ", ")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// checkCanonicalHost returns why a host spelled as canonicalHost wants is not allowed, or "".
func (n *NetworkSection) checkCanonicalHost(host string) string {
	if _, err := netip.ParseAddr(host); err == nil {
		return ipLiteralReason
	}
	for _, suffix := range privateSuffixes {
		if strings.HasSuffix(host, suffix) {
			return fmt.Sprintf("names under %q resolve inside the cluster, the cloud network or the node (metadata servers among them), which the egress allowlist is not for", suffix)
		}
	}
	if strings.HasPrefix(host, "localhost.") {
		return "localhost is not an egress destination"
	}
	name := host
	wildcard := strings.HasPrefix(host, "*.")
	if wildcard {
		name = host[2:]
		if strings.Count(name, ".") < 1 {
			return "a wildcard must stand before a domain of at least two labels, such as \"*.pkg.dev\""
		}
	}
	if strings.Contains(name, "*") {
		return `only one "*." at the start of the host is allowed`
	}
	if len(name) > 253 {
		return "must be at most 253 characters"
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return "must be a fully qualified domain name with at least two labels, such as \"api.github.com\""
	}
	for _, l := range labels {
		if !isDNSLabel(l) {
			return fmt.Sprintf("label %q must be 1 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit", l)
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "the last label must not be all digits (IP literals are not allowed)"
	}
	if ip := embeddedIP(labels); ip.IsValid() {
		return fmt.Sprintf("embeds the IP address %s in a form that wildcard DNS services such as nip.io and sslip.io resolve to that address: an IP literal in disguise, which is not allowed; name the host by its own DNS name", ip)
	}
	if wildcard {
		return n.checkWildcardBase(name)
	}
	return ""
}

func isDNSLabel(l string) bool {
	if len(l) < 1 || len(l) > 63 {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(l)-1) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// strictErrorEntry returns the entry index at the start of a strict decoding error's field path,
// such as 2 for `unknown field "[2].hots"`, or -1.
func strictErrorEntry(msg string) int {
	_, rest, ok := strings.Cut(msg, `"[`)
	if !ok {
		return -1
	}
	digits, _, ok := strings.Cut(rest, "]")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return -1
	}
	return n
}

// embeddedIP returns the IP address that a name's labels spell in one of the forms wildcard DNS
// services (nip.io, sslip.io and their like) resolve to that very address, or the zero Addr:
//
//   - dotted: four consecutive labels that are decimal numbers 0-255 (10.0.0.1.nip.io,
//     app.169.254.169.254.sslip.io);
//   - dashed: four consecutive dash-separated parts of a label that are such numbers
//     (10-0-0-1.nip.io, app-10-0-0-1.nip.io);
//   - hexadecimal: a label, or a dash-separated part of one, of exactly eight hex digits
//     (0a000001.nip.io, app-a9fea9fe.nip.io);
//   - IPv6 with dashes for colons: a label, or a run of it between dashes, that reads as an
//     IPv6 address once its dashes are colons (fe80--1.sslip.io, www-2001-db8--1.sslip.io).
//
// Such a name is an IP literal in another spelling, chosen by whoever writes it. Names that
// resolve to an address by other means are the generated policies' private ranges to stop.
func embeddedIP(labels []string) netip.Addr {
	for i := 0; i+4 <= len(labels); i++ {
		if ip, ok := octets(labels[i : i+4]); ok {
			return ip
		}
	}
	for _, l := range labels {
		parts := strings.Split(l, "-")
		for i := 0; i+4 <= len(parts); i++ {
			if ip, ok := octets(parts[i : i+4]); ok {
				return ip
			}
		}
		for _, p := range parts {
			if b, err := hex.DecodeString(p); err == nil && len(b) == 4 {
				return netip.AddrFrom4([4]byte(b))
			}
		}
		if ip := dashedIPv6(l); ip.IsValid() {
			return ip
		}
	}
	return netip.Addr{}
}

// octets reads four decimal numbers 0-255 of one to three digits as an IPv4 address.
func octets(parts []string) (netip.Addr, bool) {
	var b [4]byte
	for i, p := range parts {
		if len(p) < 1 || len(p) > 3 || !allDigits(p) {
			return netip.Addr{}, false
		}
		v, _ := strconv.Atoi(p)
		if v > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

// dashedIPv6 returns the IPv6 address that a run of a label spells with dashes for colons: a
// run starts at the label's start or after a dash and ends at its end or before a dash, as the
// services that resolve such names delimit it.
func dashedIPv6(label string) netip.Addr {
	if strings.Count(label, "-") < 2 {
		return netip.Addr{}
	}
	starts, ends := []int{0}, []int{}
	for i := 0; i < len(label); i++ {
		if label[i] == '-' {
			starts = append(starts, i+1)
			ends = append(ends, i)
		}
	}
	ends = append(ends, len(label))
	for _, s := range starts {
		for _, e := range ends {
			// The longest IPv6 address without dots is 39 characters.
			if e-s < 2 || e-s > 39 {
				continue
			}
			run := label[s:e]
			if strings.Count(run, "-") < 2 || !isHexOrDash(run) {
				continue
			}
			if ip, err := netip.ParseAddr(strings.ReplaceAll(run, "-", ":")); err == nil && ip.Is6() {
				return ip
			}
		}
	}
	return netip.Addr{}
}

func isHexOrDash(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

// WildcardBasePolicy is what the policy adds to the Public Suffix List check of the bases of
// "*." wildcards (the domain after "*."). Both lists hold lower-case domains; an entry covers
// itself and every domain below it, and Deny wins over Allow.
type WildcardBasePolicy struct {
	// Allow are bases admitted although the Public Suffix List has them as a public suffix or
	// has public suffixes below them. The other host checks still apply.
	Allow []string
	// Deny are bases denied although the list does not object to them: wildcard DNS services
	// whose names resolve to any address, by default.
	Deny []string
}

// DefaultWildcardBaseDeny returns the bases the default policy denies besides the Public Suffix
// List's: wildcard DNS services whose names resolve to the address they spell (10.0.0.1.nip.io)
// or to the loopback address, so that a wildcard over them allows any address, the metadata
// server's among them.
func DefaultWildcardBaseDeny() []string {
	return []string{"nip.io", "sslip.io", "xip.io", "traefik.me", "localtest.me", "lvh.me", "vcap.me", "localhost.direct"}
}

// coveredBy returns the entry of list that is domain or a domain above it, or "".
func coveredBy(domain string, list []string) string {
	for _, d := range list {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return d
		}
	}
	return ""
}

// checkWildcardBase returns why a wildcard's base (lower case, A-labels) is denied, or "". A
// wildcard is a specific allowance only when one owner has every name below its base: the base
// is no public suffix, and no public suffix lies below it, in either section of the Public
// Suffix List. So "*.co.uk" (a suffix) and "*.amazonaws.com" (s3.amazonaws.com and thousands
// more below it, in the private section) are denied, "*.pkg.dev" is admitted.
func (n *NetworkSection) checkWildcardBase(base string) string {
	if d := coveredBy(base, n.WildcardBases.Deny); d != "" {
		return fmt.Sprintf("the policy denies wildcards over %q and the domains below it (spec.network.wildcardBases.deny): list the hosts you need by name", d)
	}
	if coveredBy(base, n.WildcardBases.Allow) != "" {
		return ""
	}
	suffixes := n.Suffixes
	if suffixes == nil {
		suffixes = BuiltinSuffixes()
	}
	f := suffixes.Lookup(base)
	if !f.Suffix && !f.Below() {
		return ""
	}
	var why, instead string
	if f.Suffix {
		why = fmt.Sprintf("%q is a public suffix (rule %q in the %s section of the Public Suffix List)", base, f.Rule, section(f.Private))
		instead = "example." + base
	} else {
		why = fmt.Sprintf("the Public Suffix List has public suffixes below %q (%s), such as %q", base, countBelow(f), f.Example)
		if !strings.HasPrefix(f.Example, "*.") {
			instead = "example." + f.Example
		}
	}
	fix := "list the hosts you need by name"
	if g := suffixes.Lookup(instead); instead != "" && !g.Suffix && !g.Below() {
		fix = fmt.Sprintf("list the hosts you need by name, or put the wildcard before one owner's domain, such as %q", "*."+instead)
	}
	return fmt.Sprintf("%s: the names below it belong to many owners, so a wildcard over it is no specific allowance; %s (the platform's admins can allow the base in the ISSPolicy's spec.network.wildcardBases.allow)", why, fix)
}

func section(private bool) string {
	if private {
		return "private"
	}
	return "ICANN"
}

// countBelow says how many public suffixes lie below a domain, by section.
func countBelow(f SuffixFacts) string {
	var parts []string
	if f.BelowICANN > 0 {
		parts = append(parts, fmt.Sprintf("%d in its ICANN section", f.BelowICANN))
	}
	if f.BelowPrivate > 0 {
		parts = append(parts, fmt.Sprintf("%d in its private section", f.BelowPrivate))
	}
	return strings.Join(parts, " and ")
}
