package cidata

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// testFiles is a seed whose user-data has non-ASCII text and no final newline, and
// whose PDF spans several blocks, so byte-for-byte copies are really checked.
func testFiles(t *testing.T) Files {
	t.Helper()
	pdf := make([]byte, 5*blockSize+123)
	if _, err := rand.Read(pdf); err != nil {
		t.Fatal(err)
	}
	return Files{
		UserData: []byte("#cloud-config\nappliance:\n  domain: ecs.example.org\n  # Prüfung\necs:\n  secret_key: s3cr3t"),
		MetaData: MetaData("ecs.example.org"),
		PDF:      append([]byte("%PDF-1.7\n"), pdf...),
	}
}

// imagePath is where a test writes its image: a name of its own, so that a staging
// directory left in the shared /dev/shm is this test's (ecs-env's tests and other
// checkouts stage there too).
func imagePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "cidata-"+rand.Text()+".iso")
}

// fill creates path as ecs-env does (0600, not there before) and fills it with files.
func fill(path string, files Files) error {
	out, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = Fill(out, files)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestMetaDataIsTheOriginalDefault(t *testing.T) {
	want := "instance-id: iid-cloud-default\nlocal-hostname: ecs.example.org\n"
	if got := string(MetaData("ecs.example.org")); got != want {
		t.Errorf("MetaData = %q, want %q", got, want)
	}
}

// TestSeedReadByRealTools checks the image the way peers see it: blkid finds the
// label, xorriso reads Rock Ridge and Joliet names and extracts identical files,
// and cloud-init's NoCloud reader takes user-data and instance-id from them.
func TestSeedReadByRealTools(t *testing.T) {
	testtool.Require(t, "blkid", "xorriso")
	iso := imagePath(t)
	dir := filepath.Dir(iso)
	files := testFiles(t)
	if err := fill(iso, files); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(iso)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the image (work files left behind?)", len(ents))
	}
	assertNoWorkspace(t, workParent(iso), iso)

	blk := run(t, "blkid", "-p", "-o", "export", iso)
	for _, want := range []string{"LABEL=cidata", "TYPE=iso9660"} {
		if !slices.Contains(strings.Split(blk, "\n"), want) {
			t.Errorf("blkid lacks %s:\n%s", want, blk)
		}
	}

	// The image ends exactly at the volume's last block.
	toc := run(t, "xorriso", "-indev", iso, "-toc")
	m := regexp.MustCompile(`ISO session\s*:\s*1\s*,\s*0\s*,\s*(\d+)s`).FindStringSubmatch(toc)
	if m == nil {
		t.Fatalf("no session in xorriso -toc:\n%s", toc)
	}
	if blocks, _ := strconv.ParseInt(m[1], 10, 64); blocks*blockSize != st.Size() {
		t.Errorf("volume is %d blocks, file is %d bytes", blocks, st.Size())
	}

	names := []string{"'env.yml.pdf'", "'meta-data'", "'user-data'"}
	for _, tc := range []struct{ readFS, loaded string }{
		{"any", "Rock_Ridge"},
		{"norock", "Joliet"},
	} {
		out := run(t, "xorriso", "-read_fs", tc.readFS, "-ecma119_map", "unmapped", "-indev", iso, "-toc", "-ls", "/")
		if !strings.Contains(out, "ISO loaded   : "+tc.loaded) {
			t.Errorf("-read_fs %s did not load %s:\n%s", tc.readFS, tc.loaded, out)
		}
		var listed []string
		for l := range strings.SplitSeq(out, "\n") {
			if strings.HasPrefix(l, "'") {
				listed = append(listed, l)
			}
		}
		if !slices.Equal(listed, names) {
			t.Errorf("%s names %q, want %q", tc.loaded, listed, names)
		}
	}

	// The seed directory sits where cloud-init's NoCloud datasource looks for it.
	work := t.TempDir()
	seed := filepath.Join(work, "cloud", "seed", "nocloud")
	run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", seed)
	for name, want := range map[string][]byte{"user-data": files.UserData, "meta-data": files.MetaData, "env.yml.pdf": files.PDF} {
		got, err := os.ReadFile(filepath.Join(seed, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("extracted %s differs (%d bytes, want %d)", name, len(got), len(want))
		}
	}

	checkNoCloud(t, seed, work, files)
}

const noCloudScript = `
import json, sys
from cloudinit import helpers, util
from cloudinit.sources import DataSourceNoCloud
seed, work = sys.argv[1], sys.argv[2]
files = util.pathprefix2dict(seed + "/", required=["user-data", "meta-data"],
                             optional=["vendor-data", "network-config"])
paths = helpers.Paths({"cloud_dir": work + "/cloud", "run_dir": work + "/run"})
# fs_label None: read only the seed directory, never the host's block devices.
ds = DataSourceNoCloud.DataSourceNoCloud(
    {"datasource": {"NoCloud": {"fs_label": None}}}, None, paths)
found = ds.get_data()
ud = ds.get_userdata_raw()
print(json.dumps({
    "files": {k: v.decode() if isinstance(v, bytes) else v for k, v in files.items()},
    "found": found, "seed": ds.seed, "instance_id": ds.get_instance_id(),
    "hostname": ds.metadata.get("local-hostname"),
    "user_data": ud.decode() if isinstance(ud, bytes) else ud,
}))
`

// checkNoCloud runs cloud-init's own reader with the system python, which has
// cloud-init's modules (a python3 earlier on PATH may not).
func checkNoCloud(t *testing.T, seed, work string, files Files) {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import cloudinit.sources.DataSourceNoCloud").Run(); err != nil {
		testtool.Missing(t, "cloud-init for "+python+" not installed (make test installs it)")
	}
	var got struct {
		Files      map[string]string
		Found      bool
		Seed       string
		InstanceID string `json:"instance_id"`
		Hostname   string
		UserData   string `json:"user_data"`
	}
	if err := json.Unmarshal([]byte(run(t, python, "-c", noCloudScript, seed, work)), &got); err != nil {
		t.Fatal(err)
	}
	if got.Files["user-data"] != string(files.UserData) || got.Files["meta-data"] != string(files.MetaData) {
		t.Errorf("pathprefix2dict read user-data/meta-data differently")
	}
	if !got.Found || got.Seed != seed {
		t.Fatalf("NoCloud did not use the seed: found=%v seed=%q", got.Found, got.Seed)
	}
	if got.InstanceID != "iid-cloud-default" || got.Hostname != "ecs.example.org" {
		t.Errorf("instance-id %q, local-hostname %q", got.InstanceID, got.Hostname)
	}
	if got.UserData != string(files.UserData) {
		t.Errorf("NoCloud user-data differs from the env")
	}
}

// TestFailedFillLeavesNoWorkspace: Fill removes its staging copy of the files also
// when it fails, before staging or after.
func TestFailedFillLeavesNoWorkspace(t *testing.T) {
	t.Run("missing content", func(t *testing.T) {
		iso := imagePath(t)
		dir := filepath.Dir(iso)
		files := testFiles(t)
		files.PDF = nil
		if err := fill(iso, files); err == nil {
			t.Fatal("Fill without a PDF succeeded")
		}
		assertOnly(t, dir, filepath.Base(iso))
		assertNoWorkspace(t, workParent(iso), iso)
	})
	t.Run("image not writable", func(t *testing.T) {
		// Staging succeeds, writing the image fails.
		iso := imagePath(t)
		dir := filepath.Dir(iso)
		if err := os.WriteFile(iso, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := os.Open(iso)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		if err := Fill(out, testFiles(t)); err == nil {
			t.Fatal("Fill into a read-only file succeeded")
		}
		assertOnly(t, dir, filepath.Base(iso))
		assertNoWorkspace(t, workParent(iso), iso)
	})
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// assertNoWorkspace checks that no staging directory of target's is left in parent.
func assertNoWorkspace(t *testing.T, parent, target string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(target)+".work-*"))
	if len(left) > 0 {
		t.Errorf("staging directories left behind: %v", left)
	}
}
