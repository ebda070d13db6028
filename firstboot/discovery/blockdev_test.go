package discovery

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// The cidata ISO as env-tools builds it (go-diskfs, Rock Ridge + Joliet) is found by
// its volume id without mounting anything.
func TestNoCloudISO(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "seed.iso")
	makeISO(t, iso, "cidata", map[string]string{"user-data": doc("iso"), "meta-data": "instance-id: i-1\n"})
	opt := options(dir, "nocloud")
	opt.Devices = []string{iso}
	mustFind(t, opt, "nocloud", iso, doc("iso"))
}

// Seeds made the documented way with genisoimage's options (-volid, -joliet, -rock),
// here through xorriso's mkisofs emulation, are found for both labels.
func TestISOFromXorriso(t *testing.T) {
	testtool.Require(t, "xorriso")
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	writeFile(t, filepath.Join(seed, "user-data"), doc("xorriso cidata"))
	writeFile(t, filepath.Join(seed, "meta-data"), "instance-id: i-1\n")
	writeFile(t, filepath.Join(seed, "openstack/latest/user_data"), doc("xorriso config-2"))
	for label, want := range map[string]string{"cidata": doc("xorriso cidata"), "config-2": doc("xorriso config-2")} {
		iso := filepath.Join(dir, label+".iso")
		run(t, "xorriso", "-as", "mkisofs", "-quiet", "-output", iso, "-volid", label, "-joliet", "-rock", seed)
		opt := options(dir, "nocloud", "configdrive")
		opt.Devices = []string{iso}
		mustFind(t, opt, map[string]string{"cidata": "nocloud", "config-2": "configdrive"}[label], iso, want)
	}
}

// A vfat seed made the way the NoCloud docs say (mkfs.vfat -n CIDATA + mcopy) is found
// as FAT12, FAT16 and FAT32; the label matches case-insensitively.
func TestNoCloudVFAT(t *testing.T) {
	dir := t.TempDir()
	for bits, sizeKiB := range map[string]int{"12": 2048, "16": 12000, "32": 40000} {
		img := filepath.Join(dir, "seed"+bits+".img")
		makeFAT(t, img, "CIDATA", sizeKiB, map[string]string{"user-data": doc("vfat" + bits), "meta-data": "instance-id: i-1\n"}, "-F", bits)
		opt := options(dir, "nocloud")
		opt.Devices = []string{img}
		mustFind(t, opt, "nocloud", img, doc("vfat"+bits))
	}
}

// A FAT label only in the boot sector (no volume entry in the root directory) counts,
// as cloud-init counts blkid's LABEL_FATBOOT.
func TestFATBootSectorLabel(t *testing.T) {
	testtool.Require(t, "blkid")
	dir := t.TempDir()
	img := filepath.Join(dir, "seed.img")
	makeFAT(t, img, "CIDATA", 2048, map[string]string{"user-data": doc("boot label")})
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// the root directory's volume entry: the padded name, then attribute 0x08
	i := bytes.Index(data[512:], []byte("CIDATA     \x08"))
	if i < 0 {
		t.Fatal("no volume entry in the root directory")
	}
	data[512+i] = 0xE5 // mark the entry deleted
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blkid", "-p", "-o", "export", img).Output()
	if err != nil || !strings.Contains(string(out), "\nLABEL_FATBOOT=CIDATA\n") || strings.Contains(string(out), "\nLABEL=") {
		t.Fatalf("blkid should see only LABEL_FATBOOT: %v\n%s", err, out)
	}
	opt := options(dir, "nocloud")
	opt.Devices = []string{img}
	mustFind(t, opt, "nocloud", img, doc("boot label"))
}

// Config drives in both formats and label spellings give openstack/latest/user_data, and
// nocloud does not take a config drive for a cidata seed.
func TestConfigDrive(t *testing.T) {
	dir := t.TempDir()
	fat := filepath.Join(dir, "config2.img")
	makeFAT(t, fat, "CONFIG-2", 2048, map[string]string{
		"openstack/latest/meta_data.json": "{}", "openstack/latest/user_data": doc("config-2 vfat"),
	})
	iso := filepath.Join(dir, "config2.iso")
	makeISO(t, iso, "config-2", map[string]string{"openstack/latest/user_data": doc("config-2 iso")})

	for _, img := range []string{fat, iso} {
		opt := options(dir, "nocloud", "configdrive")
		opt.Devices = []string{img}
		res := mustFind(t, opt, "configdrive", img, map[string]string{fat: doc("config-2 vfat"), iso: doc("config-2 iso")}[img])
		wantReport(t, res, "nocloud", Absent, "no filesystem labelled cidata among 1 devices")
	}
}

// A labelled filesystem without the file is absent (the next source is tried), and the
// report names the device.
func TestLabelledFilesystemWithoutFile(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "seed.iso")
	makeISO(t, iso, "cidata", map[string]string{"meta-data": "instance-id: i-1\n"})
	writeFile(t, filepath.Join(dir, "app/env.yml"), doc("local"))
	opt := options(dir, "nocloud", "local")
	opt.Devices = []string{iso}
	res := mustFind(t, opt, "local", "", doc("local"))
	wantReport(t, res, "nocloud", Absent, "no user-data on the filesystem labelled cidata: "+iso)
}

// Devices that are not FAT or ISO9660 (even an ext4 labelled cidata, which cloud-init
// would not take either), carry another label, or cannot be opened are passed over; the
// cidata seed after them is still found.
func TestOtherDevicesArePassedOver(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.img")
	makeFAT(t, other, "ESP", 2048, map[string]string{"user-data": doc("wrong label")})
	zeros := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(dir, "tiny.img")
	writeFile(t, tiny, "x")
	testtool.Require(t, "mkfs.ext4")
	ext4 := filepath.Join(dir, "data.img")
	run(t, "mkfs.ext4", "-q", "-L", "cidata", ext4, "4M")
	iso := filepath.Join(dir, "seed.iso")
	makeISO(t, iso, "CIDATA", map[string]string{"user-data": doc("seed")})
	opt := options(dir, "nocloud")
	opt.Devices = []string{filepath.Join(dir, "missing"), zeros, tiny, ext4, other, iso}
	mustFind(t, opt, "nocloud", iso, doc("seed"))
}

// A GPT disk image whose second partition holds the seed: go-diskfs reads the table and
// the filesystem at the partition's offset, for ISO9660 and for vfat.
func TestNoCloudOnGPTPartition(t *testing.T) {
	dir := t.TempDir()
	filler := filepath.Join(dir, "filler.img")
	makeFAT(t, filler, "DATA", 1024, nil)
	iso := filepath.Join(dir, "seed.iso")
	makeISO(t, iso, "cidata", map[string]string{"user-data": doc("gpt iso")})
	fat := filepath.Join(dir, "seed.img")
	makeFAT(t, fat, "cidata", 1024, map[string]string{"user-data": doc("gpt vfat")})

	for content, img := range map[string]string{doc("gpt iso"): iso, doc("gpt vfat"): fat} {
		disk := filepath.Join(dir, "disk-"+filepath.Base(img))
		makeGPT(t, disk, filler, img)
		opt := options(dir, "nocloud")
		opt.Devices = []string{disk}
		mustFind(t, opt, "nocloud", disk+" partition 2", content)
	}
}

// Without explicit devices the scan lists <root>/sys/class/block and opens <root>/dev/<name>:
// empty devices are left out, one that cannot be opened is counted, a whole disk whose
// partitions the kernel lists is not searched for a table, one without is.
func TestSysfsScan(t *testing.T) {
	root := t.TempDir()
	sys := filepath.Join(root, "sys/class/block")
	for name, size := range map[string]string{"loop0": "0", "sda": "4096", "sda1": "2048", "sr0": "8", "vdb": "2048"} {
		writeFile(t, filepath.Join(sys, name, "size"), size+"\n")
	}
	writeFile(t, filepath.Join(sys, "sda/sda1/partition"), "1\n")
	writeFile(t, filepath.Join(sys, "sda1/partition"), "1\n")

	iso := filepath.Join(root, "dev/sr0")
	writeFile(t, filepath.Join(root, "dev/.keep"), "")
	makeISO(t, iso, "cidata", map[string]string{"user-data": doc("sr0")})
	// sda carries a GPT with a seed in partition 1, but sysfs lists sda1, which is
	// another filesystem: the kernel's view wins, so sda's table is not read
	makeGPT(t, filepath.Join(root, "dev/sda"), iso)
	makeFAT(t, filepath.Join(root, "dev/sda1"), "DATA", 1024, nil)
	// vdb is listed but has no device node

	opt := options(root, "configdrive", "nocloud")
	opt.Devices = nil
	res := mustFind(t, opt, "nocloud", filepath.Join(root, "dev/sr0"), doc("sr0"))
	wantReport(t, res, "configdrive", Absent, "among 4 devices (1 could not be read: "+filepath.Join(root, "dev/vdb"))

	// the same disk, not listed with partitions, is searched through its table
	if err := os.RemoveAll(filepath.Join(sys, "sda/sda1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "dev/sr0")); err != nil {
		t.Fatal(err)
	}
	mustFind(t, opt, "nocloud", filepath.Join(root, "dev/sda")+" partition 1", doc("sr0"))
}

func TestNoSysfsMeansNoDevices(t *testing.T) {
	opt := options(t.TempDir(), "nocloud")
	opt.Devices = nil
	res, _ := discover(t, opt)
	wantReport(t, res, "nocloud", Absent, "among 0 devices")
}

// A user-data above the cap is an error that says so, and the next source is tried.
func TestOversizedUserDataOnDevice(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "seed.iso")
	makeISO(t, iso, "cidata", map[string]string{"user-data": doc("big") + strings.Repeat("#\n", MaxDocumentSize/2)})
	writeFile(t, filepath.Join(dir, "app/env.yml"), doc("local"))
	opt := options(dir, "nocloud", "local")
	opt.Devices = []string{iso}
	res := mustFind(t, opt, "local", "", doc("local"))
	wantReport(t, res, "nocloud", Failed, "larger than 1048576 bytes")
}

// On a real loop device (block-device size and sector ioctls in go-diskfs), the seed is
// found through the partition table of the whole disk and on the partition node that
// partx creates.
func TestLoopDevice(t *testing.T) {
	testtool.RequireRoot(t)
	testtool.Require(t, "losetup", "partx")
	dir := t.TempDir()
	iso := filepath.Join(dir, "seed.iso")
	makeISO(t, iso, "cidata", map[string]string{"user-data": doc("loop")})
	filler := filepath.Join(dir, "filler.img")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	makeGPT(t, img, filler, iso)

	out, err := exec.Command("losetup", "-f", "--show", "-r", img).Output()
	if err != nil {
		testtool.Missing(t, "no loop device: "+err.Error())
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		_ = exec.Command("partx", "-d", loop).Run()
		_ = exec.Command("losetup", "-d", loop).Run()
	})
	// -u rather than -a: it also replaces partitions a previous user of this loop
	// device left registered, which would make -a fail
	run(t, "partx", "-u", loop)

	opt := options(dir, "nocloud")
	opt.Devices = []string{loop}
	mustFind(t, opt, "nocloud", loop+" partition 2", doc("loop"))
	opt.Devices = []string{loop + "p2"}
	mustFind(t, opt, "nocloud", loop+"p2", doc("loop"))
}

func BenchmarkDiscoverCidataISO(b *testing.B) {
	dir := b.TempDir()
	iso := filepath.Join(dir, "seed.iso")
	makeISO(b, iso, "cidata", map[string]string{"user-data": doc("bench"), "meta-data": "instance-id: i-1\n"})
	opt := options(dir, "env-file", "local", "nocloud")
	opt.Devices = []string{iso}
	for b.Loop() {
		res, err := Discover(context.Background(), opt)
		if err != nil || res.Source != "nocloud" {
			b.Fatalf("%v %v", res, err)
		}
	}
}
