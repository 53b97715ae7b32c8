package buildrecord

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/iss-platform/iss-webhook/policy"
)

// Collector deletes the build records whose build has been gone for the policy's retention: no
// Deployment or ReplicaSet of it in the cache, and, asked of the API server itself before the
// delete, no Deployment, ReplicaSet or pod. Records of builds in use are marked used now and
// then, so that their retention starts when the build's last object goes, also across
// restarts. It runs on the elected leader only.
type Collector struct {
	client    client.Client
	apiReader client.Reader
	cache     client.Reader
	namespace string
	policies  policy.Provider
	now       func() time.Time
}

// NewCollector returns a collector of the records in namespace that reads them and the
// metadata of builds' Deployments and ReplicaSets from cache, checks a build once more through
// apiReader (uncached) before deleting its record, and writes with c.
func NewCollector(c client.Client, apiReader, cache client.Reader, namespace string, policies policy.Provider) *Collector {
	return &Collector{client: c, apiReader: apiReader, cache: cache, namespace: namespace, policies: policies, now: time.Now}
}

// CollectInterval is how often the collector makes a pass: a hundredth of the retention, at
// least every 10 seconds and at most every 10 minutes.
func CollectInterval(retention time.Duration) time.Duration {
	return min(max(retention/100, 10*time.Second), 10*time.Minute)
}

// refreshInterval is how long a record of a build in use goes before it is marked used again: a
// tenth of the retention, at most an hour, so that a record is deleted at most that much later
// than its retention says.
func refreshInterval(retention time.Duration) time.Duration { return min(retention/10, time.Hour) }

// NeedLeaderElection implements manager.LeaderElectionRunnable: one replica collects.
func (c *Collector) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable: it collects until ctx ends.
func (c *Collector) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("build-record-collector")
	for {
		if err := c.Collect(ctx); err != nil {
			log.Error(err, "collecting build records")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(CollectInterval(c.policies.Current().TemporalWorkers.BuildRecordRetention)):
		}
	}
}

// Collect makes one pass.
func (c *Collector) Collect(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("build-record-collector")
	retention := c.policies.Current().TemporalWorkers.BuildRecordRetention
	records := &corev1.ConfigMapList{}
	if err := c.cache.List(ctx, records, client.InNamespace(c.namespace), client.MatchingLabelsSelector{Selector: RecordSelector()}); err != nil {
		return fmt.Errorf("listing build records: %w", err)
	}
	inUse := map[string]bool{}
	for _, k := range []*metadataKind{deployments, replicaSets} {
		list := metadataList(k.gvk)
		if err := c.cache.List(ctx, list, client.MatchingLabelsSelector{Selector: BuildSelector()}); err != nil {
			return fmt.Errorf("listing the %s of builds: %w", k.plural, err)
		}
		for _, o := range list.Items {
			inUse[o.Namespace+"/"+o.Labels[policy.LabelBuildID]] = true
		}
	}
	now := c.now()
	for i := range records.Items {
		cm := &records.Items[i]
		rec, err := Record(cm)
		if err != nil {
			log.Info("skipping a ConfigMap that is labelled as a build record but is none", "error", err.Error())
			continue
		}
		idle := now.Sub(LastUsed(cm))
		if inUse[rec.Namespace+"/"+rec.BuildID] {
			if idle >= refreshInterval(retention) {
				c.touch(ctx, cm, now)
			}
			continue
		}
		if idle < retention {
			continue
		}
		n, err := c.liveObjects(ctx, rec)
		if err != nil {
			log.Error(err, "asking whether a build is gone", "namespace", rec.Namespace, "buildID", rec.BuildID)
			continue
		}
		if n > 0 {
			// Objects the cache does not hold (pods left by an orphaning delete): still in use.
			c.touch(ctx, cm, now)
			continue
		}
		// The preconditions fail if an admission marked the record used since the cache saw it.
		uid, version := cm.UID, cm.ResourceVersion
		if err := c.client.Delete(ctx, cm, client.Preconditions{UID: &uid, ResourceVersion: &version}); err != nil && !apierrors.IsNotFound(err) {
			log.Error(err, "deleting a build record", "record", client.ObjectKeyFromObject(cm))
			continue
		}
		log.Info("deleted the record of a build that is gone", "namespace", rec.Namespace, "buildID", rec.BuildID, "record", cm.Name, "idleFor", idle.Round(time.Second).String())
	}
	return nil
}

// liveObjects asks the API server for the Deployments, ReplicaSets and pods of a build, at most
// one of each.
func (c *Collector) liveObjects(ctx context.Context, rec *policy.BuildRecord) (int, error) {
	n := 0
	for _, k := range []*metadataKind{deployments, replicaSets, pods} {
		list := metadataList(k.gvk)
		if err := c.apiReader.List(ctx, list, client.InNamespace(rec.Namespace), client.MatchingLabels{policy.LabelBuildID: rec.BuildID}, client.Limit(1)); err != nil {
			return 0, fmt.Errorf("listing %s: %w", k.plural, err)
		}
		n += len(list.Items)
	}
	return n, nil
}

// touch marks a record used now; a conflict (an admission marked it first) is left for the next
// pass.
func (c *Collector) touch(ctx context.Context, cm *corev1.ConfigMap, now time.Time) {
	if err := c.client.Update(ctx, touched(cm, now), client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		logf.FromContext(ctx).WithName("build-record-collector").Error(err, "marking a build record used", "record", client.ObjectKeyFromObject(cm))
	}
}
