package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

const status = `Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.3.dfsg-3+b1
Description: compression library
 runtime

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 13.8
`

func TestPackagesAndWrite(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := Packages(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].Name != "base-files" || pkgs[1].Version != "1:1.3.dfsg-3+b1" {
		t.Fatalf("%+v", pkgs)
	}
	m := &Manifest{Base: "debian-trixie", Packages: pkgs}
	p := filepath.Join(root, "manifest.json")
	if err := m.Write(p); err != nil {
		t.Fatal(err)
	}
	var back Manifest
	data, _ := os.ReadFile(p)
	if err := json.Unmarshal(data, &back); err != nil || back.Packages[1].Name != "zlib1g" {
		t.Fatalf("%v %+v", err, back)
	}
	if _, err := Packages(t.TempDir()); err == nil {
		t.Error("root without dpkg status accepted")
	}
	// This repository is a git work tree.
	if c := GitCommit("."); len(c) < 40 {
		t.Errorf("commit %q", c)
	}
}
