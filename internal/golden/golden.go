// Package golden keeps the files that tests compare with what the code renders: golden outputs
// and generated files (the webhook configurations, the docs' references). It is the one way the
// tests check and rewrite them.
package golden

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Check compares got with file and fails the test, saying where they first differ, when they
// differ. With update it writes got to file instead: make generate and make golden run the
// tests that way.
func Check(t testing.TB, file string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v: run make generate (or make golden) to write it", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s is not what the code renders (%s): run make generate (or make golden) if the change is intended", file, FirstDifference(string(want), string(got)))
	}
}

// FirstDifference says where two texts first differ.
func FirstDifference(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d is %q, the code renders %q", i+1, w, g)
		}
	}
	return "they differ"
}
