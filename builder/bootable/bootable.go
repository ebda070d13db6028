// Package bootable makes a provisioned root filesystem bootable from the disk the
// builder assembles: a fresh initramfs with the base's modules, GRUB's modules and
// configuration under /boot/grub, core images built by the image's own grub-mkimage,
// an fstab by UUID, and a first-boot service that grows the root partition and
// filesystem to the disk (growpart from cloud-guest-utils + online resize2fs; chosen
// over x-systemd.growfs, which xenial's systemd 229 lacks and which grows only the
// filesystem, not the partition).
package bootable

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/ethikkom/ecs-appliance/builder/grub"
)

// Runner runs a shell script inside the root (the chroot communicator).
type Runner interface {
	Run(script string, args ...string) ([]byte, error)
}

// IDs are the identities the disk will have.
type IDs struct {
	RootUUID    string
	ESPVolumeID string // 8 hex digits
}

// Result is what the disk assembly needs from the root.
type Result struct {
	// Kernel is the version booted (e.g. 6.12.57+deb13-amd64).
	Kernel string
	// BootImg and CoreImg are GRUB's BIOS boot sector code and core image.
	BootImg, CoreImg []byte
	// EFIImage is GRUB's UEFI image, to go to the ESP as EFI/BOOT/BOOTX64.EFI (the
	// removable-media path firmware boots without NVRAM entries).
	EFIImage []byte
}

// workDir is where grub-mkimage writes inside the root.
const workDir = "tmp/ecs-image-boot"

// Prepare does the work inside the mounted root (through run) and on its files.
func Prepare(root string, run Runner, ids IDs) (*Result, error) {
	if out, err := run.Run("update-initramfs -u -k all"); err != nil {
		return nil, fmt.Errorf("update-initramfs: %w\n%s", err, out)
	}
	kernel, err := newestKernel(root)
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"boot/grub/grub.cfg":                      grub.Config(ids.RootUUID, "/boot/vmlinuz-"+kernel, "/boot/initrd.img-"+kernel),
		"etc/default/grub.d/ecs-image.cfg":        grub.Defaults(),
		"etc/systemd/system/ecs-growroot.service": growrootUnit,
		"usr/lib/ecs-image/growroot":              growrootScript,
		workDir + "/early.cfg":                    grub.EarlyConfig(ids.RootUUID),
	}
	for rel, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(rel, "usr/lib/") {
			mode = 0o755
		}
		if err := writeFile(filepath.Join(root, rel), content, mode); err != nil {
			return nil, err
		}
	}
	want := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/ecs-growroot.service")
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink("/etc/systemd/system/ecs-growroot.service", want); err != nil && !os.IsExist(err) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "boot/efi"), 0o755); err != nil {
		return nil, err
	}
	if err := writeFstab(root, ids); err != nil {
		return nil, err
	}
	// Modules next to grub.cfg, as grub-install would copy them; the core images load
	// everything beyond their built-in set from there.
	script := "set -e\n"
	for _, p := range []grub.Platform{grub.BIOS, grub.UEFI} {
		script += fmt.Sprintf("rm -rf /boot/grub/%[1]s && mkdir -p /boot/grub/%[1]s && cp /usr/lib/grub/%[1]s/*.mod /usr/lib/grub/%[1]s/*.lst /boot/grub/%[1]s/\n", p.Target)
	}
	script += shellJoin(grub.MkimageArgs(grub.BIOS, "/"+workDir+"/early.cfg", "/"+workDir+"/core.img")) + "\n"
	script += shellJoin(grub.MkimageArgs(grub.UEFI, "/"+workDir+"/early.cfg", "/"+workDir+"/BOOTX64.EFI")) + "\n"
	if out, err := run.Run(script); err != nil {
		return nil, fmt.Errorf("installing GRUB files: %w\n%s", err, out)
	}
	res := &Result{Kernel: kernel}
	for p, dst := range map[string]*[]byte{
		filepath.Join(workDir, "core.img"):    &res.CoreImg,
		filepath.Join(workDir, "BOOTX64.EFI"): &res.EFIImage,
		"usr/lib/grub/i386-pc/boot.img":       &res.BootImg,
	} {
		if *dst, err = os.ReadFile(filepath.Join(root, p)); err != nil {
			return nil, err
		}
	}
	// Scratch files must not end up in the image.
	return res, os.RemoveAll(filepath.Join(root, workDir))
}

func writeFile(p, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// writeFstab mounts root and the ESP by UUID and keeps whatever else a provisioner
// put there.
func writeFstab(root string, ids IDs) error {
	p := filepath.Join(root, "etc/fstab")
	old, _ := os.ReadFile(p)
	var keep []string
	for _, line := range strings.Split(string(old), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] != "/" && f[1] != "/boot/efi" {
			keep = append(keep, line)
		}
	}
	esp := strings.ToUpper(ids.ESPVolumeID[:4] + "-" + ids.ESPVolumeID[4:])
	lines := append([]string{
		"# Written by the ecs-image builder: the image's own disk, by filesystem UUID.",
		fmt.Sprintf("UUID=%s / ext4 errors=remount-ro 0 1", ids.RootUUID),
		fmt.Sprintf("UUID=%s /boot/efi vfat umask=0077,nofail 0 2", esp),
	}, keep...)
	return os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// newestKernel finds the highest kernel version with both vmlinuz and initrd in /boot.
func newestKernel(root string) (string, error) {
	m, err := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	if err != nil {
		return "", err
	}
	var versions []string
	for _, p := range m {
		v := strings.TrimPrefix(filepath.Base(p), "vmlinuz-")
		if _, err := os.Stat(filepath.Join(root, "boot/initrd.img-"+v)); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no kernel with an initrd in %s/boot", root)
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	return versions[len(versions)-1], nil
}

// versionLess compares kernel versions piecewise, numbers as numbers.
func versionLess(a, b string) bool {
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

func split(s string) []string {
	var parts []string
	var cur bytes.Buffer
	digit := false
	for i, r := range s {
		d := unicode.IsDigit(r)
		if i > 0 && d != digit {
			parts = append(parts, cur.String())
			cur.Reset()
		}
		digit = d
		cur.WriteRune(r)
	}
	return append(parts, cur.String())
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

const growrootUnit = `# Written by the ecs-image builder.
[Unit]
Description=Grow the root partition and filesystem to the size of the disk
After=systemd-remount-fs.service
ConditionPathExists=/usr/bin/growpart

[Service]
Type=oneshot
ExecStart=/usr/lib/ecs-image/growroot

[Install]
WantedBy=multi-user.target
`

const growrootScript = `#!/bin/sh
# Grow the root partition to the end of its disk, then the ext4 filesystem on it
# (online). Does nothing when the partition already ends at the end of the disk.
set -eu
dev=$(readlink -f "$(findmnt -nvo SOURCE /)")
name=$(basename "$dev")
part=$(cat "/sys/class/block/$name/partition")
disk=/dev/$(basename "$(readlink -f "/sys/class/block/$name/..")")
if ! out=$(growpart "$disk" "$part" 2>&1); then
	case "$out" in
	NOCHANGE*) exit 0 ;;
	*) echo "$out" >&2; exit 1 ;;
	esac
fi
echo "$out"
resize2fs "$dev"
`
