// Command coredns is CoreDNS with only the plugins the single-node cluster's Corefile uses,
// built from the pinned github.com/coredns/coredns module: the full build carries every
// cloud provider's SDK, and takes several times as long on 2 cores.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins of the Corefile, registered by their packages.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives are the plugins in the order of CoreDNS's plugin.cfg, which is the order in which
// a query passes them.
var directives = []string{"ready", "health", "errors", "cache", "hosts", "kubernetes"}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
