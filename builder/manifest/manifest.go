// Package manifest describes a built image in manifest.json: what it was built from
// (base, mirrors, commit), what is in it (every installed package with its version)
// and what came out (files, sizes, checksums).
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Manifest is the content of manifest.json.
type Manifest struct {
	Base           string    `json:"base"`
	Suite          string    `json:"suite"`
	Mirror         string    `json:"mirror"`
	SecurityMirror string    `json:"security_mirror,omitempty"`
	Commit         string    `json:"commit,omitempty"`
	BuiltAt        time.Time `json:"built_at"`
	BuildSeconds   float64   `json:"build_seconds"`
	BaseCacheHit   bool      `json:"base_cache_hit"`
	Kernel         string    `json:"kernel"`
	Disk           Disk      `json:"disk"`
	Files          []File    `json:"files"`
	Packages       []Package `json:"packages"`
}

// Disk describes the partitioning.
type Disk struct {
	SizeBytes   int64  `json:"size_bytes"`
	RootUUID    string `json:"root_uuid"`
	RootLabel   string `json:"root_label"`
	ESPVolumeID string `json:"esp_volume_id"`
	// RootUsedBytes is the size of the root tree that went into the filesystem.
	RootUsedBytes int64 `json:"root_used_bytes"`
}

// File is one output file.
type File struct {
	Name           string `json:"name"`
	Format         string `json:"format"`
	SizeBytes      int64  `json:"size_bytes"`
	AllocatedBytes int64  `json:"allocated_bytes"`
	SHA256         string `json:"sha256"`
}

// Package is one installed Debian package.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
}

// Packages reads the installed packages from root's dpkg status file, sorted by name.
func Packages(root string) ([]Package, error) {
	data, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, err
	}
	var out []Package
	for _, stanza := range strings.Split(string(data), "\n\n") {
		f := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(stanza))
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			if k, v, ok := strings.Cut(line, ":"); ok {
				f[k] = strings.TrimSpace(v)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if f["Package"] == "" || !strings.HasSuffix(f["Status"], " installed") {
			continue
		}
		out = append(out, Package{Name: f["Package"], Version: f["Version"], Architecture: f["Architecture"]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no installed packages in %s", root)
	}
	return out, nil
}

// GitCommit is the commit checked out in dir, with "-dirty" when the work tree has
// changes; "" when dir is not a git work tree or git is missing.
func GitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		commit += "-dirty"
	}
	return commit
}

// Write stores m as indented JSON at path.
func (m *Manifest) Write(path string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
