package egress

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/iss-platform/iss-webhook/policy"
)

// Collector keeps the generated egress objects in step with the engine pods. On every pass it
// deletes the objects that no running pod has selected for the policy's grace period, and writes
// again the objects of running engines that lack them (a trusted identity deleted one, or one was
// collected in the instant between a pod's admission and its creation). It runs on the elected
// leader only.
type Collector struct {
	client    client.Client
	apiReader client.Reader
	cache     client.Reader
	writer    *Writer
	policies  policy.Provider
	now       func() time.Time

	// unselectedSince remembers when each object was first seen selecting no pod. It is lost on
	// restart, which only restarts the grace period.
	unselectedSince map[string]time.Time
}

// NewCollector returns a collector that reads pods and generated objects from cache, checks
// pods once more through apiReader (uncached) before deleting, and deletes and writes with c and
// writer, as often as the policy's grace period asks (see CollectInterval).
func NewCollector(c client.Client, apiReader, cache client.Reader, writer *Writer, policies policy.Provider) *Collector {
	return &Collector{client: c, apiReader: apiReader, cache: cache, writer: writer, policies: policies,
		now: time.Now, unselectedSince: map[string]time.Time{}}
}

// CollectInterval is how often the collector looks for unselected policies: a fifth of the
// grace period, at least every second and at most every minute.
func CollectInterval(grace time.Duration) time.Duration {
	return min(max(grace/5, time.Second), time.Minute)
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: one replica collects.
func (c *Collector) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable: it collects until ctx ends, at the interval of the policy
// in force at each pass.
func (c *Collector) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("egress-collector")
	for {
		if err := c.Collect(ctx); err != nil {
			log.Error(err, "collecting generated egress policies")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(CollectInterval(c.policies.Current().Network.GCGracePeriod)):
		}
	}
}

// selection identifies the pods a generated object selects: a namespace and an allowlist hash.
type selection struct{ namespace, hash string }

// Collect makes one pass.
func (c *Collector) Collect(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("egress-collector")
	pol := c.policies.Current()
	pods := &corev1.PodList{}
	if err := c.cache.List(ctx, pods, client.HasLabels{policy.LabelEgressPolicy}); err != nil {
		return fmt.Errorf("listing engine pods: %w", err)
	}
	selected := map[selection]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !policy.PodRunning(pod) {
			continue
		}
		selected[selection{pod.Namespace, pod.Labels[policy.LabelEgressPolicy]}] = true
		if err := c.heal(ctx, pod, pol); err != nil {
			log.Error(err, "writing missing egress policies", "pod", client.ObjectKeyFromObject(pod))
		}
	}

	now := c.now()
	seen := map[string]bool{}
	for _, gvk := range c.writer.Served().GVKs() {
		list := NewList(gvk)
		if err := c.cache.List(ctx, list, client.MatchingLabels{policy.LabelManagedBy: policy.ManagedByValue}); err != nil {
			return fmt.Errorf("listing generated %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			key := gvk.Kind + "/" + client.ObjectKeyFromObject(obj).String()
			seen[key] = true
			sel := selection{obj.GetNamespace(), obj.GetLabels()[policy.LabelEgressPolicy]}
			if sel.namespace == "" {
				sel.namespace = obj.GetLabels()[policy.LabelEgressNamespace]
			}
			if selected[sel] {
				delete(c.unselectedSince, key)
				continue
			}
			since, ok := c.unselectedSince[key]
			if !ok {
				c.unselectedSince[key] = now
				continue
			}
			// An engine admitted with the object since then is about to be created: wait.
			if used := LastUsed(obj); used.After(since) {
				since = used
			}
			if now.Sub(since) < pol.Network.GCGracePeriod {
				continue
			}
			if err := c.deleteUnselected(ctx, gvk, sel, obj); err != nil {
				log.Error(err, "deleting unselected egress policy", "kind", gvk.Kind, "object", client.ObjectKeyFromObject(obj))
				continue
			}
			delete(c.unselectedSince, key)
			log.Info("deleted egress policy that no pod selected", "kind", gvk.Kind, "object", client.ObjectKeyFromObject(obj), "unselectedFor", now.Sub(since).Round(time.Second).String())
		}
	}
	for key := range c.unselectedSince {
		if !seen[key] {
			delete(c.unselectedSince, key)
		}
	}
	return nil
}

// deleteUnselected deletes obj after asking the API server itself, not the cache, that no pod
// selects it, to narrow the window in which a pod just created is not yet in the cache. Since
// every admission with the object marks it used (see Writer), the grace period also starts
// again for a pod that is being admitted.
func (c *Collector) deleteUnselected(ctx context.Context, gvk schema.GroupVersionKind, sel selection, obj client.Object) error {
	pods := &corev1.PodList{}
	if err := c.apiReader.List(ctx, pods, client.InNamespace(sel.namespace), client.MatchingLabels{policy.LabelEgressPolicy: sel.hash}); err != nil {
		return err
	}
	for i := range pods.Items {
		if policy.PodRunning(&pods.Items[i]) {
			return nil
		}
	}
	// The preconditions fail if an admission marked the object used since the cache saw it.
	uid, version := obj.GetUID(), obj.GetResourceVersion()
	err := c.client.Delete(ctx, obj, client.Preconditions{UID: &uid, ResourceVersion: &version})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// heal writes the egress objects of a running engine pod that lacks any, from its annotations.
func (c *Collector) heal(ctx context.Context, pod *corev1.Pod, pol *policy.Policy) error {
	eng, ok, _ := pol.ReviewEnginePod(&pod.ObjectMeta, &pod.Spec, nil)
	if !ok || eng.EgressHash != pod.Labels[policy.LabelEgressPolicy] {
		// Not an engine any more under this policy, or the label does not match its
		// annotation (admitted by a trusted identity): nothing to derive the objects from.
		return nil
	}
	_, err := c.writer.Ensure(ctx, pod.Namespace, eng, pol)
	return err
}
