// Package buildrecord keeps the records of Temporal builds' code (ISS-001 section 5): for each
// build id of a namespace, a ConfigMap in iss-webhook's own namespace that holds the hash of the
// worker code (policy.WorkerCode) of the first Deployment admitted with it. The Store writes a
// record during admission, before the Deployment is admitted, with create-if-absent semantics
// on a deterministic name, so that of two concurrent creates of one build with other code only
// one passes; it reads records from the informer cache on the admission path. The Collector
// deletes a record once no Deployment, ReplicaSet or pod of its build has been left for the
// policy's retention.
package buildrecord
