package pdfas

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
	"github.com/ethikkom/ecs-appliance/internal/filesum"
)

// downloadWithin bounds one download (the war is about 60 MB).
const downloadWithin = 10 * time.Minute

// Names in Dir and ContextDir.
const (
	warName    = "pdf-as-web.war"
	configZip  = "defaultConfig.zip"
	configName = "config"
)

// baseRepository tags the pinned base for the Dockerfile's FROM.
const baseRepository = Repository + "-base"

// builder makes the image for one env's pins.
type builder struct {
	m     *machine.Machine
	p     env.PDFAS
	image string
	// client downloads; nil means one with downloadWithin as its timeout.
	client *http.Client
}

// ensure builds the image unless docker has it; built says it did.
func (b *builder) ensure(ctx context.Context) (built bool, err error) {
	if b.has(ctx, b.image) {
		return false, nil
	}
	base, err := b.base(ctx)
	if err != nil {
		return false, err
	}
	if err := b.context(ctx); err != nil {
		return false, err
	}
	b.m.Out.Detail("building %s from %s", b.image, b.p.Base)
	if _, err := b.docker(ctx, "build", "-q", "--build-arg", "BASE="+base, "-t", b.image, b.m.Path(ContextDir)); err != nil {
		return false, fmt.Errorf("building %s: %w", b.image, err)
	}
	b.removeOld(ctx, base)
	return true, nil
}

// removeOld untags the images of earlier pins, which only take space; one still in
// use (its container not yet replaced) stays until the next build.
func (b *builder) removeOld(ctx context.Context, keep ...string) {
	keep = append(keep, b.image)
	for _, repo := range []string{Repository, baseRepository} {
		out, err := b.docker(ctx, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo)
		if err != nil {
			return
		}
		for _, ref := range strings.Fields(out) {
			if slices.Contains(keep, ref) {
				continue
			}
			if _, err := b.docker(ctx, "image", "rm", ref); err == nil {
				b.m.Out.Detail("removed %s, made for an earlier ecs.pdfas", ref)
			}
		}
	}
}

// base finds the pinned Tomcat image (loaded before, in an archive baked into the disk
// image, or pulled by its name now), checks its ID and tags it for the Dockerfile's
// FROM.
func (b *builder) base(ctx context.Context) (string, error) {
	name, id, _ := strings.Cut(b.p.Base, "@")
	if !b.has(ctx, id) {
		if err := docker.LoadArchives(ctx, b.m); err != nil {
			return "", err
		}
	}
	if !b.has(ctx, id) {
		b.m.Out.Detail("pulling %s: no image %s here", name, id)
		if _, err := b.docker(ctx, "pull", "-q", name); err != nil {
			return "", fmt.Errorf("the Tomcat base %s is not here and pulling it failed (an air-gapped site bakes its archive into the disk image: image_archives): %w", name, err)
		}
		got, err := b.docker(ctx, "image", "inspect", "--format", "{{.Id}}", name)
		if err != nil {
			return "", err
		}
		if got != id {
			return "", fmt.Errorf("%s pulled as %s, but ecs.pdfas.base pins %s: the tag now names another image; check it and pin its ID", name, got, id)
		}
	}
	local := baseRepository + ":" + strings.TrimPrefix(id, "sha256:")[:16]
	if _, err := b.docker(ctx, "tag", id, local); err != nil {
		return "", err
	}
	return local, nil
}

// context places the war and the unpacked configuration in the build context, each
// downloaded unless Dir holds the file with its checksum already.
func (b *builder) context(ctx context.Context) error {
	war, err := b.fetch(ctx, b.p.War, filepath.Join(Dir, warName))
	if err != nil {
		return err
	}
	cfg, err := b.fetch(ctx, b.p.Config, filepath.Join(Dir, configZip))
	if err != nil {
		return err
	}
	// A hard link: the context is beside the downloads, and the war is large.
	inContext := b.m.Path(filepath.Join(ContextDir, warName))
	if err := os.Remove(inContext); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Link(war, inContext); err != nil {
		return err
	}
	return unzip(cfg, b.m.Path(filepath.Join(ContextDir, configName)))
}

// fetch returns the path of d's file at name, downloading it first unless it is
// there with d's checksum. A download is written beside name and renamed only when
// its checksum matches, so name never holds a file that was not checked.
func (b *builder) fetch(ctx context.Context, d env.Download, name string) (string, error) {
	p := b.m.Path(name)
	if sum, err := filesum.SHA256(p); err == nil && sum == d.SHA256 {
		return p, nil
	}
	shown := redact(d.URL)
	b.m.Out.Detail("downloading %s", shown)
	client := b.client
	if client == nil {
		client = &http.Client{Timeout: downloadWithin}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		// The client's error names the URL, its password replaced.
		return "", fmt.Errorf("downloading: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("downloading %s: %s", shown, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	part := p + ".part"
	f, err := os.Create(part)
	if err != nil {
		return "", err
	}
	defer os.Remove(part)
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", shown, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 {
		return "", fmt.Errorf("%s has SHA-256 %s, not the %s the env names: not used", shown, got, d.SHA256)
	}
	return p, os.Rename(part, p)
}

// redact is a URL fit for messages: a password in it replaced.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the URL"
	}
	return u.Redacted()
}

// unzip replaces dir with the archive's regular files and directories; an entry
// that would land outside dir (an absolute name, "..") or is not a plain file or
// directory refuses the whole archive.
func unzip(archive, dir string) error {
	r, err := zip.OpenReader(archive)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	defer r.Close()
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range r.File {
		if err := extract(f, tmp); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(archive), err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func extract(f *zip.File, dir string) error {
	name := filepath.FromSlash(f.Name)
	if !filepath.IsLocal(name) {
		return fmt.Errorf("entry %q is not inside the archive's directory", f.Name)
	}
	p := filepath.Join(dir, name)
	mode := f.Mode()
	switch {
	case mode.IsDir():
		return os.MkdirAll(p, 0o755)
	case !mode.IsRegular():
		return fmt.Errorf("entry %q is not a regular file", f.Name)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	src, err := f.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// has says whether docker has the image ref (a name or an ID).
func (b *builder) has(ctx context.Context, ref string) bool {
	_, err := b.docker(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	return err == nil
}

func (b *builder) docker(ctx context.Context, args ...string) (string, error) {
	out, err := b.m.Run(ctx, machine.Command{Name: "docker", Args: args})
	return strings.TrimSpace(string(out)), err
}
