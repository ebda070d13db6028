package docker

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTar(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	// The layer first, as docker save and go-containerregistry write it.
	for _, name := range []string{"layer.tar", "manifest.json"} {
		data, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	f.Close()
	return p
}

func TestArchiveRefs(t *testing.T) {
	a := writeTar(t, map[string]string{
		"layer.tar":     strings.Repeat("x", 1<<20),
		"manifest.json": `[{"Config":"sha256:1","RepoTags":["ecs-standin-base:trixie"],"Layers":["layer.tar"]},{"RepoTags":["tomcat:9"]}]`,
	})
	refs, err := ArchiveRefs(a)
	if err != nil || strings.Join(refs, ",") != "ecs-standin-base:trixie,tomcat:9" {
		t.Errorf("ArchiveRefs = %v, %v", refs, err)
	}
	for name, files := range map[string]map[string]string{
		"no manifest.json": {"layer.tar": "x"},
		"tags no image":    {"manifest.json": `[{"Config":"sha256:1"}]`},
		"manifest.json:":   {"manifest.json": `{`},
	} {
		if _, err := ArchiveRefs(writeTar(t, files)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
