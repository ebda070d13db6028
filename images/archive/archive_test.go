package archive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// rootfs writes a tiny root filesystem tarball the way mmdebstrap lays one out
// ("./"-prefixed names, directories first, a symlink).
func rootfs(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name, body, link string
		typ              byte
		mode             int64
	}{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/os-release", body: "ID=debian\nVERSION_CODENAME=trixie\n", typ: tar.TypeReg, mode: 0o644},
		{name: "./usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/bin/hello", body: "#!/bin/sh\necho hello\n", typ: tar.TypeReg, mode: 0o755},
		{name: "./bin", link: "usr/bin", typ: tar.TypeSymlink, mode: 0o777},
	} {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Linkname: e.link}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteReadBack(t *testing.T) {
	dir := t.TempDir()
	src := rootfs(t, dir)
	out := filepath.Join(dir, "image.tar")
	cfg := Config{
		Env:        []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"},
		Entrypoint: []string{"/docker-entrypoint.sh"},
		Cmd:        []string{"simple"},
		WorkingDir: "/app",
		User:       "app",
		Labels:     map[string]string{"org.example.fixture": "yes"},
	}
	digest, err := Write(context.Background(), src, "ecs-standin-base:trixie", cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := img.Digest(); err != nil || d.String() != digest {
		t.Errorf("digest read back %v (%v), Write returned %s", d, err, digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Env, cfg.Env) || !reflect.DeepEqual(c.Entrypoint, cfg.Entrypoint) ||
		!reflect.DeepEqual(c.Cmd, cfg.Cmd) || c.WorkingDir != "/app" || c.User != "app" ||
		!reflect.DeepEqual(c.Labels, cfg.Labels) {
		t.Errorf("config read back: %+v", c)
	}
	if cf.OS != "linux" || cf.Architecture == "" || cf.Created.Unix() != 0 {
		t.Errorf("os %q architecture %q created %v", cf.OS, cf.Architecture, cf.Created)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	if len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("diff IDs %v", cf.RootFS.DiffIDs)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
		if h.Typeflag == tar.TypeSymlink {
			files[h.Name] = "-> " + h.Linkname
		}
		if h.Name == "./usr/bin/hello" && h.Mode&0o777 != 0o755 {
			t.Errorf("hello mode %o", h.Mode)
		}
	}
	if files["./etc/os-release"] != "ID=debian\nVERSION_CODENAME=trixie\n" || files["./usr/bin/hello"] != "#!/bin/sh\necho hello\n" || files["./bin"] != "-> usr/bin" {
		t.Errorf("layer files: %q", files)
	}

	// manifest.json names the tag docker load gives the image.
	manifest := readMember(t, out, "manifest.json")
	var m tarball.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !reflect.DeepEqual(m[0].RepoTags, []string{"ecs-standin-base:trixie"}) || len(m[0].Layers) != 1 {
		t.Errorf("manifest.json: %s", manifest)
	}
	noLeftovers(t, dir, "rootfs.tar", "image.tar")

	// The same input gives the same image.
	again, err := Write(context.Background(), src, "ecs-standin-base:trixie", cfg, out)
	if err != nil || again != digest {
		t.Errorf("second write: %s, %v; first %s", again, err, digest)
	}
}

func TestErrorsLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	src := rootfs(t, dir)
	out := filepath.Join(dir, "image.tar")
	for _, tc := range []struct {
		what, rootfs, ref, want string
		cfg                     Config
	}{
		{what: "no tag", rootfs: src, ref: "ecs-standin-base", want: "has no tag"},
		{what: "tag on the registry port only", rootfs: src, ref: "localhost:5000/ecs", want: "has no tag"},
		{what: "digest", rootfs: src, ref: "ecs@sha256:0123456789012345678901234567890123456789012345678901234567890123", want: "not a digest"},
		{what: "bad name", rootfs: src, ref: "ECS Stand-in:trixie", want: "want NAME:TAG"},
		{what: "empty", rootfs: src, ref: "", want: "has no tag"},
		{what: "missing rootfs", rootfs: filepath.Join(dir, "nope.tar"), ref: "ecs-standin-base:trixie", want: "nope.tar: no such file"},
		{what: "rootfs is a directory", rootfs: dir, ref: "ecs-standin-base:trixie", want: "not a regular file"},
		{what: "bad env", rootfs: src, ref: "ecs-standin-base:trixie", cfg: Config{Env: []string{"NOEQUALS"}}, want: "want KEY=VALUE"},
	} {
		_, err := Write(context.Background(), tc.rootfs, tc.ref, tc.cfg, out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.what, err, tc.want)
		}
		noLeftovers(t, dir, "rootfs.tar")
	}

	// A missing output directory is an error too, and a cancelled context stops the
	// write with the previous archive untouched.
	if _, err := Write(context.Background(), src, "a:b", Config{}, filepath.Join(dir, "no/such/dir.tar")); err == nil {
		t.Error("missing output directory: no error")
	}
	os.WriteFile(out, []byte("previous"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, src, "a:b", Config{}, out); err == nil {
		t.Error("cancelled: no error")
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Errorf("cancelled write changed the previous archive: %q", b)
	}
	noLeftovers(t, dir, "rootfs.tar", "image.tar")
}

func readMember(t *testing.T, archive, name string) []byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s in %s: %v", name, archive, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// noLeftovers checks that dir holds exactly the named files (no temporary files).
func noLeftovers(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	sort.Strings(want)
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}
