package policy

import (
	"cmp"
	"strings"
	"sync"

	"github.com/weppos/publicsuffix-go/publicsuffix"
)

// SuffixListVersion is the version of the Public Suffix List built into iss-webhook, as the
// module github.com/weppos/publicsuffix-go ships it. A bump of that module updates the list.
const SuffixListVersion = publicsuffix.ListVersion

// SuffixIndex answers, for a domain, what the Public Suffix List says of it and of the names
// below it, in both of its sections (ICANN and PRIVATE). A "*." wildcard over a public suffix,
// or over a domain with public suffixes below it, covers names that other people register
// (co.uk) or whose content other people host (amazonaws.com, with s3.amazonaws.com below it):
// such a wildcard is no specific allowance. Lookups are one or two map reads; the index is
// built once, from the whole list, so that no review walks it.
type SuffixIndex struct {
	version string
	names   map[string]*suffixEntry
}

// suffixEntry is what the list says of one name.
type suffixEntry struct {
	// normal, wildcard and exception tell which rules the list has for the name: "name",
	// "*.name" (every child of the name is a public suffix) and "!name" (the name is not one,
	// although its parent's wildcard says so).
	normal, wildcard, exception bool
	// private tells that the name's normal or wildcard rule is in the PRIVATE section.
	private bool
	// belowICANN and belowPrivate count the public suffixes strictly below the name, per
	// section; a wildcard rule counts once.
	belowICANN, belowPrivate int
	// example is one public suffix below the name: the shortest, then the first in order.
	example string
}

// SuffixFacts is what the Public Suffix List says of one domain.
type SuffixFacts struct {
	// Suffix tells that the domain is a public suffix; Rule is the rule that makes it one,
	// such as "co.uk" or "*.compute.amazonaws.com", and Private tells its section.
	Suffix  bool
	Rule    string
	Private bool
	// BelowICANN and BelowPrivate count the public suffixes below the domain in each section;
	// Example is one of them.
	BelowICANN, BelowPrivate int
	Example                  string
}

// Below tells whether the list has public suffixes below the domain.
func (f SuffixFacts) Below() bool { return f.BelowICANN+f.BelowPrivate > 0 }

// NewSuffixIndex builds the index of a list of rules, such as publicsuffix.DefaultRules().
func NewSuffixIndex(version string, rules []publicsuffix.Rule) *SuffixIndex {
	x := &SuffixIndex{version: version, names: make(map[string]*suffixEntry, len(rules)*3/2)}
	entry := func(name string) *suffixEntry {
		e := x.names[name]
		if e == nil {
			e = &suffixEntry{}
			x.names[name] = e
		}
		return e
	}
	// The order of the rules decides no answer: counts are sums, examples are chosen by rank.
	for _, r := range rules {
		if r.Value == "" {
			// The implicit rule "*": every top-level domain is a public suffix (see Lookup).
			continue
		}
		e := entry(r.Value)
		switch r.Type {
		case publicsuffix.ExceptionType:
			e.exception = true
			continue
		case publicsuffix.WildcardType:
			e.wildcard = true
		default:
			e.normal = true
		}
		e.private = e.private || r.Private
		for name := suffixAncestor(r); name != ""; name = parentDomain(name) {
			a := entry(name)
			if r.Private {
				a.belowPrivate++
			} else {
				a.belowICANN++
			}
		}
	}
	// Examples, once every count is known: a suffix with nothing below it comes first, since
	// a domain registered under it is one owner's.
	for _, r := range rules {
		if r.Value == "" || r.Type == publicsuffix.ExceptionType {
			continue
		}
		suffix, rank := r.Value, 0
		switch e := x.names[r.Value]; {
		case r.Type == publicsuffix.WildcardType:
			suffix, rank = "*."+r.Value, 2
		case e.wildcard || e.belowICANN+e.belowPrivate > 0:
			rank = 1
		}
		for name := suffixAncestor(r); name != ""; name = parentDomain(name) {
			if a := x.names[name]; a.example == "" || betterExample(rank, suffix, x.exampleRank(a.example), a.example) {
				a.example = suffix
			}
		}
	}
	return x
}

// suffixAncestor returns the first name above the public suffixes a rule makes: the parent of
// a normal rule's name, the name of a wildcard rule (whose children are the suffixes).
func suffixAncestor(r publicsuffix.Rule) string {
	if r.Type == publicsuffix.WildcardType {
		return r.Value
	}
	return parentDomain(r.Value)
}

// exampleRank ranks an example as NewSuffixIndex does: 0 for a suffix with nothing below it, 1
// for one with suffixes below it, 2 for a wildcard rule.
func (x *SuffixIndex) exampleRank(example string) int {
	if strings.HasPrefix(example, "*.") {
		return 2
	}
	if e := x.names[example]; e.wildcard || e.belowICANN+e.belowPrivate > 0 {
		return 1
	}
	return 0
}

// betterExample orders examples: by rank, then fewer labels, then by name.
func betterExample(rankA int, a string, rankB int, b string) bool {
	return cmp.Or(cmp.Compare(rankA, rankB), cmp.Compare(strings.Count(a, "."), strings.Count(b, ".")), strings.Compare(a, b)) < 0
}

// parentDomain returns name without its first label, or "" for a top-level domain.
func parentDomain(name string) string {
	_, parent, ok := strings.Cut(name, ".")
	if !ok {
		return ""
	}
	return parent
}

// BuiltinSuffixes returns the index of the Public Suffix List built into iss-webhook. It is
// built on first use and shared, read-only, by every policy: the list is data compiled into the
// binary, the same for every policy, and building it takes milliseconds that no review should pay.
var BuiltinSuffixes = sync.OnceValue(func() *SuffixIndex {
	rules := publicsuffix.DefaultRules()
	return NewSuffixIndex(SuffixListVersion, rules[:])
})

// Version is the version of the list the index was built from.
func (x *SuffixIndex) Version() string { return x.version }

// Lookup returns what the list says of a domain, given in lower case with A-labels (punycode)
// and without a trailing dot, as the list is written.
func (x *SuffixIndex) Lookup(domain string) SuffixFacts {
	var f SuffixFacts
	e := x.names[domain]
	if e != nil {
		f.BelowICANN, f.BelowPrivate, f.Example = e.belowICANN, e.belowPrivate, e.example
	}
	parent := parentDomain(domain)
	switch {
	case e != nil && e.exception:
	case e != nil && e.normal:
		f.Suffix, f.Rule, f.Private = true, domain, e.private
	case parent == "":
		// The implicit rule "*" of the list's algorithm.
		f.Suffix, f.Rule = true, "*"
	default:
		if p := x.names[parent]; p != nil && p.wildcard {
			f.Suffix, f.Rule, f.Private = true, "*."+parent, p.private
		}
	}
	return f
}

// Len is the number of names the index holds: rules and the domains above them.
func (x *SuffixIndex) Len() int { return len(x.names) }
