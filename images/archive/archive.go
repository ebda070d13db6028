// Package archive turns a root filesystem tarball (as `mmdebstrap --format=tar` writes
// it) into a one-layer image archive that `docker load` accepts, without a docker
// daemon or a registry: the layer is the tarball, gzip-compressed, and the archive is
// the classic docker-save layout (manifest.json with the repository tag, the config
// and the layer) written by go-containerregistry's tarball package.
package archive

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

// Config is the image configuration set on the archive's image (the parts of a
// Dockerfile's ENV, ENTRYPOINT, CMD, WORKDIR, USER and LABEL).
type Config struct {
	Env        []string // KEY=VALUE
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	Labels     map[string]string
	// Created is the image's creation time; zero means the Unix epoch, so the same
	// rootfs and configuration always give the same digest.
	Created time.Time
	// Architecture and OS default to the running program's (mmdebstrap bootstraps the
	// build host's architecture unless told otherwise).
	Architecture string
	OS           string
}

// ParseRef checks that ref is a full image name with an explicit tag (NAME:TAG, such
// as ecs-standin-base:trixie or registry.example/app:1) and returns it as a tag.
// Digest references and names without a tag are refused: `docker load` needs the tag
// to name the image, and a silently added ":latest" is not what a build asked for.
func ParseRef(ref string) (name.Tag, error) {
	if strings.Contains(ref, "@") {
		return name.Tag{}, fmt.Errorf("image reference %q: want NAME:TAG, not a digest reference", ref)
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.Contains(last, ":") {
		return name.Tag{}, fmt.Errorf("image reference %q has no tag: want NAME:TAG (e.g. ecs-standin-base:trixie)", ref)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image reference %q: want NAME:TAG: %w", ref, err)
	}
	return tag, nil
}

// Write makes an image from the root filesystem tarball rootfsTar with configuration
// cfg, tagged ref, and writes it as a docker-load archive to out. It returns the
// image's manifest digest (sha256:…). The archive appears atomically: it is written
// to a temporary file beside out and renamed into place, and on any error nothing is
// left behind (an existing out is then untouched).
func Write(ctx context.Context, rootfsTar, ref string, cfg Config, out string) (digest string, err error) {
	tag, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(rootfsTar)
	if err != nil {
		return "", fmt.Errorf("root filesystem tarball: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("root filesystem tarball %s is not a regular file", rootfsTar)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}

	dir := filepath.Dir(out)
	base := filepath.Base(out)
	// The compressed layer is made once, into a scratch file beside the output (the
	// tarball package would otherwise gzip the rootfs once per pass over the layer).
	gz, err := os.CreateTemp(dir, "."+base+".layer-*.gz")
	if err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	defer os.Remove(gz.Name())
	if err := compress(ctx, rootfsTar, gz); err != nil {
		gz.Close()
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(ctxOpener(ctx, gz.Name()))
	if err != nil {
		return "", fmt.Errorf("layer from %s: %w", rootfsTar, err)
	}

	img, err := image(layer, cfg, filepath.Base(rootfsTar))
	if err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("image digest: %w", err)
	}

	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tarball.Write(tag, img, tmp); err != nil {
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return "", err
	}
	if err = tmp.Sync(); err != nil {
		return "", err
	}
	if err = tmp.Close(); err != nil {
		return "", err
	}
	if err = ctx.Err(); err != nil {
		return "", err
	}
	if err = os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return d.String(), nil
}

// image is the one-layer image with cfg applied.
func image(layer v1.Layer, cfg Config, source string) (v1.Image, error) {
	created := cfg.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "image-archive: root filesystem " + source,
			Comment:   "one layer made from a root filesystem tarball",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = orDefault(cfg.Architecture, runtime.GOARCH)
	cf.OS = orDefault(cfg.OS, "linux")
	cf.Created = v1.Time{Time: created}
	for _, e := range cfg.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, fmt.Errorf("environment entry %q: want KEY=VALUE", e)
		}
	}
	cf.Config.Env = cfg.Env
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.WorkingDir = cfg.WorkingDir
	cf.Config.User = cfg.User
	cf.Config.Labels = cfg.Labels
	return mutate.ConfigFile(img, cf)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// compress gzips the file at path into w (fastest level: the layer is written once
// and loaded once, on the same machine).
func compress(ctx context.Context, path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("root filesystem tarball: %w", err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("compressing %s: %w", path, err)
	}
	return zw.Close()
}

// ctxOpener opens path for the tarball package, each read failing once ctx is done.
func ctxOpener(ctx context.Context, path string) tarball.Opener {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{ctxReader{ctx, f}, f}, nil
	}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
