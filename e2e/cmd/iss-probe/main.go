// Command iss-probe is the program of the probe image that the end-to-end specs run pods of, and
// run with kubectl exec to look at the network, DNS, files and cgroup limits from inside a pod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usageText = `Usage: iss-probe COMMAND [flags] [args]

Commands:
  sleep                                 block until SIGTERM or SIGINT, then exit 0 (the image's default)
  serve --port N                        answer HTTP 200 "ok\n" on every path of port N (any TCP client is accepted)
  connect [--timeout 3s] HOST:PORT      connect over TCP: prints "connected HOST:PORT" and exits 0,
                                        or "failed HOST:PORT: ERROR" and exits 1; HOST may be a name
  resolve [--timeout 3s] NAME           print NAME's addresses one per line and exit 0; exit 1 with the error
  cat FILE...                           print the files; exit 1 when one cannot be read
  cgroup                                print the container's memory and cpu limits (version=v1|v2,
                                        memory.limit_bytes=, cpu.quota=, cpu.period=) and /proc/self/cgroup
`

// defaultTimeout bounds connect and resolve, so that a dropped packet fails the probe well
// inside the spec's own timeout instead of hanging kubectl exec.
const defaultTimeout = 3 * time.Second

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.DirFS("/"))
	stop()
	os.Exit(code)
}

// signalContext ends on SIGTERM, with which the kubelet stops the container, or SIGINT. As PID 1
// the program has no default action for them: without this it would wait for SIGKILL.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// run runs one command and returns the exit status. ctx ends on SIGTERM or SIGINT; root is the
// file system that cgroup reads /sys and /proc from.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, root fs.FS) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	command, args := args[0], args[1:]
	flags := flag.NewFlagSet("iss-probe "+command, flag.ContinueOnError)
	flags.SetOutput(stderr)
	switch command {
	case "sleep":
		if err := flags.Parse(args); err != nil || flags.NArg() != 0 {
			return usage(stderr, flags, "sleep takes no arguments")
		}
		<-ctx.Done()
		return 0
	case "serve":
		port := flags.Int("port", 0, "TCP port to listen on, on every address")
		if err := flags.Parse(args); err != nil || flags.NArg() != 0 || *port <= 0 || *port > 65535 {
			return usage(stderr, flags, "serve needs --port N, 1 to 65535, and no arguments")
		}
		listener, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
		if err != nil {
			fmt.Fprintf(stderr, "serve: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "serving on %s\n", listener.Addr())
		if err := serve(ctx, listener); err != nil {
			fmt.Fprintf(stderr, "serve: %v\n", err)
			return 1
		}
		return 0
	case "connect", "resolve":
		timeout := flags.Duration("timeout", defaultTimeout, "give up after this long")
		if err := flags.Parse(args); err != nil || flags.NArg() != 1 || *timeout <= 0 {
			return usage(stderr, flags, command+" needs one argument and a positive --timeout")
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if command == "connect" {
			return connect(ctx, flags.Arg(0), stdout)
		}
		return resolve(ctx, net.DefaultResolver, flags.Arg(0), stdout, stderr)
	case "cat":
		if err := flags.Parse(args); err != nil || flags.NArg() == 0 {
			return usage(stderr, flags, "cat needs at least one file")
		}
		return cat(flags.Args(), stdout, stderr)
	case "cgroup":
		if err := flags.Parse(args); err != nil || flags.NArg() != 0 {
			return usage(stderr, flags, "cgroup takes no arguments")
		}
		return cgroup(root, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	default:
		fmt.Fprintf(stderr, "iss-probe: unknown command %q\n\n%s", command, usageText)
		return 2
	}
}

func usage(stderr io.Writer, flags *flag.FlagSet, problem string) int {
	fmt.Fprintf(stderr, "%s: %s\n", flags.Name(), problem)
	flags.PrintDefaults()
	return 2
}

// serve answers every HTTP request with 200 "ok\n" until ctx ends. A client that connects and
// sends nothing (a TCP check) is simply accepted.
func serve(ctx context.Context, listener net.Listener) error {
	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	stopped := make(chan error, 1)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		stopped <- server.Shutdown(shutdown)
	}()
	if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Open connections may outlive the second of grace: the pod is going away anyway.
	if err := <-stopped; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// connect dials address over TCP, resolving a name with the system resolver. Both outcomes are
// the probe's answer, so both go to stdout; the status tells them apart.
func connect(ctx context.Context, address string, stdout io.Writer) int {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", address)
	if err != nil {
		fmt.Fprintf(stdout, "failed %s: %v\n", address, err)
		return 1
	}
	_ = conn.Close()
	fmt.Fprintf(stdout, "connected %s\n", address)
	return 0
}

// hostResolver is the part of *net.Resolver that resolve uses.
type hostResolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// resolve prints the addresses of name, as /etc/hosts and /etc/resolv.conf give them.
func resolve(ctx context.Context, resolver hostResolver, name string, stdout, stderr io.Writer) int {
	addrs, err := resolver.LookupHost(ctx, name)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		fmt.Fprintf(stderr, "resolve %s: %v\n", name, err)
		return 1
	}
	for _, a := range addrs {
		fmt.Fprintln(stdout, a)
	}
	return 0
}

// cat prints each file in turn. A file that cannot be read is reported and skipped, and makes
// the status 1.
func cat(files []string, stdout, stderr io.Writer) int {
	code := 0
	for _, name := range files {
		if err := copyFile(name, stdout); err != nil {
			fmt.Fprintf(stderr, "cat: %v\n", err)
			code = 1
		}
	}
	return code
}

func copyFile(name string, w io.Writer) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// The cgroup files, relative to the root file system. cgroup v2 mounts the container's own
// cgroup at /sys/fs/cgroup (cgroup.controllers marks it); cgroup v1 one directory per controller.
const (
	cgroupV2Marker   = "sys/fs/cgroup/cgroup.controllers"
	cgroupV2Memory   = "sys/fs/cgroup/memory.max"
	cgroupV2CPU      = "sys/fs/cgroup/cpu.max"
	cgroupV1Memory   = "sys/fs/cgroup/memory/memory.limit_in_bytes"
	cgroupV1CPUQuota = "sys/fs/cgroup/cpu/cpu.cfs_quota_us"
	cgroupV1CPUPer   = "sys/fs/cgroup/cpu/cpu.cfs_period_us"
	procSelfCgroup   = "proc/self/cgroup"
)

// cgroup prints the limits as the kernel states them: "max" (v2) or -1 and a huge number (v1)
// mean no limit; the specs compare them with the pod's resources. It then prints
// /proc/self/cgroup as it is. A file that cannot be read is reported on stderr, makes the status
// 1, and its lines are left out.
func cgroup(root fs.FS, stdout, stderr io.Writer) int {
	lines, problems := cgroupLimits(root)
	if self, err := readRooted(root, procSelfCgroup); err != nil {
		problems = append(problems, err)
	} else {
		lines = append(lines, strings.Split(strings.TrimRight(string(self), "\n"), "\n")...)
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "cgroup: %v\n", p)
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

// cgroupLimits returns the version=, memory.limit_bytes=, cpu.quota= and cpu.period= lines.
func cgroupLimits(root fs.FS) (lines []string, problems []error) {
	read := func(name string) (string, bool) {
		b, err := readRooted(root, name)
		if err != nil {
			problems = append(problems, err)
			return "", false
		}
		return strings.TrimSpace(string(b)), true
	}
	if _, err := fs.Stat(root, cgroupV2Marker); err == nil {
		lines = append(lines, "version=v2")
		if v, ok := read(cgroupV2Memory); ok {
			lines = append(lines, "memory.limit_bytes="+v)
		}
		if v, ok := read(cgroupV2CPU); ok {
			// "$MAX $PERIOD", where $MAX is "max" without a limit.
			quota, period, found := strings.Cut(v, " ")
			if !found {
				problems = append(problems, fmt.Errorf("%s: %q is not \"QUOTA PERIOD\"", "/"+cgroupV2CPU, v))
			} else {
				lines = append(lines, "cpu.quota="+quota, "cpu.period="+period)
			}
		}
		return lines, problems
	}
	lines = append(lines, "version=v1")
	for _, f := range []struct{ key, file string }{
		{"memory.limit_bytes", cgroupV1Memory},
		{"cpu.quota", cgroupV1CPUQuota},
		{"cpu.period", cgroupV1CPUPer},
	} {
		if v, ok := read(f.file); ok {
			lines = append(lines, f.key+"="+v)
		}
	}
	return lines, problems
}

// readRooted reads name from root, and names the file by its absolute path when it fails.
func readRooted(root fs.FS, name string) ([]byte, error) {
	b, err := fs.ReadFile(root, name)
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) && !strings.HasPrefix(pathErr.Path, "/") {
		pathErr.Path = "/" + pathErr.Path
	}
	return b, err
}
