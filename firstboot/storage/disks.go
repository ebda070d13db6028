package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"

	"github.com/ethikkom/ecs-appliance/env"
)

const mib = 1 << 20

// pendingLabel is the label mkfs.ext4 gives a new filesystem; the real one is set once
// mkfs has finished, so a filesystem with a real label is always a complete one, and one
// still called pendingLabel was ours and is made again.
const pendingLabel = "ecs-mkfs-pending"

// diskPlan is what setup does to one disk of appliance.storage.setup.disks.
type diskPlan struct {
	disk   env.Disk
	dev    string     // canonical device node
	table  *gpt.Table // the GPT to write, or the matching one found on the disk
	write  bool       // write table (the disk is blank, or wiped)
	wipe   bool       // zero the old content's ends first
	repair bool       // the disk's GPT is ours but its primary copy is damaged
	was    []string   // what wipe destroys, for the record
	size   int64
}

// planDisk decides, reading only, what setup may do to d; nil means nothing (all its
// labels exist). It refuses when that would destroy anything not allowed by wipe.
func (e *ensurer) planDisk(ctx context.Context, d env.Disk, found map[string][]fsInfo) (*diskPlan, error) {
	complete := true
	for _, p := range d.Partitions {
		if len(found[p.Label]) == 0 {
			complete = false
		}
	}
	if complete {
		return nil, nil
	}
	dev, err := canonicalDevice(d.Device)
	if err != nil {
		return nil, err
	}
	if err := e.allowed(dev); err != nil {
		return nil, err
	}
	parts, err := partitions(dev)
	if err != nil {
		return nil, err
	}
	onDisk := func(fs fsInfo) bool {
		return fs.Device == dev || slices.Contains(sortedValues(parts), fs.Device)
	}
	for _, p := range d.Partitions {
		for _, fs := range found[p.Label] {
			if !onDisk(fs) {
				return nil, fmt.Errorf("%s would get a second filesystem labelled %s, which %s already has: take the partition out of appliance.storage.setup.disks or relabel %s", dev, p.Label, fs.Device, fs.Device)
			}
		}
	}
	var kept []string // our labelled filesystems on this disk
	for label, l := range found {
		for _, fs := range l {
			if e.ourLabel(label) && onDisk(fs) {
				kept = append(kept, label+" on "+fs.Device)
			}
		}
	}
	slices.Sort(kept)

	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, sector, err := geometry(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	plan := &diskPlan{disk: d, dev: dev, size: size}
	if t, err := gpt.Read(f, int(sector), int(sector)); err == nil && sameLayout(t, d.Partitions) {
		// Ours, made by an earlier run that may have stopped before the filesystems.
		plan.table, plan.repair = t, t.RecoveredFromBackup
		return plan, nil
	}
	if len(kept) > 0 {
		return nil, fmt.Errorf("%s holds %s, but its partitions are not the ones appliance.storage.setup.disks describes: not repartitioning a disk with appliance data on it", dev, strings.Join(kept, ", "))
	}
	if plan.table, err = layout(size, sector, d.Partitions); err != nil {
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	plan.write = true
	if plan.was, err = signatures(ctx, dev); err != nil {
		return nil, err
	}
	zero, err := zeroEnds(f, size)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dev, err)
	}
	if !zero && len(plan.was) == 0 {
		plan.was = []string{"non-zero data in its first or last MiB"}
	}
	if len(plan.was) > 0 {
		if !d.Wipe {
			return nil, fmt.Errorf("%s is not empty (%s), and appliance.storage.setup.disks does not say wipe: true for it: left it alone", dev, strings.Join(plan.was, ", "))
		}
		plan.wipe = true
	}
	return plan, nil
}

// ourLabel reports labels the appliance owns: those it mounts and those setup makes.
func (e *ensurer) ourLabel(label string) bool {
	if label == DataLabel || label == VolatileLabel {
		return true
	}
	for _, d := range e.st.Setup.Disks {
		for _, p := range d.Partitions {
			if p.Label == label {
				return true
			}
		}
	}
	return false
}

// sameLayout reports whether t has exactly the partitions parts names, in order: such a
// table was written by setup (partitions are named by their label).
func sameLayout(t *gpt.Table, parts []env.Partition) bool {
	var used []*gpt.Partition
	for _, p := range t.Partitions {
		if p.Type != gpt.Unused {
			used = append(used, p)
		}
	}
	if len(used) != len(parts) {
		return false
	}
	for i, p := range used {
		if p.Index != i+1 || p.Name != parts[i].Label {
			return false
		}
	}
	return true
}

// layout computes the GPT for parts on a disk of size bytes: 1 MiB aligned, sizes in
// MiB, percent of the disk, or the rest.
func layout(size, sector int64, parts []env.Partition) (*gpt.Table, error) {
	align := mib / sector
	total := size / sector
	// The backup GPT takes the last sector and the 16 KiB entry array before it.
	lastUsable := total - 2 - 16384/sector
	start := align
	t := &gpt.Table{LogicalSectorSize: int(sector), PhysicalSectorSize: int(sector), ProtectiveMBR: true}
	for i, p := range parts {
		var n int64
		switch {
		case p.Size.MiB > 0:
			if p.Size.MiB > uint64(total/align) {
				n = total + 1
			} else {
				n = int64(p.Size.MiB) * align
			}
		case p.Size.Percent > 0:
			n = size / mib * int64(p.Size.Percent) / 100 * align
		default:
			n = (lastUsable + 1 - start) / align * align
		}
		if n <= 0 || start+n-1 > lastUsable {
			return nil, fmt.Errorf("partition %s (size %s) does not fit on the disk of %d MiB", p.Label, p.Size, size/mib)
		}
		typ := gpt.LinuxFilesystem
		if p.Format == "swap" {
			typ = gpt.LinuxSwap
		}
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: i + 1, Start: uint64(start), End: uint64(start + n - 1), Size: uint64(n * sector),
			Type: typ, Name: p.Label,
		})
		start += n
	}
	return t, nil
}

// geometry returns the size in bytes and the logical sector size of a block device.
func geometry(f *os.File) (size, sector int64, err error) {
	if size, err = f.Seek(0, io.SeekEnd); err != nil {
		return 0, 0, err
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, 0, fmt.Errorf("sector size: %w", err)
	}
	return size, int64(ss), nil
}

// partition writes (or repairs) the disk's GPT and has the kernel show its partitions.
func (e *ensurer) partition(ctx context.Context, p *diskPlan) error {
	if p.write || p.repair {
		if err := writeTable(p); err != nil {
			return err
		}
		var names []string
		for _, part := range p.table.Partitions {
			names = append(names, fmt.Sprintf("%s (%d MiB)", part.Name, part.Size/mib))
		}
		switch {
		case p.repair:
			e.did("repaired the primary GPT of %s from its backup copy", p.dev)
		case p.wipe:
			e.did("wiped %s (it held %s) and partitioned it: GPT with %s", p.dev, strings.Join(p.was, ", "), strings.Join(names, ", "))
		default:
			e.did("partitioned %s: GPT with %s", p.dev, strings.Join(names, ", "))
		}
	}
	return syncPartitions(ctx, p.dev, p.table)
}

// writeTable writes the plan's GPT; O_EXCL fails while anything on the disk is mounted
// or otherwise held, so a disk in use is never rewritten.
func writeTable(p *diskPlan) error {
	f, err := os.OpenFile(p.dev, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%s is in use (mounted or held by another device): not partitioning it", p.dev)
		}
		return err
	}
	defer f.Close()
	if p.wipe {
		// Zero both ends of the disk and of every new partition, where partition tables,
		// filesystem, RAID and LUKS signatures live, so no stale signature shows through
		// the new layout.
		zero := make([]byte, mib)
		offs := []int64{0, p.size - mib}
		for _, part := range p.table.Partitions {
			start := int64(part.Start) * int64(p.table.LogicalSectorSize)
			offs = append(offs, start, start+int64(part.Size)-mib)
		}
		for _, off := range offs {
			if _, err := f.WriteAt(zero, off); err != nil {
				return fmt.Errorf("wiping %s: %w", p.dev, err)
			}
		}
	}
	if err := p.table.Write(f, p.size); err != nil {
		return fmt.Errorf("writing the GPT of %s: %w", p.dev, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing the GPT of %s: %w", p.dev, err)
	}
	return f.Close()
}

// syncPartitions makes the kernel's partitions of dev those of t, with partx (which
// also works on loop devices and kernels without the GPT parser) and
// blockdev --rereadpt as the fallback.
func syncPartitions(ctx context.Context, dev string, t *gpt.Table) error {
	if ok, err := kernelAgrees(dev, t); err != nil || ok {
		return err
	}
	var errs []error
	// partx -u alone can leave a partition out when the layout changed; deleting and
	// adding them all cannot (and deleting a partition in use fails, harmlessly).
	for _, try := range [][][]string{
		{{"partx", "-u", dev}},
		{{"partx", "-d", dev}, {"partx", "-a", dev}},
		{{"blockdev", "--rereadpt", dev}},
	} {
		for _, args := range try {
			if _, err := run(ctx, args[0], args[1:]...); err != nil {
				errs = append(errs, err)
			}
		}
		if ok, err := kernelAgrees(dev, t); err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("the kernel does not show the new partitions of %s: %w", dev, errors.Join(errs...))
}

// kernelAgrees reports whether sysfs shows exactly t's partitions of dev, with nodes.
func kernelAgrees(dev string, t *gpt.Table) (bool, error) {
	parts, err := partitions(dev)
	if err != nil {
		return false, err
	}
	n := 0
	for _, p := range t.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		n++
		node, ok := parts[p.Index]
		if !ok {
			return false, nil
		}
		if _, err := os.Stat(node); err != nil {
			return false, nil
		}
		// sysfs counts start and size in 512-byte units whatever the sector size.
		scale := uint64(t.LogicalSectorSize) / 512
		if readUint(node, "start") != p.Start*scale || readUint(node, "size") != (p.End-p.Start+1)*scale {
			return false, nil
		}
	}
	return len(parts) == n, nil
}

func readUint(node, attr string) uint64 {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(node), attr))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// format makes the filesystems of a partitioned disk that are not there yet.
func (e *ensurer) format(ctx context.Context, p *diskPlan) error {
	parts, err := partitions(p.dev)
	if err != nil {
		return err
	}
	for i, part := range p.disk.Partitions {
		node := parts[i+1]
		fs, err := probeDevice(ctx, node)
		if err != nil {
			return err
		}
		switch {
		case fs.Label == part.Label && fs.Type == fsType(part.Format):
			continue // made before: keep it
		case fs.Type == "", fs.Type == "ext4" && fs.Label == pendingLabel:
		case e.ourLabel(fs.Label):
			return fmt.Errorf("%s (partition %s of %s, for %s) holds the filesystem labelled %s: not formatting it", node, part.Label, p.dev, part.Label, fs.Label)
		case !p.disk.Wipe:
			return fmt.Errorf("%s (partition %s of %s) holds %s labelled %q, and appliance.storage.setup.disks does not say wipe: true: left it alone", node, part.Label, p.dev, fs.Type, fs.Label)
		}
		if err := mkfs(ctx, node, part); err != nil {
			return err
		}
		e.did("made %s filesystem %s on %s", fsType(part.Format), part.Label, node)
	}
	return nil
}

func fsType(format string) string {
	if format == "swap" {
		return "swap"
	}
	return "ext4"
}

// mkfs makes the filesystem; ext4 gets its label only once it is complete.
func mkfs(ctx context.Context, node string, part env.Partition) error {
	if fsType(part.Format) == "swap" {
		_, err := run(ctx, "mkswap", "-L", part.Label, node)
		return err
	}
	if _, err := run(ctx, "mkfs.ext4", "-q", "-L", pendingLabel, node); err != nil {
		return err
	}
	_, err := run(ctx, "tune2fs", "-L", part.Label, node)
	return err
}
