// Package policy holds the rules of the Infrastructure & Secrets Standard (ISS-001) as pure Go:
// the names of the ISS labels and annotations, the built-in default policy, and the checks that
// both the admission webhook and issctl run. It imports no HTTP or admission code, so that every
// caller evaluates an object with the very same rules.
package policy
