// Package reload keeps the policy in force equal to the cluster's ISSPolicy "default": a change
// applies to the next review, without restart; an invalid object is reported in its status and
// the last good policy stays in force; without an object the built-in default is enforced.
package reload

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/iss-platform/iss-webhook/internal/promreg"
	"github.com/iss-platform/iss-webhook/policy"
	"github.com/iss-platform/iss-webhook/policy/v1alpha1"
)

// Reconciler loads the ISSPolicy into the holder the webhook's handlers read, and reports in
// the object's status whether it is enforced. Every replica runs it, since every replica
// enforces; they write the same status, so a second write finds nothing to change.
type Reconciler struct {
	client client.Client
	holder *policy.Holder
	loaded atomic.Bool
	ready  prometheus.Gauge
}

// New returns a reconciler that reads ISSPolicies with c (an informer-backed client) and sets
// the policy in holder. It registers the gauge iss_policy_ready with reg.
func New(c client.Client, holder *policy.Holder, reg prometheus.Registerer) (*Reconciler, error) {
	ready, err := promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "iss_policy_ready",
		Help: "1 when iss-webhook enforces the current ISSPolicy (or the built-in default without one), 0 when the ISSPolicy is invalid and the last good policy stays in force.",
	}))
	if err != nil {
		return nil, err
	}
	return &Reconciler{client: c, holder: holder, ready: ready}, nil
}

// SetupWithManager registers the reconciler, and a first load once the caches have synced, with
// mgr. Neither waits for leader election.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	if err := mgr.Add(&initialLoad{r: r}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("isspolicy").
		For(&v1alpha1.ISSPolicy{}).
		// SkipNameValidation: the name is unique per manager, but a process may run more than
		// one manager in turn (the binary's own tests do), which the global check refuses.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), MaxConcurrentReconciles: 1, SkipNameValidation: ptr.To(true)}).
		Complete(r)
}

// Loaded tells whether the policy has been read once. The webhook reports ready only then: a
// review before it would be judged by the built-in default, which may be laxer than the
// cluster's policy.
func (r *Reconciler) Loaded() bool { return r.loaded.Load() }

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	if req.Name != v1alpha1.PolicyName {
		// The CRD admits no other name; an object from before that rule is ignored.
		return ctrl.Result{}, nil
	}
	obj := &v1alpha1.ISSPolicy{}
	if err := r.client.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, obj); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		r.holder.Set(policy.Default())
		r.ready.Set(1)
		r.loaded.Store(true)
		log.Info("no ISSPolicy named default: enforcing the built-in default")
		return ctrl.Result{}, nil
	}
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, ObservedGeneration: obj.Generation}
	before := obj.Status.DeepCopy()
	p, errs := policy.FromISSPolicy(&obj.Spec)
	if len(errs) > 0 {
		// The last good spec, as the status records it: the same for every replica, and for one
		// that starts while the spec is invalid.
		good, kept := policy.Default(), "the built-in default"
		if last := obj.Status.EnforcedSpec; last != nil {
			if p, lastErrs := policy.FromISSPolicy(last); len(lastErrs) == 0 {
				good, kept = p, fmt.Sprintf("generation %d", obj.Status.EnforcedGeneration)
			}
		}
		r.holder.Set(good)
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonInvalid
		cond.Message = fmt.Sprintf("the last good policy stays in force (%s): %v", kept, errs.ToAggregate())
		r.ready.Set(0)
		log.Info("ISSPolicy is invalid; the last good policy stays in force", "generation", obj.Generation, "kept", kept, "error", errs.ToAggregate().Error())
	} else {
		r.holder.Set(p)
		r.ready.Set(1)
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonEnforced
		cond.Message = fmt.Sprintf("iss-webhook enforces generation %d", obj.Generation)
		obj.Status.EnforcedGeneration, obj.Status.EnforcedSpec = obj.Generation, obj.Spec.DeepCopy()
		log.Info("enforcing ISSPolicy", "generation", obj.Generation)
	}
	r.loaded.Store(true)

	obj.Status.ObservedGeneration = obj.Generation
	apimeta.SetStatusCondition(&obj.Status.Conditions, cond)
	if before.ObservedGeneration == obj.Generation && before.EnforcedGeneration == obj.Status.EnforcedGeneration && sameCondition(before.Conditions, cond) {
		return ctrl.Result{}, nil
	}
	if err := r.client.Status().Update(ctx, obj); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, fmt.Errorf("writing the ISSPolicy status: %w", err)
	}
	return ctrl.Result{}, nil
}

// sameCondition tells whether conds already hold cond with the same reason, message and generation.
func sameCondition(conds []metav1.Condition, cond metav1.Condition) bool {
	have := apimeta.FindStatusCondition(conds, cond.Type)
	return have != nil && have.Status == cond.Status && have.Reason == cond.Reason && have.Message == cond.Message && have.ObservedGeneration == cond.ObservedGeneration
}

// initialLoad reads the policy once the caches have synced, so that a cluster without an
// ISSPolicy, which sends the controller no event, is known to have none.
type initialLoad struct{ r *Reconciler }

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica loads.
func (*initialLoad) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable. It tries until the policy is loaded, logging failures; the
// webhook stays not ready meanwhile.
func (l *initialLoad) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("isspolicy")
	for !l.r.Loaded() {
		_, err := l.r.Reconcile(logf.IntoContext(ctx, log), ctrl.Request{NamespacedName: types.NamespacedName{Name: v1alpha1.PolicyName}})
		if err == nil {
			return nil
		}
		log.Error(err, "loading the ISSPolicy; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	return nil
}
