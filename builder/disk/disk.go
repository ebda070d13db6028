// Package disk assembles a raw GPT disk image from a root filesystem tree without loop
// devices or mounts: go-diskfs writes the partition table, mkfs.vfat and mtools write
// the EFI system partition at its offset, mkfs.ext4 -d writes the root filesystem at
// its offset, and GRUB's BIOS boot code goes into sector 0 and the BIOS boot partition.
package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/ethikkom/ecs-appliance/builder/grub"
)

const (
	mib      = 1 << 20
	sector   = grub.Sector
	biosSize = 1 * mib // room for GRUB's core image, as grub-install wants it
	// ESPSize is the EFI system partition: FAT32 with one-sector clusters has enough
	// clusters at this size, and it only holds GRUB's EFI image.
	ESPSize = 64 * mib
	// MinSize is the smallest disk: the layout plus a small root.
	MinSize = 2*mib + biosSize + ESPSize + 64*mib
)

// Partition names in the GPT.
const (
	BIOSBootName = "bios-boot"
	ESPName      = "esp"
	RootName     = "root"
)

// Extent is a partition's place on the disk, in sectors.
type Extent struct {
	Start, Sectors uint64
}

// Offset is the partition's start in bytes.
func (e Extent) Offset() int64 { return int64(e.Start) * sector }

// Bytes is the partition's size in bytes.
func (e Extent) Bytes() int64 { return int64(e.Sectors) * sector }

// Layout is the partitioning of a disk of Size bytes: BIOS boot, ESP, root (the rest).
type Layout struct {
	Size                int64
	BIOSBoot, ESP, Root Extent
}

// Plan lays out a disk of size bytes (a whole number of MiB): partitions start on MiB
// boundaries, and root takes what is left before the backup GPT.
func Plan(size int64) (Layout, error) {
	if size%mib != 0 || size < MinSize {
		return Layout{}, fmt.Errorf("disk size %d must be whole MiB and at least %d MiB", size, MinSize/mib)
	}
	l := Layout{Size: size}
	l.BIOSBoot = Extent{Start: mib / sector, Sectors: biosSize / sector}
	l.ESP = Extent{Start: l.BIOSBoot.Start + l.BIOSBoot.Sectors, Sectors: ESPSize / sector}
	rootStart := l.ESP.Start + l.ESP.Sectors
	// The backup GPT takes the last 33 sectors; end root on the last whole MiB before it.
	lastUsable := uint64(size/sector) - 34
	rootEnd := (lastUsable+1)/(mib/sector)*(mib/sector) - 1
	l.Root = Extent{Start: rootStart, Sectors: rootEnd - rootStart + 1}
	return l, nil
}

// Spec is everything Assemble writes.
type Spec struct {
	// Path is the raw image to create; it must not exist.
	Path   string
	Layout Layout
	// RootDir is copied into the root filesystem.
	RootDir   string
	RootUUID  string
	RootLabel string
	// Ext4Features is the complete feature list of the root filesystem.
	Ext4Features []string
	// ESPVolumeID is the FAT volume serial, 8 hex digits (fstab's UUID=XXXX-XXXX).
	ESPVolumeID string
	// ESPFiles maps paths inside the ESP (e.g. EFI/BOOT/BOOTX64.EFI) to local files.
	ESPFiles map[string]string
	// BootImg is GRUB's i386-pc boot.img, CoreImg the core.img from grub-mkimage.
	BootImg, CoreImg []byte
}

// Assemble writes the disk image. A failed assembly removes the partial image.
func Assemble(ctx context.Context, s *Spec, log io.Writer) (err error) {
	defer func() {
		if err != nil {
			os.Remove(s.Path)
		}
	}()
	if err := writeGPT(s); err != nil {
		return err
	}
	l := s.Layout
	esp := fmt.Sprintf("%s@@%d", s.Path, l.ESP.Offset())
	if err := run(ctx, log, nil, "mkfs.vfat", "-F", "32", "-s", "1", "-S", "512", "-n", "ESP", "-i", s.ESPVolumeID,
		fmt.Sprintf("--offset=%d", l.ESP.Start), s.Path, fmt.Sprint(l.ESP.Bytes()/1024)); err != nil {
		return err
	}
	for _, dir := range espDirs(s.ESPFiles) {
		if err := run(ctx, log, mtoolsEnv, "mmd", "-i", esp, "::"+dir); err != nil {
			return err
		}
	}
	for dst, src := range s.ESPFiles {
		if err := run(ctx, log, mtoolsEnv, "mcopy", "-i", esp, src, "::"+dst); err != nil {
			return err
		}
	}
	if err := run(ctx, log, nil, "mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256",
		"-O", "none,"+strings.Join(s.Ext4Features, ","), "-L", s.RootLabel, "-U", s.RootUUID,
		"-E", fmt.Sprintf("offset=%d", l.Root.Offset()), "-d", s.RootDir,
		s.Path, fmt.Sprintf("%dk", l.Root.Bytes()/1024)); err != nil {
		return err
	}
	return writeBIOSBoot(s)
}

// mtools refuses FAT parameters it finds odd unless told not to check.
var mtoolsEnv = []string{"MTOOLS_SKIP_CHECK=1"}

func writeGPT(s *Spec) error {
	d, err := diskfs.Create(s.Path, s.Layout.Size, diskfs.SectorSizeDefault)
	if err != nil {
		return err
	}
	l := s.Layout
	part := func(i int, e Extent, t gpt.Type, name string) *gpt.Partition {
		return &gpt.Partition{Index: i, Start: e.Start, End: e.Start + e.Sectors - 1, Size: uint64(e.Bytes()), Type: t, Name: name}
	}
	table := &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{
			part(1, l.BIOSBoot, gpt.BIOSBoot, BIOSBootName),
			part(2, l.ESP, gpt.EFISystemPartition, ESPName),
			part(3, l.Root, gpt.LinuxRootX86_64, RootName),
		},
	}
	if err := d.Partition(table); err != nil {
		d.Close()
		return fmt.Errorf("writing the GPT: %w", err)
	}
	return d.Close()
}

func writeBIOSBoot(s *Spec) error {
	f, err := os.OpenFile(s.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mbr := make([]byte, sector)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	l := s.Layout
	boot, err := grub.BIOSBootSector(s.BootImg, mbr, l.BIOSBoot.Start)
	if err != nil {
		return err
	}
	core, err := grub.PatchCore(s.CoreImg, l.BIOSBoot.Start, l.BIOSBoot.Sectors)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(boot, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(core, l.BIOSBoot.Offset()); err != nil {
		return err
	}
	return f.Close()
}

// espDirs lists the directories the ESP files need, parents first.
func espDirs(files map[string]string) []string {
	seen := map[string]bool{}
	for dst := range files {
		for d := path.Dir(dst); d != "." && d != "/"; d = path.Dir(d) {
			seen[d] = true
		}
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs) // a parent sorts before its children
	return dirs
}

func run(ctx context.Context, log io.Writer, env []string, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = log, io.MultiWriter(log, &stderr)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", argv[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
