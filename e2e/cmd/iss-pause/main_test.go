package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the program: with roleEnv=main it subscribes, says "ready" and
// pauses as main does; with roleEnv=exit it exits at once (a child that becomes a zombie).
const roleEnv = "ISS_PAUSE_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "main":
		signals := subscribe(false)
		os.Stdout.WriteString("ready\n")
		pause(signals, syscall.Wait4)
		os.Exit(0)
	case "exit":
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// waitResult is one answer of wait4.
type waitResult struct {
	pid int
	err error
}

func TestReapLoops(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []waitResult // successive answers of wait4
		want    int
	}{
		{name: "no child", results: []waitResult{{-1, syscall.ECHILD}}, want: 0},
		{name: "children alive, none exited", results: []waitResult{{0, nil}}, want: 0},
		{name: "three exits behind one signal", results: []waitResult{{10, nil}, {11, nil}, {12, nil}, {-1, syscall.ECHILD}}, want: 3},
		{name: "interrupted, then one exit", results: []waitResult{{-1, syscall.EINTR}, {7, nil}, {0, nil}}, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			wait4 := fakeWait4(t, tc.results, &calls)
			if got := reap(wait4); got != tc.want {
				t.Errorf("reaped %d, want %d", got, tc.want)
			}
			if calls != len(tc.results) {
				t.Errorf("wait4 called %d times, want %d", calls, len(tc.results))
			}
		})
	}
}

func fakeWait4(t *testing.T, results []waitResult, calls *int) wait4Func {
	return func(pid int, _ *syscall.WaitStatus, options int, _ *syscall.Rusage) (int, error) {
		if pid != -1 || options&syscall.WNOHANG == 0 {
			t.Errorf("wait4(%d, options %#x): want any child (-1) and WNOHANG", pid, options)
		}
		if *calls >= len(results) {
			t.Fatalf("wait4 called %d times, after the last answer", *calls+1)
		}
		r := results[*calls]
		*calls++
		return r.pid, r.err
	}
}

func TestPause(t *testing.T) {
	for _, tc := range []struct {
		name      string
		signals   []os.Signal
		wantWaits int // wait4 calls: one per exited child plus the final "none left"
	}{
		{name: "SIGTERM", signals: []os.Signal{syscall.SIGTERM}},
		{name: "SIGINT", signals: []os.Signal{syscall.SIGINT}},
		{name: "reaps on SIGCHLD, then SIGTERM", signals: []os.Signal{syscall.SIGCHLD, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGCHLD}, wantWaits: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signals := make(chan os.Signal, len(tc.signals))
			for _, s := range tc.signals {
				signals <- s
			}
			calls := 0
			// Each SIGCHLD finds one exited child.
			wait4 := fakeWait4(t, []waitResult{{5, nil}, {0, nil}, {6, nil}, {-1, syscall.ECHILD}}, &calls)
			pause(signals, wait4)
			if calls != tc.wantWaits {
				t.Errorf("wait4 called %d times, want %d", calls, tc.wantWaits)
			}
		})
	}
}

// TestReapZombie leaves an exited child unwaited, and reap collects it.
func TestReapZombie(t *testing.T) {
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), roleEnv+"=exit")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(child.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for !isZombie(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %s did not exit", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// On a loaded machine wait4 may not report the child at the first try, although /proc
	// shows it a zombie already: reap again until it does, within the deadline.
	got := reap(syscall.Wait4)
	for got == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = reap(syscall.Wait4)
	}
	if got != 1 {
		t.Fatalf("reaped %d, want the 1 zombie", got)
	}
	if _, err := os.Stat("/proc/" + pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("child %s still in /proc after reap: %v", pid, err)
	}
	if got := reap(syscall.Wait4); got != 0 {
		t.Errorf("second reap collected %d, want 0", got)
	}
}

func isZombie(t *testing.T, pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses; the state follows the last ")".
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// TestExitsOnSignal stops the program in a child process as the kubelet does, and wants status 0.
func TestExitsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			child := exec.Command(os.Args[0])
			child.Env = append(os.Environ(), roleEnv+"=main")
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
			if err := child.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- child.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit after %v: %v, want status 0", sig, err)
				}
			case <-time.After(10 * time.Second):
				_ = child.Process.Kill()
				t.Fatalf("still running 10s after %v", sig)
			}
		})
	}
}
