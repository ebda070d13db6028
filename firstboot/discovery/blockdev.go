package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/diskfs/go-diskfs/partition"
	"golang.org/x/sys/unix"
)

// blockScan finds the labelled filesystems on the block devices once, for both the
// nocloud and the configdrive source.
type blockScan struct {
	root    string
	devices []string // nil: list <root>/sys/class/block

	scanned  bool
	err      error // listing failed or the budget ran out mid-scan
	volumes  []volume
	devCount int
	unusable []string // devices that could not be opened or read, with the reason
	files    []*os.File
}

// volume is a FAT or ISO9660 filesystem on a whole device or on one of its partitions.
type volume struct {
	where  string   // "/dev/sr0" or "/dev/vdb partition 1"
	labels []string // a FAT may carry two, see readVolume
	fs     filesystem.FileSystem
}

// device is a path to probe and whether to look into its partition table.
type device struct {
	path       string
	partitions bool
}

func (b *blockScan) close() {
	for _, f := range b.files {
		_ = f.Close() // opened read-only: nothing to flush
	}
}

// find returns file name from the first filesystem whose label is one of labels
// (case-insensitive, so cidata matches CIDATA as for cloud-init).
func (b *blockScan) find(ctx context.Context, labels []string, name string) outcome {
	b.scan(ctx)
	if b.err != nil {
		return failed("", "%v", b.err)
	}
	var missing, broken []string
	for _, v := range b.volumes {
		if !matchLabel(v.labels, labels) {
			continue
		}
		doc, err := readVolumeFile(v.fs, name)
		var miss *missingError
		switch {
		case errors.As(err, &miss):
			missing = append(missing, fmt.Sprintf("%s (%v)", v.where, miss.err))
		case err != nil:
			broken = append(broken, fmt.Sprintf("%s: %v", v.where, err))
		default:
			return found(v.where, doc)
		}
	}
	labelled := "filesystem labelled " + strings.Join(labels, " or ")
	switch {
	case len(broken) > 0:
		return failed("", "reading %s from the %s: %s", name, labelled, strings.Join(broken, "; "))
	case len(missing) > 0:
		return absent("", "no %s on the %s: %s", name, labelled, strings.Join(missing, ", "))
	}
	reason := fmt.Sprintf("no %s among %d devices", labelled, b.devCount)
	if len(b.unusable) > 0 {
		reason += fmt.Sprintf(" (%d could not be read: %s)", len(b.unusable), strings.Join(b.unusable, "; "))
	}
	return absent("", "%s", reason)
}

func matchLabel(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if strings.EqualFold(h, w) {
				return true
			}
		}
	}
	return false
}

func (b *blockScan) scan(ctx context.Context) {
	if b.scanned {
		return
	}
	b.scanned = true
	devices, err := b.list()
	if err != nil {
		b.err = err
		return
	}
	b.devCount = len(devices)
	for _, dev := range devices {
		if ctx.Err() != nil {
			b.err = fmt.Errorf("device scan stopped: %w", ctx.Err())
			return
		}
		if err := b.probe(dev); err != nil {
			b.unusable = append(b.unusable, fmt.Sprintf("%s: %v", dev.path, err))
		}
	}
}

// list returns the explicit devices, or every block device sysfs knows (whole disks and
// partitions) that has a size. A whole disk whose partitions the kernel lists is not
// searched for a partition table: its partitions come as devices of their own.
func (b *blockScan) list() ([]device, error) {
	if b.devices != nil {
		out := make([]device, len(b.devices))
		for i, p := range b.devices {
			out[i] = device{path: p, partitions: true}
		}
		return out, nil
	}
	dir := filepath.Join(b.root, "sys/class/block")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %v", pathless(err))
	}
	var out []device
	for _, e := range entries {
		name := e.Name()
		if size, err := os.ReadFile(filepath.Join(dir, name, "size")); err == nil && strings.TrimSpace(string(size)) == "0" {
			continue // an unbound loop device or an empty CD drive
		}
		parts, _ := filepath.Glob(filepath.Join(dir, name, name+"*", "partition"))
		out = append(out, device{path: filepath.Join(b.root, "dev", name), partitions: len(parts) == 0})
	}
	return out, nil
}

// probe opens a device read-only and records the FAT or ISO9660 filesystem on it, or,
// when the whole device holds none, those on its partitions.
func (b *blockScan) probe(dev device) (err error) {
	defer recoverDiskfs(&err)
	// Not diskfs.Open: it links every filesystem and compressor go-diskfs has into the
	// agent; reading FAT, ISO9660 and the partition table needs none of them.
	f, err := os.Open(dev.path)
	if err != nil {
		return err
	}
	b.files = append(b.files, f)
	size, err := f.Seek(0, io.SeekEnd) // a block device's size, too
	if err != nil {
		return err
	}
	be := file.New(f, true)
	if v, err := readVolume(be, 0, size); err != nil || v != nil {
		if v != nil {
			v.where = dev.path
			b.volumes = append(b.volumes, *v)
		}
		return err
	}
	if !dev.partitions {
		return nil
	}
	sector := 512 // image files; a block device says its own
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		sector = n
	}
	table, err := partition.Read(be, sector, sector)
	if err != nil || table == nil {
		return nil // no partition table: nothing more to look at
	}
	var errs []error
	for _, p := range table.GetPartitions() {
		start, psize := p.GetStart(), p.GetSize()
		if psize <= 0 || start < 0 || start+psize > size {
			continue
		}
		v, err := readVolume(be, start, psize)
		if err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", p.GetIndex(), err))
		}
		if v != nil {
			v.where = fmt.Sprintf("%s partition %d", dev.path, p.GetIndex())
			b.volumes = append(b.volumes, *v)
		}
	}
	return errors.Join(errs...)
}

// recoverDiskfs turns a panic inside go-diskfs, which parses whatever a disk holds,
// into an error, so that one odd device cannot crash the agent.
func recoverDiskfs(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("go-diskfs failed: %v", r)
	}
}

// readVolume reads the FAT or ISO9660 filesystem at start, or returns nil when there is
// none. A cheap look at the signatures comes first, so that ext4 data disks and the like
// cost two small reads, and go-diskfs only parses what it is meant for. A FAT has two
// labels, as for cloud-init, which matches both blkid's LABEL (the root directory's
// volume entry) and LABEL_FATBOOT (the boot sector's).
func readVolume(dev backend.Storage, start, size int64) (*volume, error) {
	// Sub makes the filesystem start at offset 0: go-diskfs's ISO9660 reader does not
	// add a partition's start to every read.
	sub := backend.Sub(dev, start, size)
	kind, bootLabel, err := sniff(sub, size)
	if err != nil {
		return nil, err
	}
	switch kind {
	case kindISO:
		fsys, err := iso9660.Read(sub, size, 0, 0)
		if err != nil {
			return nil, err
		}
		return &volume{labels: []string{cleanLabel(fsys.Label())}, fs: fsys}, nil
	case kindFAT:
		fsys, err := readFAT(sub, size)
		if err != nil {
			return nil, err
		}
		return &volume{labels: []string{cleanLabel(fsys.Label()), bootLabel}, fs: fsys}, nil
	}
	return nil, nil
}

func readFAT(sub backend.Storage, size int64) (filesystem.FileSystem, error) {
	if fsys, err := fat32.Read(sub, size, 0, 0); err == nil {
		return fsys, nil
	}
	if fsys, err := fat16.Read(sub, size, 0, 0); err == nil {
		return fsys, nil
	}
	return fat12.Read(sub, size, 0, 0)
}

type fsKind int

const (
	kindNone fsKind = iota
	kindFAT
	kindISO
)

// sniff recognises ISO9660 by "CD001" in the first volume descriptor (sector 16 of 2 KiB)
// and FAT by the boot signature plus the "FAT" file-system type that mkfs.vfat, mtools
// and Windows write. For FAT it also returns the boot sector's volume label.
func sniff(r io.ReaderAt, size int64) (fsKind, string, error) {
	var vd [6]byte
	if size >= 17*2048 {
		if _, err := r.ReadAt(vd[:], 16*2048); err == nil && string(vd[1:6]) == "CD001" {
			return kindISO, "", nil
		}
	}
	var bs [512]byte
	if size < int64(len(bs)) {
		return kindNone, "", nil
	}
	if _, err := r.ReadAt(bs[:], 0); err != nil {
		return kindNone, "", err
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return kindNone, "", nil
	}
	switch {
	case string(bs[0x52:0x57]) == "FAT32":
		return kindFAT, cleanLabel(string(bs[0x47:0x52])), nil
	case string(bs[0x36:0x39]) == "FAT":
		return kindFAT, cleanLabel(string(bs[0x2B:0x36])), nil
	}
	return kindNone, "", nil
}

// cleanLabel drops the space or NUL padding of on-disk labels.
func cleanLabel(s string) string {
	return strings.Trim(s, " \x00")
}

// missingError says the labelled filesystem does not hold the file.
type missingError struct{ err error }

func (e *missingError) Error() string { return e.err.Error() }

// readVolumeFile reads name from fsys, capped at MaxDocumentSize. go-diskfs reports a
// missing file or directory with different errors per filesystem, so every failure to
// open counts as missing; a failure to read is an error.
func readVolumeFile(fsys filesystem.FileSystem, name string) (doc []byte, err error) {
	defer recoverDiskfs(&err)
	f, err := fsys.Open(name)
	if err != nil {
		return nil, &missingError{err}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, &missingError{errors.New("is a directory")}
	} else if err == nil && st.Size() > MaxDocumentSize {
		return nil, errTooLarge
	}
	return readCapped(f)
}
