package cluster

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// The iptables commands of both families: the kubelet, kube-proxy and kube-router write rules in
// each.
var iptablesCommands = []string{"iptables", "ip6tables"}

// The tables the cluster's components write to.
var iptablesTables = []string{"filter", "nat", "mangle", "raw"}

// clusterChain tells whether a chain is one the cluster's components create: the kubelet's,
// kube-proxy's and kube-router's are all named KUBE-*, and CNI's portmap chains CNI-*; this
// cluster's own is mangleChain.
func clusterChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-") || name == mangleChain
}

// existingClusterChains lists the chains that clusterChain claims, as "command table chain":
// before the cluster starts there must be none, or another cluster's components run here.
func existingClusterChains(ctx context.Context) []string {
	var out []string
	for _, cmd := range iptablesCommands {
		for _, table := range iptablesTables {
			rules, err := exec.CommandContext(ctx, cmd, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(rules), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "-N" && clusterChain(f[1]) {
					out = append(out, cmd+" "+table+" "+f[1])
				}
			}
		}
	}
	return out
}

// removeClusterChains removes every rule that jumps to a cluster chain from the other chains,
// then the cluster chains themselves, in both families and every table. The components' own
// cleanup (kube-proxy --cleanup, kube-router --cleanup-config) leaves some behind, and the
// kubelet has none.
func removeClusterChains(ctx context.Context) error {
	var errs []error
	for _, cmd := range iptablesCommands {
		if _, err := exec.LookPath(cmd); err != nil {
			continue
		}
		for _, table := range iptablesTables {
			rules, err := exec.CommandContext(ctx, cmd, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue // the table does not exist in this family
			}
			var chains []string
			for _, line := range strings.Split(string(rules), "\n") {
				args := splitRule(line)
				switch {
				case len(args) == 2 && args[0] == "-N" && clusterChain(args[1]):
					chains = append(chains, args[1])
				case len(args) > 2 && args[0] == "-A" && !clusterChain(args[1]) && jumpsToClusterChain(args):
					del := append([]string{"-w", "-t", table, "-D"}, args[1:]...)
					if out, err := exec.CommandContext(ctx, cmd, del...).CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s %s: %v: %s", cmd, strings.Join(del, " "), err, strings.TrimSpace(string(out))))
					}
				}
			}
			for _, op := range []string{"-F", "-X"} {
				for _, chain := range chains {
					if out, err := exec.CommandContext(ctx, cmd, "-w", "-t", table, op, chain).CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s -t %s %s %s: %v: %s", cmd, table, op, chain, err, strings.TrimSpace(string(out))))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// jumpsToClusterChain tells whether a rule's target (-j or -g) is a cluster chain.
func jumpsToClusterChain(args []string) bool {
	for i, a := range args[:len(args)-1] {
		if (a == "-j" || a == "-g" || a == "--jump" || a == "--goto") && clusterChain(args[i+1]) {
			return true
		}
	}
	return false
}

// splitRule splits a line of iptables -S into its arguments: words, and double-quoted strings
// (comments) with backslash escapes.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, escaped, inWord := false, false, false
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && inQuote:
			escaped = true
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case (r == ' ' || r == '\t') && !inQuote:
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return slices.Clip(args)
}
