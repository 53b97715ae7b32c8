package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// BuildRecord is what iss-webhook keeps of a Temporal build: the code that its build id stands
// for in a namespace, from the first Deployment admitted with it. A build id stands for exactly
// one code in its namespace, across Deployments and over time, for as long as the record is kept
// (the policy's temporalWorkers.buildRecordRetention after the last Deployment or ReplicaSet of
// the build is gone).
type BuildRecord struct {
	// Namespace and BuildID name the build.
	Namespace, BuildID string
	// CodeHash is the hash of the worker code (WorkerCodeHash).
	CodeHash string
	// Code is the worker code itself (WorkerCodeJSON), so that a denial can name the fields that
	// differ; empty when it was too large to keep.
	Code []byte
	// Workload is the name of the Deployment the build was first recorded from.
	Workload string
	// Recorded is when the record was written; zero in a record still to be written.
	Recorded time.Time
}

// BuildRecordWrite is a record the adapter makes exist during admission, before the Deployment is
// admitted, unless the request is a dry run.
type BuildRecordWrite struct {
	Record BuildRecord
	// Judge tells that a record of other code denies the Deployment (under the temporalWorkers
	// rules' mode): a Deployment created, or becoming a worker. On other updates the change is
	// judged instead, and a record is only written where none is.
	Judge bool
}

// BuildRecordConflict is the error of a record write that found the build recorded with other
// code; its message says what to do.
type BuildRecordConflict struct {
	Message string
}

func (c *BuildRecordConflict) Error() string { return c.Message }

// BuildRecordName returns the name of the record of a build in a namespace: deterministic, so that
// two replicas that write the record of one build at once write one object, and the API server
// admits only the first (create-if-absent).
func BuildRecordName(namespace, buildID string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + buildID))
	return BuildRecordNamePrefix + hex.EncodeToString(sum[:20])
}

// BuildRecordNamePrefix starts the name of every build record.
const BuildRecordNamePrefix = "iss-build-"

// LabelBuildNamespace is the label of a build record that names the namespace of its build; it
// marks the ConfigMaps that are build records.
const LabelBuildNamespace = Prefix + "build-namespace"
