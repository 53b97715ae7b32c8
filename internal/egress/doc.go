// Package egress writes and collects the egress policies that the webhook generates for engine
// pods (design.md 4.3): the writer applies them during admission, reading the informer cache
// first so that a pod whose policies already exist costs no API call; the collector deletes
// those that no pod has selected for the policy's grace period.
package egress
