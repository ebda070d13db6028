// Command image-archive turns a root filesystem tarball into an image archive for
// `docker load`, with no docker daemon and no registry. See -help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ethikkom/ecs-appliance/builder/mirror"
	"github.com/ethikkom/ecs-appliance/images"
	"github.com/ethikkom/ecs-appliance/images/archive"
)

const usage = `image-archive: make a docker-load image archive from a root filesystem tarball.

Usage:
  image-archive --rootfs ROOTFS.tar --ref NAME:TAG [--env K=V]... [--workdir DIR]
                [--user USER] [--label K=V]... [--entrypoint JSON] [--cmd JSON] -o OUT.tar
  image-archive --print-mirror BASE

The root filesystem tarball is what 'mmdebstrap --format=tar' writes (uncompressed).
It becomes the image's only layer; OUT.tar is then loaded on the machine that runs the
containers with 'docker load -i OUT.tar', which tags it NAME:TAG. The image digest
(sha256:...) is printed on standard output. OUT.tar appears only when it is complete:
on an error any existing OUT.tar is left as it was.

--print-mirror prints the Debian/Ubuntu archive the build host's apt sources use for
BASE (e.g. debian-trixie), the same one the image builder bootstraps from, and exits.

Options:
`

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image-archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		rootfs      = fs.String("rootfs", "", "root filesystem tarball `ROOTFS.tar` (required)")
		ref         = fs.String("ref", "", "image name with tag, `NAME:TAG` (required), e.g. ecs-standin-base:trixie")
		out         = fs.String("o", "", "output archive `OUT.tar` (required)")
		workdir     = fs.String("workdir", "", "working `DIR` of the image's containers")
		user        = fs.String("user", "", "`USER` the containers run as (default root)")
		entrypoint  = fs.String("entrypoint", "", "entrypoint as a JSON array, e.g. '[\"/docker-entrypoint.sh\"]'")
		cmd         = fs.String("cmd", "", "default command as a JSON array, e.g. '[\"simple\"]'")
		created     = fs.String("created", "", "creation time, RFC 3339 or Unix seconds (default $SOURCE_DATE_EPOCH, else 1970-01-01: reproducible)")
		printMirror = fs.String("print-mirror", "", "print the build host's archive for `BASE` and exit")
		env, labels multi
	)
	fs.Var(&env, "env", "environment variable `K=V` of the image (repeatable)")
	fs.Var(&labels, "label", "label `K=V` of the image (repeatable)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "image-archive: unexpected arguments %q (see -help)\n", fs.Args())
		return 2
	}
	if *printMirror != "" {
		m, err := hostMirror(*printMirror)
		if err != nil {
			fmt.Fprintln(stderr, "image-archive:", err)
			return 1
		}
		fmt.Fprintln(stdout, m)
		return 0
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--rootfs", *rootfs}, {"--ref", *ref}, {"-o", *out}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "image-archive: missing %s (see -help)\n", strings.Join(missing, ", "))
		return 2
	}
	cfg := archive.Config{Env: env, WorkingDir: *workdir, User: *user}
	var err error
	if cfg.Entrypoint, err = jsonArgs("--entrypoint", *entrypoint); err == nil {
		cfg.Cmd, err = jsonArgs("--cmd", *cmd)
	}
	if err == nil {
		cfg.Labels, err = keyValues("--label", labels)
	}
	if err == nil {
		cfg.Created, err = creationTime(*created)
	}
	if err != nil {
		fmt.Fprintln(stderr, "image-archive:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	digest, err := archive.Write(ctx, *rootfs, *ref, cfg, *out)
	if err != nil {
		fmt.Fprintln(stderr, "image-archive:", err)
		return 1
	}
	if st, err := os.Stat(*out); err == nil {
		fmt.Fprintf(stderr, "image-archive: wrote %s (%s, %.1f MiB) in %s\n", *out, *ref, float64(st.Size())/(1<<20), time.Since(start).Round(100*time.Millisecond))
	}
	fmt.Fprintln(stdout, digest)
	return 0
}

func hostMirror(baseName string) (string, error) {
	base, err := images.LookupBase(baseName)
	if err != nil {
		return "", err
	}
	srcs, err := mirror.ReadHost("/")
	if err != nil {
		return "", err
	}
	m, err := mirror.Find(srcs, base, "", "")
	if err != nil {
		return "", err
	}
	return m.Archive, nil
}

func keyValues(flagName string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want K=V", flagName, kv)
		}
		m[k] = v
	}
	return m, nil
}

func creationTime(s string) (time.Time, error) {
	if s == "" {
		s = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("creation time %q: want RFC 3339 or Unix seconds", s)
	}
	return t, nil
}
