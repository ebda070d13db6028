package bootstrap

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/builder/chroot"
	"github.com/ethikkom/ecs-appliance/builder/mirror"
	"github.com/ethikkom/ecs-appliance/images"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func base(t *testing.T, name string) *images.Base {
	t.Helper()
	b, err := images.LookupBase(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testMirrors = mirror.Mirrors{Archive: "http://archive.example.invalid/debian", Security: "http://security.example.invalid/debian-security"}

func TestCommandAndLines(t *testing.T) {
	s := &Spec{Base: base(t, "debian-trixie"), Mirrors: testMirrors}
	argv := strings.Join(s.Command("/r"), " ")
	for _, want := range []string{"mmdebstrap --mode=root", "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg", "linux-image-amd64", "grub-efi-amd64-bin",
		"trixie /r deb http://archive.example.invalid/debian trixie trixie-updates main deb http://security.example.invalid/debian-security trixie-security main"} {
		if !strings.Contains(argv, want) {
			t.Errorf("mmdebstrap command lacks %q:\n%s", want, argv)
		}
	}
	x := &Spec{Base: base(t, "ubuntu-xenial"), Mirrors: mirror.Mirrors{Archive: "http://u.example.invalid/ubuntu"}, Insecure: true}
	argv = strings.Join(x.Command("/r"), " ")
	if !strings.HasPrefix(argv, "debootstrap ") || !strings.Contains(argv, "--no-check-gpg") || !strings.HasSuffix(argv, "xenial /r http://u.example.invalid/ubuntu") {
		t.Errorf("debootstrap command: %s", argv)
	}
}

func TestKeyChanges(t *testing.T) {
	a := &Spec{Base: base(t, "debian-trixie"), Mirrors: testMirrors, Insecure: true}
	ka, err := a.Key()
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.Mirrors.Archive = "http://other.example.invalid/debian"
	kb, _ := b.Key()
	c := *a
	bb := *a.Base
	bb.Packages.System = append([]string{"vim"}, bb.Packages.System...)
	c.Base = &bb
	kc, _ := c.Key()
	if ka == kb || ka == kc || !strings.HasPrefix(ka, "debian-trixie-") {
		t.Errorf("keys %s %s %s", ka, kb, kc)
	}
}

func TestCheckKeyring(t *testing.T) {
	s := &Spec{Base: base(t, "debian-trixie"), Mirrors: testMirrors}
	if _, err := os.Stat(s.Base.Keyring.File); err != nil {
		testtool.Missing(t, "debian-archive-keyring not installed")
	}
	if err := s.CheckKeyring(); err != nil {
		t.Fatal(err)
	}
	s.Keyring = filepath.Join(t.TempDir(), "missing.gpg")
	if err := s.CheckKeyring(); err == nil || !strings.Contains(err.Error(), "insecure") {
		t.Errorf("missing keyring: %v", err)
	}
	// A real keyring without trixie's keys must be refused.
	s.Keyring = "/usr/share/keyrings/debian-archive-bullseye-stable.gpg"
	if _, err := os.Stat(s.Keyring); err == nil {
		if err := s.CheckKeyring(); err == nil || !strings.Contains(err.Error(), "lacks key") {
			t.Errorf("keyring without the archive key: %v", err)
		}
	}
	s.Insecure = true
	if err := s.CheckKeyring(); err != nil {
		t.Errorf("insecure still checks: %v", err)
	}
}

// TestPrepareFromHostMirror bootstraps a trimmed default base (no kernel, to stay
// quick) from the build host's configured mirror, then again from the cache.
func TestPrepareFromHostMirror(t *testing.T) {
	testtool.RequireRoot(t)
	testtool.Require(t, "mmdebstrap", "tar")
	b := *base(t, "")
	b.Packages.Kernel, b.Packages.Bootloader = nil, nil
	srcs, err := mirror.ReadHost("/")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mirror.Find(srcs, &b, "", "")
	if err != nil {
		testtool.Missing(t, "no Debian mirror configured on this host: "+err.Error())
	}
	spec := &Spec{Base: &b, Mirrors: m}
	cache := t.TempDir()
	for i, wantHit := range []bool{false, true} {
		root := filepath.Join(t.TempDir(), "root")
		os.Mkdir(root, 0o755)
		res, err := Prepare(context.Background(), spec, cache, root, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		if res.CacheHit != wantHit {
			t.Fatalf("run %d: cache hit %v", i, res.CacheHit)
		}
		t.Logf("run %d: %s (hit=%v)", i, res.Duration, res.CacheHit)
		src, _ := os.ReadFile(filepath.Join(root, "etc/apt/sources.list"))
		if !strings.Contains(string(src), "deb "+m.Archive+" trixie trixie-updates main") {
			t.Errorf("sources.list:\n%s", src)
		}
		if mods, _ := os.ReadFile(filepath.Join(root, ModulesFile)); !strings.Contains(string(mods), "iso9660") {
			t.Errorf("initramfs modules: %q", mods)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/bin/systemctl")); err != nil {
			t.Errorf("no systemd in the base: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "etc/apt/apt.conf.d/99mmdebstrap")); err == nil {
			t.Error("mmdebstrap's apt options left in the image")
		}
		if mounts, _ := chroot.MountsUnder(root); len(mounts) > 0 {
			t.Errorf("mounted after bootstrap: %v", mounts)
		}
	}
}

func testLog(t *testing.T) io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}
