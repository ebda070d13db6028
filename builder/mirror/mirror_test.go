package mirror

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/images"
)

// The host names below are placeholders in .invalid: parsing never resolves them.
const deb822 = `Types: deb
# a comment
URIs: http://archive.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://security.example.invalid/debian-security/
Suites: bookworm-security
Components: main
 contrib

Types: deb
Enabled: no
URIs: http://disabled.example.invalid/debian
Suites: trixie
Components: main
`

const oneLine = `# comment
deb-src http://src.example.invalid/ubuntu noble main
deb [arch=amd64 signed-by=/k.gpg] http://ubuntu.example.invalid/ubuntu noble main universe
deb http://other.example.invalid/apt cloud-sdk-bookworm main
`

func base(t *testing.T, name string) *images.Base {
	t.Helper()
	b, err := images.LookupBase(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	s, err := ParseDeb822(deb822)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[1].Components[1] != "contrib" || s[0].Suites[1] != "bookworm-updates" {
		t.Fatalf("deb822: %+v", s)
	}
	l, err := ParseOneLine(oneLine)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].URIs[0] != "http://ubuntu.example.invalid/ubuntu" || strings.Join(l[0].Components, ",") != "main,universe" {
		t.Fatalf("one-line: %+v", l)
	}
	for _, bad := range []string{"deb\n", "rpm http://x y\n", "deb [arch=amd64 http://x y\n"} {
		if _, err := ParseOneLine(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := ParseDeb822("Types: deb\nSuites: x\n"); err == nil {
		t.Error("stanza without URIs accepted")
	}
}

func TestFind(t *testing.T) {
	d, _ := ParseDeb822(deb822)
	l, _ := ParseOneLine(oneLine)
	srcs := append(d, l...)

	// trixie is not listed, but the host's Debian archive serves every Debian suite.
	m, err := Find(srcs, base(t, "debian-trixie"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Archive != "http://archive.example.invalid/debian" || m.Security != "http://security.example.invalid/debian-security" {
		t.Fatalf("trixie: %+v", m)
	}
	m, err = Find(srcs, base(t, "ubuntu-noble"), "", "")
	if err != nil || m.Archive != "http://ubuntu.example.invalid/ubuntu" || m.Security != m.Archive {
		t.Fatalf("noble: %+v %v", m, err)
	}
	_, err = Find(d, base(t, "ubuntu-xenial"), "", "")
	if err == nil || !strings.Contains(err.Error(), "mirror variable") {
		t.Fatalf("xenial on a Debian-only host: %v", err)
	}
	m, err = Find(d, base(t, "ubuntu-xenial"), "http://given.example.invalid/ubuntu/", "")
	if err != nil || m.Archive != "http://given.example.invalid/ubuntu" || m.Security != m.Archive {
		t.Fatalf("xenial with mirror: %+v %v", m, err)
	}
}

func TestReadHost(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"debian.sources":          deb822,
		"ubuntu.list":             oneLine,
		"broken.sources.disabled": "garbage",
		"nodesource.list.save":    "garbage",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srcs, err := ReadHost(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 4 || !strings.HasSuffix(srcs[0].File, "debian.sources") {
		t.Fatalf("%+v", srcs)
	}
	// The real host's sources must parse, whatever they are.
	if _, err := ReadHost("/"); err != nil {
		t.Fatal(err)
	}
}
