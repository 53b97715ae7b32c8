// Package promreg registers Prometheus collectors so that a second registration of the same
// collector in one process (a second webhook, or a test that starts the binary again) shares
// the first one instead of failing.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it; when reg already has an equal collector, it
// returns that one, so that both count into the same series.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var already prometheus.AlreadyRegisteredError
	if !errors.As(err, &already) {
		return c, err
	}
	existing, ok := already.ExistingCollector.(T)
	if !ok {
		return c, fmt.Errorf("a collector of another type is registered under the same name: %T", already.ExistingCollector)
	}
	return existing, nil
}
