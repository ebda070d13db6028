// Package grub makes a disk image bootable with GRUB on BIOS and UEFI without
// grub-install (which needs a block device): it writes the configuration, names the
// grub-mkimage runs that build the core images from the image's own GRUB, and places
// the BIOS core image in the BIOS boot partition the way grub-bios-setup does.
package grub

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Sector is the logical sector size everything here assumes.
const Sector = 512

// Platform is one GRUB target.
type Platform struct {
	// Target is grub-mkimage's -O value and the directory under /usr/lib/grub.
	Target string
	// Modules are built into the core image: enough to find the root filesystem and
	// read the configuration; the rest loads from /boot/grub/<Target>.
	Modules []string
}

var (
	BIOS = Platform{Target: "i386-pc", Modules: []string{"biosdisk", "part_gpt", "ext2", "search", "search_fs_uuid", "normal", "configfile", "echo"}}
	UEFI = Platform{Target: "x86_64-efi", Modules: []string{"part_gpt", "ext2", "fat", "search", "search_fs_uuid", "normal", "configfile", "echo"}}
)

// EarlyConfig is built into both core images: find the root filesystem by UUID and
// continue with its /boot/grub/grub.cfg.
func EarlyConfig(rootUUID string) string {
	return fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n", rootUUID)
}

// MkimageArgs is the grub-mkimage command line (run inside the image's root) that
// writes platform's core image to out, with the early configuration from cfg.
func MkimageArgs(p Platform, cfg, out string) []string {
	return append([]string{"grub-mkimage", "-O", p.Target, "-o", out, "-c", cfg, "-p", "/boot/grub",
		"-d", "/usr/lib/grub/" + p.Target}, p.Modules...)
}

// KernelCmdline is the command line the image boots with: console on the screen and
// the first serial port, so boot messages reach both a VM console and a serial log.
const KernelCmdline = "ro console=tty0 console=ttyS0,115200n8"

// Config is /boot/grub/grub.cfg for booting kernel and initrd (paths inside the root
// filesystem) from the filesystem with rootUUID.
func Config(rootUUID, kernel, initrd string) string {
	return fmt.Sprintf(`# Written by the ecs-image builder. update-grub on the running system replaces it
# (with the settings in /etc/default/grub.d/ecs-image.cfg).
set default=0
set timeout=1
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
insmod part_gpt
insmod ext2
insmod all_video
search --no-floppy --fs-uuid --set=root %[1]s
menuentry 'ECS appliance' {
	linux %[2]s root=UUID=%[1]s %[4]s
	initrd %[3]s
}
`, rootUUID, kernel, initrd, KernelCmdline)
}

// Defaults is /etc/default/grub.d/ecs-image.cfg: the same console settings for when
// the running system regenerates grub.cfg (kernel updates).
func Defaults() string {
	return strings.Join([]string{
		"# Written by the ecs-image builder.",
		"GRUB_TIMEOUT=1",
		`GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"`,
		`GRUB_TERMINAL="console serial"`,
		`GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"`,
		"",
	}, "\n")
}

// Offsets in GRUB's boot.img (include/grub/i386/pc/boot.h).
const (
	kernelSectorOffset = 0x5c  // LBA of the first core.img sector, 64-bit LE
	bootDriveOffset    = 0x64  // 0xff: use the drive the BIOS booted from
	driveCheckOffset   = 0x66  // a jmp that skips the boot drive sanity check
	mbrCodeEnd         = 0x1b8 // boot code ends where the disk signature begins
	blocklistSize      = 12    // {start u64, len u16, segment u16} at the end of diskboot
	coreSegment        = 0x820 // GRUB_BOOT_I386_PC_KERNEL_SEG + one sector, in paragraphs
)

// BIOSBootSector returns mbr (the disk's sector 0) with GRUB's boot.img code in it,
// pointing at a core image at coreLBA. The disk signature and partition entries of mbr
// are kept.
func BIOSBootSector(bootImg, mbr []byte, coreLBA uint64) ([]byte, error) {
	if len(bootImg) != Sector || len(mbr) != Sector {
		return nil, fmt.Errorf("boot.img and the MBR must be %d bytes (got %d, %d)", Sector, len(bootImg), len(mbr))
	}
	out := append([]byte(nil), mbr...)
	copy(out[:mbrCodeEnd], bootImg[:mbrCodeEnd])
	binary.LittleEndian.PutUint64(out[kernelSectorOffset:], coreLBA)
	out[bootDriveOffset] = 0xff
	// A hard disk: no-op the jump over the drive check, as grub-bios-setup does for
	// BIOSes that pass a wrong drive number.
	out[driveCheckOffset], out[driveCheckOffset+1] = 0x90, 0x90
	out[0x1fe], out[0x1ff] = 0x55, 0xaa
	return out, nil
}

// PatchCore fills the block list in the first sector of core (diskboot.img) so it
// loads the rest of core from the sectors right after coreLBA, and returns core
// padded to whole sectors. room is the size of the BIOS boot partition in sectors.
func PatchCore(core []byte, coreLBA, room uint64) ([]byte, error) {
	if len(core) < 2*Sector {
		return nil, fmt.Errorf("core image of %d bytes is too small", len(core))
	}
	sectors := (uint64(len(core)) + Sector - 1) / Sector
	if sectors > room {
		return nil, fmt.Errorf("core image needs %d sectors, the BIOS boot partition has %d", sectors, room)
	}
	if sectors-1 > 0xffff {
		return nil, fmt.Errorf("core image of %d sectors does not fit one block list entry", sectors)
	}
	out := make([]byte, sectors*Sector)
	copy(out, core)
	first := Sector - blocklistSize
	binary.LittleEndian.PutUint64(out[first:], coreLBA+1)
	binary.LittleEndian.PutUint16(out[first+8:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(out[first+10:], coreSegment)
	// The entry before it terminates the list.
	clear(out[first-blocklistSize : first])
	return out, nil
}
