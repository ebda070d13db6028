package bootable

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewestKernel(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	for _, f := range []string{"vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "initrd.img-6.1.0-10-amd64", "vmlinuz-6.2.0-1-amd64"} {
		os.WriteFile(filepath.Join(root, "boot", f), nil, 0o644)
	}
	// 6.2 has no initrd; 10 beats 9 numerically.
	if k, err := newestKernel(root); err != nil || k != "6.1.0-10-amd64" {
		t.Fatalf("%q %v", k, err)
	}
	if _, err := newestKernel(t.TempDir()); err == nil {
		t.Error("root without a kernel accepted")
	}
}

func TestWriteFstab(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/fstab"), []byte("# UNCONFIGURED FSTAB\n/dev/sda1 / ext4 defaults 0 1\ntmpfs /scratch tmpfs defaults 0 0\n"), 0o644)
	if err := writeFstab(root, IDs{RootUUID: "r-u-u-i-d", ESPVolumeID: "1234abcd"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
	got := string(b)
	for _, want := range []string{"UUID=r-u-u-i-d / ext4", "UUID=1234-ABCD /boot/efi vfat", "tmpfs /scratch"} {
		if !strings.Contains(got, want) {
			t.Errorf("fstab lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "/dev/sda1") {
		t.Errorf("old root entry kept:\n%s", got)
	}
}

func TestShellJoin(t *testing.T) {
	if got := shellJoin([]string{"a b", "it's"}); got != `'a b' 'it'\''s'` {
		t.Errorf("%s", got)
	}
}
