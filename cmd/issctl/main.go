// Command issctl evaluates manifests against the Infrastructure & Secrets Standard offline, with
// the very rules and mutators the iss-webhook runs, audits a live cluster against the policy in
// force, and prints the built-in default policy.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Exit codes: everything conforms, something violates the standard, the command could not run.
const (
	exitConform   = 0
	exitViolation = 1
	exitUsage     = 2
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, `Usage: issctl COMMAND [flags]

Commands:
  check            evaluate manifests offline with the rules and mutators of iss-webhook
  audit            list the objects of a live cluster that violate the policy in force
  policy default   print the built-in default policy as an ISSPolicy
  install          install iss-webhook on a cluster and wait until it answers
  uninstall        remove iss-webhook from a cluster, webhook configurations first

Run "issctl COMMAND --help" for the flags of a command.
`)
		if len(args) == 0 {
			return exitUsage
		}
		return exitConform
	}
	switch args[0] {
	case "check":
		return check(ctx, args[1:], stdin, stdout, stderr)
	case "audit":
		return audit(ctx, args[1:], stdout, stderr)
	case "policy":
		return policyCommand(args[1:], stdout, stderr)
	case "install":
		return install(ctx, args[1:], stdout, stderr)
	case "uninstall":
		return uninstall(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "issctl: unknown command %q; see issctl --help\n", args[0])
		return exitUsage
	}
}
