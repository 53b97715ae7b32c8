package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// With roleEnv set, the test binary is the program: it subscribes to the signals as main does,
// says "ready", and runs the arguments.
const roleEnv = "ISS_PROBE_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "1" {
		ctx, stop := signalContext()
		os.Stdout.WriteString("ready\n")
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.DirFS("/"))
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// probe runs the arguments in process and returns the status and both outputs.
func probe(ctx context.Context, root fstest.MapFS, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr, root)
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want      int
		wantInErr string
	}{
		{args: nil, want: 2, wantInErr: "Usage: iss-probe COMMAND"},
		{args: []string{"dance"}, want: 2, wantInErr: `unknown command "dance"`},
		{args: []string{"sleep", "5"}, want: 2, wantInErr: "sleep takes no arguments"},
		{args: []string{"serve"}, want: 2, wantInErr: "serve needs --port N"},
		{args: []string{"serve", "--port", "70000"}, want: 2, wantInErr: "serve needs --port N"},
		{args: []string{"connect"}, want: 2, wantInErr: "connect needs one argument"},
		{args: []string{"connect", "--timeout", "0s", "a:1"}, want: 2, wantInErr: "positive --timeout"},
		{args: []string{"resolve", "a", "b"}, want: 2, wantInErr: "resolve needs one argument"},
		{args: []string{"cat"}, want: 2, wantInErr: "cat needs at least one file"},
		{args: []string{"cgroup", "x"}, want: 2, wantInErr: "cgroup takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := probe(context.Background(), nil, tc.args...)
			if code != tc.want || !strings.Contains(stderr, tc.wantInErr) {
				t.Errorf("status %d, stderr %q; want %d and %q", code, stderr, tc.want, tc.wantInErr)
			}
		})
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { code, _, _ := probe(ctx, nil, "sleep"); done <- code }()
	select {
	case code := <-done:
		t.Fatalf("sleep returned %d before the signal", code)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("sleep returned %d, want 0", code)
	}
}

// TestSleepExitsOnSIGTERM runs the default command in a child as the kubelet stops it.
func TestSleepExitsOnSIGTERM(t *testing.T) {
	child := exec.Command(os.Args[0], "sleep")
	child.Env = append(os.Environ(), roleEnv+"=1")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		_ = child.Process.Kill()
		t.Fatalf("child said %q (%v), want ready", line, err)
	}
	start := time.Now()
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v to exit after SIGTERM", took)
		}
	case <-time.After(10 * time.Second):
		_ = child.Process.Kill()
		t.Fatal("still running 10s after SIGTERM")
	}
}

func TestServe(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, listener) }()
	base := "http://" + listener.Addr().String()
	for _, path := range []string{"/", "/healthz", "/any/path?q=1"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Errorf("GET %s: %d %q, want 200 \"ok\\n\"", path, resp.StatusCode, body)
		}
	}
	// A bare TCP check: connect, send nothing, close.
	if code, out, _ := probe(context.Background(), nil, "connect", listener.Addr().String()); code != 0 {
		t.Errorf("connect to the server: %d %q", code, out)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve returned %v after the context ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve still running 5s after the context ended")
	}
}

func TestConnect(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	open := listener.Addr().(*net.TCPAddr).Port
	// A port that was open a moment ago and is closed now refuses connections.
	closedListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedListener.Addr().(*net.TCPAddr).Port
	closedListener.Close()
	for _, tc := range []struct {
		address string
		want    int
		wantOut string
	}{
		{address: fmt.Sprintf("127.0.0.1:%d", open), want: 0, wantOut: fmt.Sprintf("connected 127.0.0.1:%d\n", open)},
		{address: fmt.Sprintf("localhost:%d", open), want: 0, wantOut: fmt.Sprintf("connected localhost:%d\n", open)},
		{address: fmt.Sprintf("127.0.0.1:%d", closed), want: 1, wantOut: fmt.Sprintf("failed 127.0.0.1:%d: ", closed)},
		{address: "no-port", want: 1, wantOut: "failed no-port: "},
		{address: "name.invalid:80", want: 1, wantOut: "failed name.invalid:80: "},
	} {
		t.Run(tc.address, func(t *testing.T) {
			code, out, _ := probe(context.Background(), nil, "connect", "--timeout", "2s", tc.address)
			if code != tc.want || !strings.HasPrefix(out, tc.wantOut) || strings.Count(out, "\n") != 1 {
				t.Errorf("status %d, stdout %q; want %d and one line starting %q", code, out, tc.want, tc.wantOut)
			}
		})
	}
}

// fakeResolver answers every name with its addresses and error.
type fakeResolver struct {
	addrs []string
	err   error
}

func (f fakeResolver) LookupHost(context.Context, string) ([]string, error) { return f.addrs, f.err }

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resolver   fakeResolver
		want       int
		wantOut    string
		wantStderr string
	}{
		{name: "addresses", resolver: fakeResolver{addrs: []string{"10.0.0.1", "fd00::1"}}, want: 0, wantOut: "10.0.0.1\nfd00::1\n"},
		{name: "error", resolver: fakeResolver{err: errors.New("lookup x: no such host")}, want: 1, wantStderr: "resolve x: lookup x: no such host\n"},
		{name: "no addresses", resolver: fakeResolver{}, want: 1, wantStderr: "resolve x: no addresses\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := resolve(context.Background(), tc.resolver, "x", &stdout, &stderr)
			if code != tc.want || stdout.String() != tc.wantOut || stderr.String() != tc.wantStderr {
				t.Errorf("got %d %q %q, want %d %q %q", code, stdout.String(), stderr.String(), tc.want, tc.wantOut, tc.wantStderr)
			}
		})
	}
	// The system resolver reads /etc/hosts.
	code, out, stderr := probe(context.Background(), nil, "resolve", "localhost")
	if code != 0 || !strings.Contains(out, "127.0.0.1\n") && !strings.Contains(out, "::1\n") {
		t.Errorf("resolve localhost: %d %q %q", code, out, stderr)
	}
}

func TestCat(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name       string
		files      []string
		want       int
		wantOut    string
		wantStderr string
	}{
		{name: "two files", files: []string{a, b}, want: 0, wantOut: "one\ntwo"},
		{name: "a missing one", files: []string{a, missing, b}, want: 1, wantOut: "one\ntwo", wantStderr: "cat: open " + missing + ": no such file or directory\n"},
		{name: "a directory", files: []string{dir}, want: 1, wantStderr: "cat: read " + dir + ": "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := probe(context.Background(), nil, append([]string{"cat"}, tc.files...)...)
			if code != tc.want || out != tc.wantOut || !strings.HasPrefix(stderr, tc.wantStderr) || (tc.wantStderr == "") != (stderr == "") {
				t.Errorf("got %d %q %q, want %d %q %q", code, out, stderr, tc.want, tc.wantOut, tc.wantStderr)
			}
		})
	}
}

func TestCgroup(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	self := file("0::/kubepods/burstable/pod1/abc\n")
	v1self := file("12:memory:/kubepods/pod1/abc\n4:cpu,cpuacct:/kubepods/pod1/abc\n")
	for _, tc := range []struct {
		name       string
		root       fstest.MapFS
		want       int
		wantOut    string
		wantStderr string
	}{
		{
			name: "v2 with limits",
			root: fstest.MapFS{
				cgroupV2Marker: file("cpu memory pids\n"),
				cgroupV2Memory: file("268435456\n"),
				cgroupV2CPU:    file("50000 100000\n"),
				procSelfCgroup: self,
			},
			wantOut: "version=v2\nmemory.limit_bytes=268435456\ncpu.quota=50000\ncpu.period=100000\n0::/kubepods/burstable/pod1/abc\n",
		},
		{
			name: "v2 unlimited",
			root: fstest.MapFS{
				cgroupV2Marker: file(""),
				cgroupV2Memory: file("max\n"),
				cgroupV2CPU:    file("max 100000\n"),
				procSelfCgroup: self,
			},
			wantOut: "version=v2\nmemory.limit_bytes=max\ncpu.quota=max\ncpu.period=100000\n0::/kubepods/burstable/pod1/abc\n",
		},
		{
			name: "v1",
			root: fstest.MapFS{
				cgroupV1Memory:   file("536870912\n"),
				cgroupV1CPUQuota: file("-1\n"),
				cgroupV1CPUPer:   file("100000\n"),
				procSelfCgroup:   v1self,
			},
			wantOut: "version=v1\nmemory.limit_bytes=536870912\ncpu.quota=-1\ncpu.period=100000\n12:memory:/kubepods/pod1/abc\n4:cpu,cpuacct:/kubepods/pod1/abc\n",
		},
		{
			name: "v1 without the cpu controller",
			root: fstest.MapFS{
				cgroupV1Memory: file("536870912\n"),
				procSelfCgroup: v1self,
			},
			want:       1,
			wantOut:    "version=v1\nmemory.limit_bytes=536870912\n12:memory:/kubepods/pod1/abc\n4:cpu,cpuacct:/kubepods/pod1/abc\n",
			wantStderr: "cgroup: open /sys/fs/cgroup/cpu/cpu.cfs_quota_us: file does not exist\ncgroup: open /sys/fs/cgroup/cpu/cpu.cfs_period_us: file does not exist\n",
		},
		{
			name: "v2 with a malformed cpu.max",
			root: fstest.MapFS{
				cgroupV2Marker: file(""),
				cgroupV2Memory: file("max\n"),
				cgroupV2CPU:    file("100000\n"),
				procSelfCgroup: self,
			},
			want:       1,
			wantOut:    "version=v2\nmemory.limit_bytes=max\n0::/kubepods/burstable/pod1/abc\n",
			wantStderr: "cgroup: /sys/fs/cgroup/cpu.max: \"100000\" is not \"QUOTA PERIOD\"\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := probe(context.Background(), tc.root, "cgroup")
			if code != tc.want || out != tc.wantOut || stderr != tc.wantStderr {
				t.Errorf("got %d\n%s\nstderr %q\nwant %d\n%s\nstderr %q", code, out, stderr, tc.want, tc.wantOut, tc.wantStderr)
			}
		})
	}
}

// TestCgroupHere reads this machine's own files, whichever version it runs.
func TestCgroupHere(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"cgroup"}, &stdout, &stderr, os.DirFS("/"))
	if code != 0 || !strings.HasPrefix(stdout.String(), "version=v") || !strings.Contains(stdout.String(), "\nmemory.limit_bytes=") {
		t.Errorf("cgroup on this machine: %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
