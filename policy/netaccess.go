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
// trailing data, IP literals, upper-case hosts and more than MaxEgressHosts hosts are errors.
// ports defaults to [443] and protocol to TCP. Every error found is returned, each one a
// *NetworkAccessError; an empty or whitespace-only value is the empty allowlist.
func ParseNetworkAccess(value string) (Allowlist, []error) {
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
		if reason := checkEgressHost(*e.Host); reason != "" {
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

// checkEgressHost returns why host is not an allowed egress host, or "" when it is.
func checkEgressHost(host string) string {
	if host == "" {
		return "must not be empty"
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return "IP literals are not allowed: name the host by its DNS name, which the FQDN policy resolves"
	}
	if strings.Contains(host, "://") || strings.ContainsAny(host, "/:") {
		return `must be a bare host name: no scheme, port or path (put ports in "ports")`
	}
	if host != strings.ToLower(host) {
		return fmt.Sprintf("must be lower case: write %q", strings.ToLower(host))
	}
	if strings.HasSuffix(host, ".") {
		return fmt.Sprintf("must not end with a dot: write %q", strings.TrimSuffix(host, "."))
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
	if strings.HasPrefix(host, "*.") {
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
