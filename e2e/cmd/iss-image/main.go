// Command iss-image is `make image`: it writes the images of the local single-node cluster as
// image tarballs (the docker-archive format of `docker save`, with a tag), without Docker, which
// `ctr -n k8s.io images import` loads into the node's containerd:
//
//   - iss-webhook.tar, localhost/iss-webhook:dev: the image of the Dockerfile, both binaries
//     built as its RUN line builds them, on a layer that stands in for its distroless base;
//   - pause.tar, localhost/iss-pause:dev: the pod sandbox image (e2e/cmd/iss-pause);
//   - probe.tar, localhost/iss-probe:dev: the probe the end-to-end specs exec into pods
//     (e2e/cmd/iss-probe).
//
// Every file time is the Unix epoch and the config's creation time too, so that the same
// sources give the same image digests.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	progressPrefix = "iss-image: "
	// defaultCACertificates is where Debian's ca-certificates puts the bundle, and where the
	// distroless base has it.
	defaultCACertificates = "/etc/ssl/certs/ca-certificates.crt"

	// The users of the images: distroless's nonroot, and the kubelet's usual pause user.
	nonrootID = 65532
	pauseID   = 65535
)

// epoch is every file's time and the images' creation time: fixed, so that digests repeat.
var epoch = time.Unix(0, 0).UTC()

// goBuildEnv and goBuildFlags are the Dockerfile's build of the binaries (its RUN line);
// TestDockerfileAgreement holds them to it.
func goBuildEnv() []string   { return []string{"CGO_ENABLED=0"} }
func goBuildFlags() []string { return []string{"-trimpath", "-ldflags", "-s -w"} }

// The programs of the images: the binary's name and its package in the module.
type program struct{ name, pkg string }

var (
	webhookProgram = program{"iss-webhook", "./cmd/iss-webhook"}
	issctlProgram  = program{"issctl", "./cmd/issctl"}
	pauseProgram   = program{"iss-pause", "./e2e/cmd/iss-pause"}
	probeProgram   = program{"iss-probe", "./e2e/cmd/iss-probe"}
)

// programs lists what one go build builds, in a fixed order.
func programs() []program {
	return []program{webhookProgram, issctlProgram, pauseProgram, probeProgram}
}

// distrolessEnv is the environment of gcr.io/distroless/static's config.
func distrolessEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=" + defaultCACertificates,
	}
}

const usageText = `Usage: iss-image [flags]

Writes into --out, without Docker, the image tarballs of the local cluster, each loadable with
ctr -n k8s.io images import FILE:

  iss-webhook.tar  localhost/iss-webhook:dev  the Dockerfile's image: /usr/local/bin/iss-webhook
                                              and issctl, user 65532:65532, on a distroless-like base
  pause.tar        localhost/iss-pause:dev    the pod sandbox image: /pause, user 65535
  probe.tar        localhost/iss-probe:dev    /iss-probe sleep, for the end-to-end specs, user 65532

The binaries are built as the Dockerfile builds them: CGO_ENABLED=0 go build -trimpath
-ldflags "-s -w", for linux and this machine's architecture.

Flags:
`

func main() {
	flags := flag.NewFlagSet("iss-image", flag.ExitOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usageText)
		flags.PrintDefaults()
	}
	var o options
	flags.StringVar(&o.repo, "repo", ".", "root of the iss-webhook checkout, where go build runs")
	flags.StringVar(&o.out, "out", filepath.Join("bin", "images"), "directory the tarballs are written to")
	flags.StringVar(&o.caCertificates, "ca-certificates", defaultCACertificates, "CA bundle copied into the webhook and probe images; the default is installed with apt-get (Debian's ca-certificates) when missing")
	flags.StringVar(&o.goCommand, "go", "go", "the go command that builds the binaries")
	flags.StringVar(&o.coreDNS, "coredns", "", "a CoreDNS binary (bin/coredns of e2e/tools/build.sh) to write the single-node cluster's DNS image coredns.tar from; empty: no DNS image")
	_ = flags.Parse(os.Args[1:])
	if flags.NArg() != 0 {
		flags.Usage()
		os.Exit(2)
	}
	o.progress = os.Stdout
	o.commandOutput = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err := build(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, progressPrefix+err.Error())
		os.Exit(1)
	}
}

// options are the flags of one run.
type options struct {
	repo, out, caCertificates, goCommand string
	// coreDNS is the CoreDNS binary of the DNS image, or empty.
	coreDNS string
	// progress receives one line per step; commandOutput the output of go build and apt-get.
	progress, commandOutput io.Writer
	// installCACertificates installs Debian's ca-certificates; nil means with apt-get.
	installCACertificates func(ctx context.Context) error
}

// built is one tarball written.
type built struct {
	path string
	tag  name.Tag
	// id is the digest of the image's config: the image ID that crictl images shows. (The
	// manifest digest is not kept: ctr import writes a manifest of its own.)
	id v1.Hash
}

// build builds the binaries and writes the three tarballs into o.out.
func build(ctx context.Context, o options) ([]built, error) {
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	step := func(format string, args ...any) { fmt.Fprintf(o.progress, progressPrefix+format+"\n", args...) }

	install := o.installCACertificates
	if install == nil {
		install = func(ctx context.Context) error { return aptGetInstallCACertificates(ctx, o.commandOutput) }
	}
	caCertificates, err := readCACertificates(ctx, o.caCertificates, o.caCertificates == defaultCACertificates, install, step)
	if err != nil {
		return nil, err
	}

	// The binaries and layers are written beside the output, on its file system, and removed.
	work, err := os.MkdirTemp(o.out, ".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	binDir := filepath.Join(work, "bin")
	cmd := goBuildCommand(ctx, o.goCommand, repo, binDir)
	cmd.Stdout, cmd.Stderr = o.commandOutput, o.commandOutput
	step("building %s: %s", programNames(), describeCommand(cmd))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}

	binaries := make(map[program]string)
	for _, p := range programs() {
		binaries[p] = filepath.Join(binDir, p.name)
	}
	var out []built
	for _, spec := range imageSpecs(binaries, caCertificates, o.coreDNS) {
		b, err := writeImage(spec, o.out, work)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.file, err)
		}
		size := int64(0)
		if fi, err := os.Stat(b.path); err == nil {
			size = fi.Size()
		}
		step("wrote %s: %s, image ID %s, %d layer(s), %.1f MiB (ctr -n k8s.io images import %s)",
			b.path, b.tag, b.id, len(spec.layers), float64(size)/(1<<20), b.path)
		out = append(out, b)
	}
	return out, nil
}

func programNames() string {
	var names []string
	for _, p := range programs() {
		names = append(names, p.name)
	}
	return strings.Join(names, ", ")
}

// goBuildCommand builds every program into binDir with the Dockerfile's flags, in one go build
// (it shares the compiled packages), for linux on this machine's architecture, which the
// images' configs name.
func goBuildCommand(ctx context.Context, goCommand, repo, binDir string) *exec.Cmd {
	args := append([]string{"build"}, goBuildFlags()...)
	args = append(args, "-o", binDir+string(filepath.Separator))
	for _, p := range programs() {
		args = append(args, p.pkg)
	}
	cmd := exec.CommandContext(ctx, goCommand, args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), goBuildEnv()...)
	cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+runtime.GOARCH)
	return cmd
}

// describeCommand renders the command as a shell would read it, with the variables it sets.
func describeCommand(cmd *exec.Cmd) string {
	var words []string
	words = append(words, goBuildEnv()...)
	words = append(words, "GOOS=linux", "GOARCH="+runtime.GOARCH, filepath.Base(cmd.Path))
	for _, a := range cmd.Args[1:] {
		if strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// readCACertificates reads the CA bundle. When it is missing and installable (the default, on a
// minimal Debian), it installs Debian's ca-certificates first; a bundle named by flag must exist.
func readCACertificates(ctx context.Context, file string, installable bool, install func(context.Context) error, step func(string, ...any)) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		step("CA certificates from %s", file)
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !installable {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	step("%s is missing: installing Debian's ca-certificates with apt-get", file)
	if err := install(ctx); err != nil {
		return nil, fmt.Errorf("installing ca-certificates for %s: %w (install it, or pass --ca-certificates FILE)", file, err)
	}
	if b, err = os.ReadFile(file); err != nil {
		return nil, fmt.Errorf("CA certificates after installing ca-certificates: %w", err)
	}
	step("CA certificates from %s", file)
	return b, nil
}

// aptGetInstallCACertificates installs ca-certificates, refreshing the package lists first when
// the install alone fails (a fresh image has none).
func aptGetInstallCACertificates(ctx context.Context, output io.Writer) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("apt-get is not on PATH")
	}
	aptGet := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Stdout, cmd.Stderr = output, output
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.Run()
	}
	install := []string{"install", "-y", "--no-install-recommends", "ca-certificates"}
	if aptGet(install...) == nil {
		return nil
	}
	if err := aptGet("update"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	if err := aptGet(install...); err != nil {
		return fmt.Errorf("apt-get install ca-certificates: %w", err)
	}
	return nil
}

// imageSpec is one image: its tarball, tag, layers (first to last) and run config.
type imageSpec struct {
	file   string
	tag    string
	layers []layerSpec
	config v1.Config
}

// layerSpec is one layer: the entries of its tar, in order (a directory before its contents),
// and the history's created_by, which says where it comes from.
type layerSpec struct {
	createdBy string
	entries   []entry
}

// entry is one file or directory of a layer.
type entry struct {
	// name is the absolute path in the image.
	name string
	// mode holds the permission bits (with sticky) and fs.ModeDir for a directory.
	mode     fs.FileMode
	uid, gid int
	// A file's contents: data, or the host file source.
	data   []byte
	source string
}

// imageSpecs describes the images, given the built binaries, the CA bundle and the CoreDNS
// binary (no DNS image when empty).
func imageSpecs(binaries map[program]string, caCertificates []byte, coreDNS string) []imageSpec {
	base := baseLayer(caCertificates)
	bin := func(p program, dir string) entry {
		return entry{name: path.Join(dir, p.name), mode: 0o755, source: binaries[p]}
	}
	probe := func(file, tag string) imageSpec {
		return imageSpec{
			file: file,
			tag:  tag,
			layers: []layerSpec{base, {
				createdBy: "COPY iss-probe /iss-probe",
				entries:   []entry{bin(probeProgram, "/")},
			}},
			config: v1.Config{
				User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
				Entrypoint: []string{"/iss-probe", "sleep"},
				Env:        distrolessEnv(),
				WorkingDir: "/home/nonroot",
			},
		}
	}
	specs := []imageSpec{
		{
			file: "iss-webhook.tar",
			tag:  "localhost/iss-webhook:dev",
			layers: []layerSpec{base, {
				// The Dockerfile's COPY: root-owned, as COPY without --chown leaves them.
				createdBy: "COPY --from=build /out/iss-webhook /out/issctl /usr/local/bin/",
				entries: append(dirs("/usr", "/usr/local", "/usr/local/bin"),
					bin(webhookProgram, "/usr/local/bin"), bin(issctlProgram, "/usr/local/bin")),
			}},
			config: v1.Config{
				User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
				Entrypoint: []string{"/usr/local/bin/iss-webhook"},
				Env:        distrolessEnv(),
				WorkingDir: "/home/nonroot",
			},
		},
		{
			file: "pause.tar",
			tag:  "localhost/iss-pause:dev",
			layers: []layerSpec{{
				createdBy: "COPY iss-pause /pause",
				entries:   []entry{{name: "/pause", mode: 0o755, source: binaries[pauseProgram]}},
			}},
			config: v1.Config{
				User:       fmt.Sprintf("%d:%d", pauseID, pauseID),
				Entrypoint: []string{"/pause"},
				Env:        distrolessEnv()[:1],
				WorkingDir: "/",
			},
		},
		probe("probe.tar", "localhost/iss-probe:dev"),
		// The probe under a second name, for ephemeral containers: an engine's debug container
		// may not run the engine's own image.
		probe("probe-debug.tar", "localhost/iss-probe-debug:dev"),
	}
	if coreDNS != "" {
		specs = append(specs, imageSpec{
			file: "coredns.tar",
			tag:  "localhost/iss-coredns:dev",
			layers: []layerSpec{base, {
				createdBy: "COPY coredns /coredns",
				entries:   []entry{{name: "/coredns", mode: 0o755, source: coreDNS}},
			}},
			config: v1.Config{
				User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
				Entrypoint: []string{"/coredns"},
				Env:        distrolessEnv(),
				WorkingDir: "/",
			},
		})
	}
	return specs
}

// baseLayer is what gcr.io/distroless/static:nonroot gives the program: the users root, nobody
// and nonroot (65532) with their groups, nonroot's home, a world-writable /tmp, and the CA
// bundle. It leaves out the time zone database and /etc/os-release, which nothing here reads.
func baseLayer(caCertificates []byte) layerSpec {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonrootID, nonrootID)
	group := "root:x:0:\n" +
		"nobody:x:65534:\n" +
		fmt.Sprintf("nonroot:x:%d:\n", nonrootID)
	entries := dirs("/etc")
	entries = append(entries,
		entry{name: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		entry{name: "/etc/group", mode: 0o644, data: []byte(group)},
	)
	entries = append(entries, dirs("/etc/ssl", "/etc/ssl/certs")...)
	entries = append(entries,
		entry{name: defaultCACertificates, mode: 0o644, data: caCertificates},
		entry{name: "/home", mode: fs.ModeDir | 0o755},
		entry{name: "/home/nonroot", mode: fs.ModeDir | 0o700, uid: nonrootID, gid: nonrootID},
		entry{name: "/root", mode: fs.ModeDir | 0o700},
		entry{name: "/tmp", mode: fs.ModeDir | fs.ModeSticky | 0o777},
	)
	return layerSpec{createdBy: "distroless-like base: /etc/passwd, /etc/group, CA certificates, /home/nonroot, /tmp", entries: entries}
}

// dirs returns root-owned 0755 directories.
func dirs(names ...string) []entry {
	var out []entry
	for _, n := range names {
		out = append(out, entry{name: n, mode: fs.ModeDir | 0o755})
	}
	return out
}

// writeImage writes the image's tarball into dir, its layers first into work, and returns the
// tarball's path, tag and image ID.
func writeImage(spec imageSpec, dir, work string) (built, error) {
	tag, err := name.NewTag(spec.tag, name.StrictValidation)
	if err != nil {
		return built{}, err
	}
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       spec.config,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return built{}, err
	}
	var adds []mutate.Addendum
	for i, l := range spec.layers {
		file := filepath.Join(work, fmt.Sprintf("%s.layer%d.tar.gz", strings.TrimSuffix(spec.file, ".tar"), i))
		if err := writeLayer(file, l.entries); err != nil {
			return built{}, fmt.Errorf("layer %d: %w", i, err)
		}
		layer, err := tarball.LayerFromFile(file)
		if err != nil {
			return built{}, err
		}
		adds = append(adds, mutate.Addendum{
			Layer:   layer,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: l.createdBy, Comment: "iss-image"},
		})
	}
	if img, err = mutate.Append(img, adds...); err != nil {
		return built{}, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return built{}, err
	}
	out := filepath.Join(dir, spec.file)
	// Written aside and renamed, so that an interrupted run leaves no half tarball to import.
	partial := out + ".partial"
	if err := tarball.WriteToFile(partial, tag, img); err != nil {
		os.Remove(partial)
		return built{}, err
	}
	if err := os.Rename(partial, out); err != nil {
		return built{}, err
	}
	return built{path: out, tag: tag, id: id}, nil
}

// writeLayer writes the entries as a gzipped tar. Compressed here once, the layer is used as it
// is: its digest is the file's and the tarball copies it.
func writeLayer(file string, entries []entry) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	// No name or time in the gzip header, so that the bytes repeat.
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := writeTar(zw, entries); err != nil {
		return err
	}
	return zw.Close()
}

// writeTar writes the entries as a tar stream with fixed times and no user or group names.
func writeTar(w io.Writer, entries []entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if !path.IsAbs(e.name) {
			return fmt.Errorf("%q is not an absolute path", e.name)
		}
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(e.name, "/"),
			Mode:    tarMode(e.mode),
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: epoch,
		}
		if e.mode.IsDir() {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr.Typeflag = tar.TypeReg
		var contents io.Reader = bytes.NewReader(e.data)
		hdr.Size = int64(len(e.data))
		if e.source != "" {
			src, err := os.Open(e.source)
			if err != nil {
				return err
			}
			defer src.Close()
			fi, err := src.Stat()
			if err != nil {
				return err
			}
			hdr.Size, contents = fi.Size(), src
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, contents); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
	}
	return tw.Close()
}

// tarMode is the tar header's mode of the permission bits and sticky bit of m.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
