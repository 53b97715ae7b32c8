// Command iss-pause is the pod sandbox ("pause") image of the local single-node cluster: it holds
// the pod's namespaces and does nothing else. It waits for SIGINT or SIGTERM and exits 0; run as
// PID 1 of the pod's PID namespace (shareProcessNamespace), it also reaps the zombies that are
// reparented to it, on every SIGCHLD.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	pause(subscribe(os.Getpid() == 1), syscall.Wait4)
	os.Exit(0)
}

// subscribe asks for the signals pause handles: SIGINT and SIGTERM, and SIGCHLD when reaping,
// which only PID 1 needs: only it inherits orphans.
func subscribe(reaping bool) <-chan os.Signal {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	if reaping {
		signal.Notify(signals, syscall.SIGCHLD)
	}
	return signals
}

// pause returns on the first SIGINT or SIGTERM, and reaps on every SIGCHLD before it.
func pause(signals <-chan os.Signal, wait4 wait4Func) {
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		reap(wait4)
	}
}

// wait4Func is the signature of syscall.Wait4, which tests replace.
type wait4Func func(pid int, status *syscall.WaitStatus, options int, rusage *syscall.Rusage) (int, error)

// reap collects every child that has exited and returns how many it collected. Signals coalesce,
// so one SIGCHLD may stand for many exits: it loops until no exited child is left (0) or there
// is no child at all (ECHILD).
func reap(wait4 wait4Func) int {
	reaped := 0
	for {
		var status syscall.WaitStatus
		pid, err := wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return reaped
		}
		reaped++
	}
}
