package discovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/ethikkom/ecs-appliance/firstboot/agentconfig"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// secret is in every test document: no report, error or summary may contain it.
const secret = "s3cr3t-do-not-print"

func doc(tag string) string {
	return "#cloud-config\n# " + tag + "\nappliance:\n  domain: example.org\n  secret: " + secret + "\n"
}

// options allows only the given sources, with the endpoints on an unused address so
// that a test that forgets one fails fast instead of reaching a real metadata service.
func options(root string, sources ...string) Options {
	c := agentconfig.Default()
	c.Sources = sources
	c.Endpoints = agentconfig.Endpoints{EC2: "http://127.0.0.1:1", GCE: "http://127.0.0.1:1", OpenStack: "http://127.0.0.1:1"}
	return Options{Config: c, Root: root, Devices: []string{}}
}

func discover(t testing.TB, opt Options) (*Result, error) {
	t.Helper()
	res, err := Discover(context.Background(), opt)
	if res == nil {
		t.Fatalf("Discover returned no result (err %v)", err)
	}
	assertNoSecret(t, res, err)
	return res, err
}

// mustFind runs Discover and checks it found want from source.
func mustFind(t testing.TB, opt Options, source, from, want string) *Result {
	t.Helper()
	res, err := discover(t, opt)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if string(res.Document) != want || res.Source != source || (from != "" && res.From != from) {
		t.Fatalf("got %s, want %q from %s %s; reports:\n%s", res, want, source, from, reports(res))
	}
	sum := sha256.Sum256([]byte(want))
	if res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 %s does not match the document", res.SHA256)
	}
	return res
}

func assertNoSecret(t testing.TB, res *Result, err error) {
	t.Helper()
	texts := []string{res.String(), fmt.Sprintf("%v %+v %s", res, res, res), reports(res)}
	if err != nil {
		texts = append(texts, err.Error())
	}
	for _, s := range texts {
		if strings.Contains(s, secret) {
			t.Fatalf("document content leaked into %q", s)
		}
	}
}

func reports(res *Result) string {
	var b strings.Builder
	for _, r := range res.Reports {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

// report returns the report for source, failing when there is none.
func report(t testing.TB, res *Result, source string) Report {
	t.Helper()
	i := slices.IndexFunc(res.Reports, func(r Report) bool { return r.Source == source })
	if i < 0 {
		t.Fatalf("no report for %s:\n%s", source, reports(res))
	}
	return res.Reports[i]
}

func wantReport(t testing.TB, res *Result, source string, status Status, reasonPart string) {
	t.Helper()
	r := report(t, res, source)
	if r.Status != status || !strings.Contains(r.Reason, reasonPart) {
		t.Fatalf("%s: got %q, want status %s with reason containing %q", source, r, status, reasonPart)
	}
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeISO writes an ISO9660 image the way env-tools builds the cidata ISO: go-diskfs,
// 2 KiB blocks, Rock Ridge and Joliet, truncated to the volume's size.
func makeISO(t testing.TB, name, label string, files map[string]string) {
	t.Helper()
	d, err := diskfs.Create(name, 4<<20, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.LogicalBlocksize = 2048
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{FSType: filesystem.TypeISO9660, VolumeLabel: label, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		if dir := path.Dir(p); dir != "." {
			if err := fsys.Mkdir("/" + dir); err != nil {
				t.Fatal(err)
			}
		}
		f, err := fsys.OpenFile("/"+p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	iso := fsys.(*iso9660.FileSystem)
	if err := iso.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: label}); err != nil {
		t.Fatal(err)
	}
	// the volume space size (LSB half) is at offset 80 of the primary volume descriptor
	var blocks [4]byte
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(blocks[:], 16*2048+80); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, int64(binary.LittleEndian.Uint32(blocks[:]))*2048); err != nil {
		t.Fatal(err)
	}
}

// makeFAT writes a FAT image of sizeKiB with mkfs.vfat and mtools, as the NoCloud
// documentation tells users to.
func makeFAT(t testing.TB, name, label string, sizeKiB int, files map[string]string, mkfsArgs ...string) {
	t.Helper()
	testtool.Require(t, "mkfs.vfat", "mcopy", "mmd")
	run(t, "mkfs.vfat", append(mkfsArgs, "-C", name, fmt.Sprint(sizeKiB), "-n", label)...)
	src := t.TempDir()
	made := map[string]bool{}
	for p, content := range files {
		dir := ""
		for _, part := range strings.Split(path.Dir(p), "/") {
			if part == "." {
				break
			}
			dir = path.Join(dir, part)
			if !made[dir] {
				run(t, "mmd", "-i", name, "::"+dir)
				made[dir] = true
			}
		}
		local := filepath.Join(src, "f")
		writeFile(t, local, content)
		run(t, "mcopy", "-o", "-i", name, local, "::"+p)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// makeGPT writes a disk image with a GPT whose partitions hold the given images, each
// padded to whole MiB.
func makeGPT(t testing.TB, name string, images ...string) {
	t.Helper()
	const mib = 1 << 20
	start := uint64(mib / 512)
	var parts []*gpt.Partition
	var contents [][]byte
	for i, img := range images {
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		size := (len(data) + mib - 1) / mib * mib
		data = append(data, make([]byte, size-len(data))...)
		contents = append(contents, data)
		parts = append(parts, &gpt.Partition{Index: i + 1, Start: start, Size: uint64(size), Type: gpt.LinuxFilesystem, Name: fmt.Sprintf("part%d", i+1)})
		start += uint64(size / 512)
	}
	d, err := diskfs.Create(name, int64(start)*512+mib, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Partition(&gpt.Table{Partitions: parts, LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true}); err != nil {
		t.Fatal(err)
	}
	for i, c := range contents {
		if _, err := d.WritePartitionContents(i+1, bytes.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
}
