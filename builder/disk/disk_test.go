package disk

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/builder/grub"
	"github.com/ethikkom/ecs-appliance/builder/qemutest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func TestPlan(t *testing.T) {
	l, err := Plan(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	if l.BIOSBoot.Start != 2048 || l.ESP.Start != 4096 || l.Root.Start != 4096+ESPSize/512 {
		t.Fatalf("layout %+v", l)
	}
	if end := l.Root.Start + l.Root.Sectors; end%2048 != 0 || int64(end)*512 > l.Size-34*512 {
		t.Fatalf("root ends at %d", end)
	}
	for _, bad := range []int64{MinSize - mib, MinSize + 1} {
		if _, err := Plan(bad); err == nil {
			t.Errorf("size %d accepted", bad)
		}
	}
}

func TestESPDirs(t *testing.T) {
	got := espDirs(map[string]string{"EFI/BOOT/BOOTX64.EFI": "x", "EFI/debian/grub.cfg": "y", "top": "z"})
	if strings.Join(got, " ") != "EFI EFI/BOOT EFI/debian" {
		t.Fatalf("%v", got)
	}
}

// TestAssemble builds a disk from a small tree with the build host's GRUB, checks it
// with sgdisk, e2fsck and fsck.vfat, and boots it into GRUB under SeaBIOS and OVMF:
// GRUB prints a marker from the root filesystem's grub.cfg on the serial console.
func TestAssemble(t *testing.T) {
	testtool.RequireRoot(t)
	testtool.Require(t, "mkfs.ext4", "e2fsck", "mkfs.vfat", "fsck.vfat", "mmd", "mcopy", "sgdisk", "grub-mkimage")
	for _, d := range []string{"/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi"} {
		if _, err := os.Stat(d); err != nil {
			testtool.Missing(t, d+" missing (packages grub-pc-bin, grub-efi-amd64-bin)")
		}
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	const uuid = "3c6b0f9e-8d4e-4a57-9a43-2f0b5a1c7d11"
	mustWrite(t, filepath.Join(root, "boot/grub/grub.cfg"), "serial --unit=0 --speed=115200\nterminal_output serial\necho ECS-GRUB-OK $grub_platform\nhalt\n")
	mustWrite(t, filepath.Join(root, "etc/hostname"), "test\n")
	early := filepath.Join(tmp, "early.cfg")
	mustWrite(t, early, grub.EarlyConfig(uuid))
	bios, efi := filepath.Join(tmp, "core.img"), filepath.Join(tmp, "BOOTX64.EFI")
	for _, b := range []struct {
		p   grub.Platform
		out string
	}{{grub.BIOS, bios}, {grub.UEFI, efi}} {
		argv := grub.MkimageArgs(b.p, early, b.out)
		// The modules the config uses come from the image's /boot/grub, as in a real build.
		argv = append(argv, "serial", "terminal", "halt")
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	bootImg, err := os.ReadFile("/usr/lib/grub/i386-pc/boot.img")
	if err != nil {
		t.Fatal(err)
	}
	core, err := os.ReadFile(bios)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := Plan(256 * mib)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(tmp, "disk.raw")
	spec := &Spec{
		Path: img, Layout: layout, RootDir: root, RootUUID: uuid, RootLabel: "ecs-root",
		Ext4Features: []string{"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "extent", "64bit", "flex_bg", "sparse_super", "large_file", "huge_file", "dir_nlink", "extra_isize", "metadata_csum"},
		ESPVolumeID:  "1234abcd",
		ESPFiles:     map[string]string{"EFI/BOOT/BOOTX64.EFI": efi},
		BootImg:      bootImg, CoreImg: core,
	}
	if err := Assemble(context.Background(), spec, io.Discard); err != nil {
		t.Fatal(err)
	}

	if out, err := exec.Command("sgdisk", "-v", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
	rootFS := extract(t, img, layout.Root)
	if out, err := exec.Command("e2fsck", "-fn", rootFS).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
	}
	if out, _ := exec.Command("blkid", "-o", "export", rootFS).Output(); !bytes.Contains(out, []byte("LABEL=ecs-root")) || !bytes.Contains(out, []byte("UUID="+uuid)) {
		t.Errorf("root blkid:\n%s", out)
	}
	espFS := extract(t, img, layout.ESP)
	if out, err := exec.Command("fsck.vfat", "-n", espFS).CombinedOutput(); err != nil {
		t.Fatalf("fsck.vfat: %v\n%s", err, out)
	}
	if out, err := exec.Command("mdir", "-i", espFS, "::EFI/BOOT").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("BOOTX64")) {
		t.Fatalf("ESP: %v\n%s", err, out)
	}

	for _, fw := range []qemutest.Firmware{qemutest.SeaBIOS, qemutest.OVMF} {
		t.Run(string(fw), func(t *testing.T) {
			log := qemutest.Boot(t, img, fw, "ECS-GRUB-OK")
			want := map[qemutest.Firmware]string{qemutest.SeaBIOS: "ECS-GRUB-OK pc", qemutest.OVMF: "ECS-GRUB-OK efi"}[fw]
			if !strings.Contains(log, want) {
				t.Errorf("serial log lacks %q:\n%s", want, qemutest.Tail(log))
			}
		})
	}
}

// extract copies a partition out of the image, since e2fsck and fsck.vfat take no offset.
func extract(t *testing.T, img string, e Extent) string {
	t.Helper()
	src, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.CreateTemp(t.TempDir(), "part")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, io.NewSectionReader(src, e.Offset(), e.Bytes())); err != nil {
		t.Fatal(err)
	}
	return dst.Name()
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
