package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/ethikkom/ecs-appliance/builder/chroot"
	"github.com/ethikkom/ecs-appliance/builder/manifest"
	"github.com/ethikkom/ecs-appliance/builder/qemutest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	warns, err := c.Prepare(map[string]interface{}{"packer_build_name": "x"})
	if err != nil || len(warns) != 0 {
		t.Fatalf("%v %v", warns, err)
	}
	if c.Base != "debian-trixie" || c.diskBytes != 4<<30 || strings.Join(c.Formats, ",") != "qcow2" ||
		c.OutputDirectory != "output-x" || c.ImageName != "appliance" || c.RootLabel != "ecs-root" {
		t.Fatalf("defaults: %+v", c)
	}
	var i Config
	warns, err = i.Prepare(map[string]interface{}{"insecure": true, "disk_size": "2048M", "base": "ubuntu-noble"})
	if err != nil || len(warns) != 1 || i.diskBytes != 2<<30 {
		t.Fatalf("insecure: %v %v %d", warns, err, i.diskBytes)
	}
}

func TestConfigRejects(t *testing.T) {
	for name, raw := range map[string]map[string]interface{}{
		"base":    {"base": "debian-sid"},
		"format":  {"formats": []string{"vdi"}},
		"size":    {"disk_size": "huge"},
		"small":   {"disk_size": "64M"},
		"label":   {"root_label": "a-label-longer-than-16"},
		"name":    {"image_name": "a/b"},
		"unknown": {"colour": "red"},
	} {
		var c Config
		if _, err := c.Prepare(raw); err == nil {
			t.Errorf("%s: accepted %v", name, raw)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4G": 4 << 30, "4GiB": 4 << 30, "512M": 512 << 20, "1024": 1 << 30, "1T": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1G", "1.5G", "G"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUIWriter(t *testing.T) {
	var got []string
	w := &uiWriter{ui: recordUi{&got}}
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\n"))
	if strings.Join(got, "|") != "one|two" {
		t.Fatalf("%q", got)
	}
}

type recordUi struct{ lines *[]string }

func (r recordUi) Ask(string) (string, error)          { return "", nil }
func (r recordUi) Askf(string, ...any) (string, error) { return "", nil }
func (r recordUi) Say(s string)                        { *r.lines = append(*r.lines, s) }
func (r recordUi) Sayf(f string, a ...any)             {}
func (r recordUi) Message(s string)                    { *r.lines = append(*r.lines, s) }
func (r recordUi) Error(s string)                      { *r.lines = append(*r.lines, "error: "+s) }
func (r recordUi) Errorf(f string, a ...any)           {}
func (r recordUi) Machine(string, ...string)           {}
func (r recordUi) TrackProgress(_ string, _, _ int64, s io.ReadCloser) io.ReadCloser {
	return s
}

// provisionHook stands in for Packer's provisioners: it runs a command through the
// builder's communicator.
type provisionHook struct{ ran bool }

func (h *provisionHook) Run(ctx context.Context, name string, ui packersdk.Ui, comm packersdk.Communicator, _ interface{}) error {
	if name != packersdk.HookProvision {
		return nil
	}
	h.ran = true
	cmd := &packersdk.RemoteCmd{Command: "echo provisioned > /etc/ecs-provisioned && systemctl is-system-running || true"}
	return cmd.RunWithUi(ctx, comm, ui)
}

// TestBuildAndBoot builds the default base end to end and boots the qcow2 under
// SeaBIOS and OVMF until the kernel talks on the serial console. It takes minutes:
// set ECS_IMAGE_TESTS=1 (make e2e does). ECS_IMAGE_CACHE_DIR keeps the base between runs.
func TestBuildAndBoot(t *testing.T) {
	if os.Getenv("ECS_IMAGE_TESTS") != "1" {
		t.Skip("set ECS_IMAGE_TESTS=1 for the end-to-end image build")
	}
	testtool.RequireRoot(t)
	testtool.Require(t, "mmdebstrap", "qemu-img", "mkfs.ext4", "mkfs.vfat", "mcopy", "sgdisk", "qemu-system-x86_64")
	out := filepath.Join(t.TempDir(), "output")
	work := t.TempDir()
	cache := os.Getenv("ECS_IMAGE_CACHE_DIR")
	if cache == "" {
		cache = t.TempDir()
	}
	var b Builder
	if _, _, err := b.Prepare(map[string]interface{}{
		"packer_build_name": "e2e", "output_directory": out, "work_dir": work, "cache_dir": cache,
		"formats": []string{"raw", "qcow2"}, "disk_size": "2G",
	}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	hook := &provisionHook{}
	art, err := b.Run(context.Background(), recordUi{&lines}, hook)
	t.Log(strings.Join(lines, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !hook.ran {
		t.Error("provision hook not run")
	}
	if m, _ := chroot.MountsUnder(work); len(m) > 0 {
		t.Fatalf("still mounted: %v", m)
	}
	if entries, _ := os.ReadDir(work); len(entries) > 0 {
		t.Errorf("work dir not cleaned: %v", entries)
	}
	t.Log(art.String())

	var man manifest.Manifest
	data, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil || json.Unmarshal(data, &man) != nil {
		t.Fatalf("manifest: %v", err)
	}
	if man.Base != "debian-trixie" || man.Kernel == "" || len(man.Packages) < 100 || len(man.Files) != 2 || man.Mirror == "" {
		t.Errorf("manifest: base %s kernel %s packages %d files %d", man.Base, man.Kernel, len(man.Packages), len(man.Files))
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = out
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum: %v %s", err, o)
	}
	raw := filepath.Join(out, "appliance.raw")
	if o, err := exec.Command("sgdisk", "-v", raw).CombinedOutput(); err != nil || !bytes.Contains(o, []byte("No problems found")) {
		t.Errorf("sgdisk -v: %v\n%s", err, o)
	}
	for _, f := range man.Files {
		t.Logf("%s: %d MiB allocated", f.Name, f.AllocatedBytes>>20)
	}

	// Boot an overlay with a bigger disk: the root must grow to it at first boot.
	qcow := filepath.Join(out, "appliance.qcow2")
	big := filepath.Join(t.TempDir(), "big.qcow2")
	if o, err := exec.Command("qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", qcow, big, "3G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v %s", err, o)
	}
	for _, fw := range []qemutest.Firmware{qemutest.SeaBIOS, qemutest.OVMF} {
		t.Run(string(fw), func(t *testing.T) {
			// "Linux version" comes from the kernel; "login:" proves the initramfs found
			// the root and systemd came up; the ext4 resize message is the root growth.
			want := []string{"Linux version " + strings.SplitN(man.Kernel, "-", 2)[0], "login:", "resized filesystem to"}
			log := qemutest.Boot(t, big, fw, want...)
			for _, w := range want {
				if !strings.Contains(log, w) {
					t.Errorf("serial log lacks %q:\n%s", w, qemutest.Tail(log))
				}
			}
		})
	}
}
