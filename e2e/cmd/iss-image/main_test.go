package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const modulePath = "github.com/iss-platform/iss-webhook"

var repoRoot = filepath.Join("..", "..", "..")

// The images are built once for the tests that read them, into a directory TestMain removes.
var shared struct {
	once  sync.Once
	dir   string
	built []built
	log   bytes.Buffer
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// builtImages runs the tool as make image does and returns its output directory.
func builtImages(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds iss-webhook, issctl, iss-pause and iss-probe")
	}
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "iss-image-test-"); shared.err != nil {
			return
		}
		// A stand-in for bin/coredns, which e2e/tools/build.sh builds: the image only copies it.
		coreDNS := filepath.Join(shared.dir, "coredns-binary")
		if shared.err = os.WriteFile(coreDNS, []byte("#!/bin/false coredns\n"), 0o755); shared.err != nil {
			return
		}
		shared.built, shared.err = build(context.Background(), options{
			repo: repoRoot, out: shared.dir, caCertificates: defaultCACertificates, goCommand: "go", coreDNS: coreDNS,
			progress: &shared.log, commandOutput: &shared.log,
			installCACertificates: func(context.Context) error { return errors.New("the test installs nothing") },
		})
	})
	if shared.err != nil {
		t.Fatalf("building the images: %v\n%s", shared.err, shared.log.String())
	}
	return shared.dir
}

// dockerfile is what the tests compare of the repository's Dockerfile.
type dockerfile struct {
	// Of the final stage.
	user       string
	entrypoint []string
	// The final stage's COPY --from of the binaries.
	copySources []string
	copyDest    string
	// Every go build of a RUN line, in any stage.
	builds []goBuild
}

// goBuild is one `VAR=value go build FLAGS -o OUTPUT PACKAGE` of a RUN line.
type goBuild struct {
	env         []string
	flags       []string
	output, pkg string
}

// parseDockerfile reads the instructions the image depends on. It knows the few forms the
// Dockerfile uses and fails on others, rather than misread them.
func parseDockerfile(text string) (dockerfile, error) {
	var df dockerfile
	var lines []string
	var cont strings.Builder
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if cont.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cont.WriteString(line)
		lines = append(lines, cont.String())
		cont.Reset()
	}
	if cont.Len() != 0 {
		return df, errors.New("the last line continues with a backslash")
	}
	for _, line := range lines {
		keyword, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(keyword) {
		case "FROM":
			// A new stage: what the final one says is what counts.
			df.user, df.entrypoint, df.copySources, df.copyDest = "", nil, nil, ""
		case "USER":
			df.user = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &df.entrypoint); err != nil {
				return df, fmt.Errorf("ENTRYPOINT %s: only the exec form (a JSON array) is understood: %v", rest, err)
			}
		case "COPY":
			words, err := shellWords(rest)
			if err != nil {
				return df, err
			}
			if len(words) == 0 || !strings.HasPrefix(words[0], "--from=") {
				continue
			}
			var args []string
			for _, w := range words {
				if !strings.HasPrefix(w, "--") {
					args = append(args, w)
				}
			}
			if len(args) < 2 {
				return df, fmt.Errorf("COPY %s: want sources and a destination", rest)
			}
			df.copySources, df.copyDest = args[:len(args)-1], args[len(args)-1]
		case "RUN":
			for _, command := range strings.Split(rest, "&&") {
				words, err := shellWords(command)
				if err != nil {
					return df, err
				}
				b, ok, err := parseGoBuild(words)
				if err != nil {
					return df, fmt.Errorf("RUN %s: %w", strings.TrimSpace(command), err)
				}
				if ok {
					df.builds = append(df.builds, b)
				}
			}
		}
	}
	return df, nil
}

// parseGoBuild reads `VAR=value... go build FLAGS -o OUTPUT PACKAGE`; ok is false for another
// command.
func parseGoBuild(words []string) (b goBuild, ok bool, err error) {
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
		b.env = append(b.env, words[i])
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		return goBuild{}, false, nil
	}
	args := words[i+2:]
	if len(args) == 0 {
		return b, true, errors.New("go build without a package")
	}
	b.pkg = args[len(args)-1]
	for j := 0; j < len(args)-1; j++ {
		if args[j] == "-o" && j+1 < len(args)-1 {
			b.output = args[j+1]
			j++
			continue
		}
		b.flags = append(b.flags, args[j])
	}
	if b.output == "" {
		return b, true, errors.New("go build without -o")
	}
	return b, true, nil
}

// shellWords splits a command as a POSIX shell does, for words, single and double quotes and
// backslashes; it knows no expansions.
func shellWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ' in %s", s)
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unclosed \" in %s", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			word.WriteByte(s[i])
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

func TestParseDockerfile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		text    string
		want    dockerfile
		wantErr string
	}{
		{
			name: "two stages, continued RUN",
			text: "FROM golang AS build\nUSER 0\nENTRYPOINT [\"/bin/sh\"]\n" +
				"RUN CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w\" -o /out/a ./cmd/a && \\\n" +
				"    GOFLAGS=-mod=mod go build -o '/out/b c' ./cmd/b\n# comment\n\n" +
				"FROM scratch\nCOPY --from=build --chown=1:1 /out/a /out/b /usr/bin/\nUSER 1:1\nENTRYPOINT [\"/usr/bin/a\", \"serve\"]\n",
			want: dockerfile{
				user: "1:1", entrypoint: []string{"/usr/bin/a", "serve"},
				copySources: []string{"/out/a", "/out/b"}, copyDest: "/usr/bin/",
				builds: []goBuild{
					{env: []string{"CGO_ENABLED=0"}, flags: []string{"-trimpath", "-ldflags", "-s -w"}, output: "/out/a", pkg: "./cmd/a"},
					{env: []string{"GOFLAGS=-mod=mod"}, output: "/out/b c", pkg: "./cmd/b"},
				},
			},
		},
		{
			name: "other commands and COPY without --from are left alone",
			text: "FROM x\nCOPY . .\nRUN go mod download && echo go build\n",
			want: dockerfile{},
		},
		{name: "shell form entrypoint", text: "FROM x\nENTRYPOINT /bin/a\n", wantErr: "only the exec form"},
		{name: "go build without -o", text: "FROM x\nRUN go build ./cmd/a\n", wantErr: "go build without -o"},
		{name: "unclosed quote", text: "FROM x\nRUN go build -ldflags \"-s -o /a ./a\n", wantErr: "unclosed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDockerfile(tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df, err := parseDockerfile(string(text))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return df
}

// TestDockerfileAgreement holds the webhook image to the Dockerfile: the same go build of the
// same packages, and the image's user, entrypoint and binaries where the Dockerfile puts them.
func TestDockerfileAgreement(t *testing.T) {
	df := readDockerfile(t)
	wantPrograms := []program{webhookProgram, issctlProgram}
	if len(df.builds) != len(wantPrograms) {
		t.Fatalf("the Dockerfile has %d go builds, want %d (iss-webhook and issctl): %#v", len(df.builds), len(wantPrograms), df.builds)
	}
	outputs := make(map[string]goBuild) // by output path
	for i, b := range df.builds {
		if !slices.Equal(b.env, goBuildEnv()) || !slices.Equal(b.flags, goBuildFlags()) {
			t.Errorf("the Dockerfile builds %s with env %q and flags %q; iss-image with %q and %q",
				b.pkg, b.env, b.flags, goBuildEnv(), goBuildFlags())
		}
		if p := wantPrograms[i]; b.pkg != p.pkg || path.Base(b.output) != p.name {
			t.Errorf("the Dockerfile's build %d is %s into %s, iss-image's %s into %s", i, b.pkg, b.output, p.pkg, p.name)
		}
		outputs[b.output] = b
	}
	for _, src := range df.copySources {
		if _, ok := outputs[src]; !ok {
			t.Errorf("the Dockerfile copies %s, which no go build writes", src)
		}
	}
	if len(df.copySources) != len(wantPrograms) {
		t.Errorf("the Dockerfile copies %q, want both binaries", df.copySources)
	}

	// The tool's own command line carries the same flags.
	cmd := goBuildCommand(context.Background(), "go", "/repo", "/bin-dir")
	wantArgs := append(append([]string{"go", "build"}, goBuildFlags()...), "-o", "/bin-dir/")
	for _, p := range programs() {
		wantArgs = append(wantArgs, p.pkg)
	}
	if !slices.Equal(cmd.Args, wantArgs) {
		t.Errorf("go build command %q, want %q", cmd.Args, wantArgs)
	}
	for _, e := range goBuildEnv() {
		if !slices.Contains(cmd.Env, e) {
			t.Errorf("go build's environment lacks %s", e)
		}
	}

	dir := builtImages(t)
	img, cfg := readImage(t, filepath.Join(dir, "iss-webhook.tar"), "localhost/iss-webhook:dev")
	if cfg.Config.User != df.user {
		t.Errorf("image user %q, Dockerfile USER %q", cfg.Config.User, df.user)
	}
	if !slices.Equal(cfg.Config.Entrypoint, df.entrypoint) {
		t.Errorf("image entrypoint %q, Dockerfile ENTRYPOINT %q", cfg.Config.Entrypoint, df.entrypoint)
	}
	files := extract(t, img)
	for _, src := range df.copySources {
		b := outputs[src]
		dest := path.Join(df.copyDest, path.Base(src))
		if !strings.HasSuffix(df.copyDest, "/") {
			t.Fatalf("COPY destination %q is not a directory", df.copyDest)
		}
		f, ok := files[dest]
		if !ok {
			t.Errorf("%s: not in the image", dest)
			continue
		}
		if f.hdr.Typeflag != tar.TypeReg || f.hdr.Mode&0o111 != 0o111 {
			t.Errorf("%s: type %c mode %o, want an executable file", dest, f.hdr.Typeflag, f.hdr.Mode)
		}
		checkBuild(t, dest, f.data, b)
	}
}

// checkBuild wants the Dockerfile's package, environment and flags in the binary: the build
// information Go writes into it (package, GOOS, GOARCH, the variables, -trimpath), and for
// -ldflags, which Go leaves out of it under -trimpath, their effect: no symbol table (-s), no
// DWARF (-w).
func checkBuild(t *testing.T, name string, binary []byte, b goBuild) {
	t.Helper()
	file := filepath.Join(t.TempDir(), path.Base(name))
	if err := os.WriteFile(file, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(file)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if want := modulePath + "/" + strings.TrimPrefix(b.pkg, "./"); info.Path != want {
		t.Errorf("%s: built from %s, the Dockerfile builds %s", name, info.Path, want)
	}
	settings := make(map[string]string)
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	want := map[string]string{"GOOS": "linux", "GOARCH": runtime.GOARCH}
	for _, e := range b.env {
		k, v, _ := strings.Cut(e, "=")
		want[k] = v
	}
	var ldflags []string
	for i := 0; i < len(b.flags); i++ {
		switch f := b.flags[i]; f {
		case "-trimpath":
			want[f] = "true"
		case "-ldflags":
			i++
			ldflags = strings.Fields(b.flags[i])
		default:
			t.Fatalf("the Dockerfile's flag %s is not checked here: add it", f)
		}
	}
	for k, v := range want {
		if settings[k] != v {
			t.Errorf("%s: build setting %s=%q, the Dockerfile's %q", name, k, settings[k], v)
		}
	}
	exe, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	for _, f := range ldflags {
		switch f {
		case "-s":
			if exe.Section(".symtab") != nil {
				t.Errorf("%s has a symbol table: not linked with -s", name)
			}
		case "-w":
			for _, s := range exe.Sections {
				if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
					t.Errorf("%s has DWARF section %s: not linked with -w", name, s.Name)
				}
			}
		default:
			t.Fatalf("the Dockerfile's linker flag %s is not checked here: add it", f)
		}
	}
}

// imageFile is one file of an image's flattened file system.
type imageFile struct {
	hdr  *tar.Header
	data []byte
}

func extract(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := make(map[string]imageFile)
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(hdr.Name, "/")] = imageFile{hdr: hdr, data: data}
	}
}

// readImage reads a tarball back as ctr import would find it: one image, with the tag, valid.
func readImage(t *testing.T, file, tagName string) (v1.Image, *v1.ConfigFile) {
	t.Helper()
	tag, err := name.NewTag(tagName)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{tagName}) {
		t.Errorf("%s: manifest.json %+v, want one image tagged %s", file, manifest, tagName)
	}
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("%s: %v", file, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return img, cfg
}

func TestTarballsReadBack(t *testing.T) {
	dir := builtImages(t)
	caCertificates, err := os.ReadFile(defaultCACertificates)
	if err != nil {
		t.Fatal(err)
	}
	// want is one file of the image: its type, mode bits, owner and some of its contents.
	type want struct {
		typ      byte
		mode     int64
		uid, gid int
		contains string
	}
	base := map[string]want{
		"/etc/passwd":                        {typ: tar.TypeReg, mode: 0o644, contains: "nonroot:x:65532:65532:nonroot:/home/nonroot:"},
		"/etc/group":                         {typ: tar.TypeReg, mode: 0o644, contains: "nonroot:x:65532:"},
		"/etc/ssl/certs/ca-certificates.crt": {typ: tar.TypeReg, mode: 0o644, contains: string(caCertificates)},
		"/home/nonroot":                      {typ: tar.TypeDir, mode: 0o700, uid: 65532, gid: 65532},
		"/tmp":                               {typ: tar.TypeDir, mode: 0o1777},
	}
	with := func(m map[string]want, path string, w want) map[string]want {
		out := map[string]want{path: w}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	distroless := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	for _, tc := range []struct {
		file, tag  string
		user       string
		entrypoint []string
		env        []string
		files      map[string]want
		// onlyFiles: the image holds nothing but these files (directories aside).
		onlyFiles bool
	}{
		{
			file: "iss-webhook.tar", tag: "localhost/iss-webhook:dev", user: "65532:65532",
			entrypoint: []string{"/usr/local/bin/iss-webhook"}, env: distroless,
			files: with(with(base, "/usr/local/bin/iss-webhook", want{typ: tar.TypeReg, mode: 0o755}),
				"/usr/local/bin/issctl", want{typ: tar.TypeReg, mode: 0o755}),
		},
		{
			file: "pause.tar", tag: "localhost/iss-pause:dev", user: "65535:65535",
			entrypoint: []string{"/pause"}, env: distroless[:1],
			files:     map[string]want{"/pause": {typ: tar.TypeReg, mode: 0o755}},
			onlyFiles: true,
		},
		{
			file: "probe.tar", tag: "localhost/iss-probe:dev", user: "65532:65532",
			entrypoint: []string{"/iss-probe", "sleep"}, env: distroless,
			files: with(base, "/iss-probe", want{typ: tar.TypeReg, mode: 0o755}),
		},
		{
			file: "probe-debug.tar", tag: "localhost/iss-probe-debug:dev", user: "65532:65532",
			entrypoint: []string{"/iss-probe", "sleep"}, env: distroless,
			files: with(base, "/iss-probe", want{typ: tar.TypeReg, mode: 0o755}),
		},
		{
			file: "coredns.tar", tag: "localhost/iss-coredns:dev", user: "65532:65532",
			entrypoint: []string{"/coredns"}, env: distroless,
			files: with(base, "/coredns", want{typ: tar.TypeReg, mode: 0o755, contains: "coredns"}),
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			img, cfg := readImage(t, filepath.Join(dir, tc.file), tc.tag)
			if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
				t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
			}
			if cfg.Config.User != tc.user || !slices.Equal(cfg.Config.Entrypoint, tc.entrypoint) || len(cfg.Config.Cmd) != 0 {
				t.Errorf("user %q entrypoint %q cmd %q, want %q %q and no cmd", cfg.Config.User, cfg.Config.Entrypoint, cfg.Config.Cmd, tc.user, tc.entrypoint)
			}
			if !slices.Equal(cfg.Config.Env, tc.env) {
				t.Errorf("env %q, want %q", cfg.Config.Env, tc.env)
			}
			if !cfg.Created.Time.Equal(epoch) {
				t.Errorf("created %v, want the fixed %v", cfg.Created.Time, epoch)
			}
			files := extract(t, img)
			for p, w := range tc.files {
				f, ok := files[p]
				if !ok {
					t.Errorf("%s: missing", p)
					continue
				}
				if f.hdr.Typeflag != w.typ || f.hdr.Mode != w.mode || f.hdr.Uid != w.uid || f.hdr.Gid != w.gid {
					t.Errorf("%s: type %c mode %o owner %d:%d, want %c %o %d:%d", p, f.hdr.Typeflag, f.hdr.Mode, f.hdr.Uid, f.hdr.Gid, w.typ, w.mode, w.uid, w.gid)
				}
				if !strings.Contains(string(f.data), w.contains) {
					t.Errorf("%s does not contain %q", p, w.contains)
				}
			}
			for p, f := range files {
				if !f.hdr.ModTime.Equal(epoch) {
					t.Errorf("%s: time %v, want the fixed %v", p, f.hdr.ModTime, epoch)
				}
				if _, listed := tc.files[p]; tc.onlyFiles && !listed && f.hdr.Typeflag != tar.TypeDir {
					t.Errorf("%s: not expected in the image", p)
				}
			}
		})
	}
}

// TestDeterministic writes the images twice from the same inputs and wants the same bytes, and
// another image ID when a binary changes.
func TestDeterministic(t *testing.T) {
	src := t.TempDir()
	binaries := make(map[program]string)
	for _, p := range programs() {
		binaries[p] = filepath.Join(src, p.name)
		if err := os.WriteFile(binaries[p], []byte("#!/bin/false "+p.name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func() map[string]string {
		out, work := t.TempDir(), t.TempDir()
		ids := make(map[string]string)
		for _, spec := range imageSpecs(binaries, []byte("certificates\n"), "") {
			b, err := writeImage(spec, out, work)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(b.path)
			if err != nil {
				t.Fatal(err)
			}
			ids[spec.file] = fmt.Sprintf("%s %x", b.id, sha256.Sum256(data))
		}
		return ids
	}
	first, second := write(), write()
	if fmt.Sprint(first) != fmt.Sprint(second) {
		t.Errorf("two writes differ:\n%v\n%v", first, second)
	}
	if err := os.WriteFile(binaries[probeProgram], []byte("changed\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	changed := write()
	if changed["probe.tar"] == first["probe.tar"] || changed["pause.tar"] != first["pause.tar"] {
		t.Errorf("after changing iss-probe only: %v, before %v", changed, first)
	}
}

func TestReadCACertificates(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present.crt")
	if err := os.WriteFile(present, []byte("bundle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		file        string
		installable bool
		install     func(file string) error // nil: must not be called
		want        string
		wantErr     string
		wantSteps   []string
	}{
		{name: "present", file: present, want: "bundle\n", wantSteps: []string{"CA certificates from " + present}},
		{name: "missing, named by flag", file: filepath.Join(dir, "flag.crt"), wantErr: "no such file"},
		{
			name: "missing default, installed", file: filepath.Join(dir, "default.crt"), installable: true,
			install: func(file string) error { return os.WriteFile(file, []byte("installed\n"), 0o644) },
			want:    "installed\n",
			wantSteps: []string{
				filepath.Join(dir, "default.crt") + " is missing: installing Debian's ca-certificates with apt-get",
				"CA certificates from " + filepath.Join(dir, "default.crt"),
			},
		},
		{
			name: "missing default, install fails", file: filepath.Join(dir, "failing.crt"), installable: true,
			install: func(string) error { return errors.New("apt-get is not on PATH") },
			wantErr: "apt-get is not on PATH (install it, or pass --ca-certificates FILE)",
		},
		{
			name: "missing default, installed elsewhere", file: filepath.Join(dir, "elsewhere.crt"), installable: true,
			install: func(string) error { return nil },
			wantErr: "after installing ca-certificates",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var steps []string
			step := func(format string, args ...any) { steps = append(steps, fmt.Sprintf(format, args...)) }
			install := func(context.Context) error {
				if tc.install == nil {
					t.Fatal("install called")
				}
				return tc.install(tc.file)
			}
			got, err := readCACertificates(context.Background(), tc.file, tc.installable, install, step)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if !slices.Equal(steps, tc.wantSteps) {
				t.Errorf("steps %q, want %q", steps, tc.wantSteps)
			}
		})
	}
}

func TestWriteTarModes(t *testing.T) {
	var buf bytes.Buffer
	entries := []entry{
		{name: "/tmp", mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{name: "/home/nonroot", mode: fs.ModeDir | 0o700, uid: 65532, gid: 65532},
		{name: "/etc/passwd", mode: 0o644, data: []byte("root\n")},
	}
	if err := writeTar(&buf, entries); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for _, want := range []struct {
		name string
		typ  byte
		mode int64
		uid  int
	}{{"tmp/", tar.TypeDir, 0o1777, 0}, {"home/nonroot/", tar.TypeDir, 0o700, 65532}, {"etc/passwd", tar.TypeReg, 0o644, 0}} {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name != want.name || hdr.Typeflag != want.typ || hdr.Mode != want.mode || hdr.Uid != want.uid || hdr.Uname != "" || !hdr.ModTime.Equal(epoch) {
			t.Errorf("header %+v, want %+v", hdr, want)
		}
	}
	if err := writeTar(io.Discard, []entry{{name: "relative", mode: 0o644}}); err == nil {
		t.Error("a relative path was written")
	}
}
