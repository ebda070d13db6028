package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/ethikkom/ecs-appliance/builder/bootable"
	"github.com/ethikkom/ecs-appliance/builder/bootstrap"
	"github.com/ethikkom/ecs-appliance/builder/chroot"
	"github.com/ethikkom/ecs-appliance/builder/convert"
	"github.com/ethikkom/ecs-appliance/builder/disk"
	"github.com/ethikkom/ecs-appliance/builder/manifest"
	"github.com/ethikkom/ecs-appliance/builder/mirror"
	"github.com/ethikkom/ecs-appliance/internal/filesum"
)

// halt records err for Run and stops the build.
func halt(state multistep.StateBag, err error) multistep.StepAction {
	state.Put("error", err)
	state.Get("ui").(packersdk.Ui).Error(err.Error())
	return multistep.ActionHalt
}

// stepCheckHost fails early when the build cannot work on this host: not root, a
// tool missing, no mirror for the base.
type stepCheckHost struct{}

func (s *stepCheckHost) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	state.Put("start", time.Now())
	if os.Geteuid() != 0 {
		return halt(state, errors.New("the ecs-image builder must run as root (it bootstraps with chroot and mounts proc, sys, dev)"))
	}
	tools := []string{c.base.Bootstrap, "tar", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy"}
	for _, f := range c.Formats {
		if f != "raw" {
			tools = append(tools, "qemu-img")
			break
		}
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return halt(state, fmt.Errorf("%s is missing on the build host (Debian packages: mmdebstrap debootstrap e2fsprogs dosfstools mtools qemu-utils)", t))
		}
	}
	srcs, err := mirror.ReadHost("/")
	if err != nil {
		return halt(state, err)
	}
	m, err := mirror.Find(srcs, c.base, c.Mirror, c.SecurityMirror)
	if err != nil {
		return halt(state, err)
	}
	if m.Security == "" {
		state.Get("ui").(packersdk.Ui).Say(fmt.Sprintf("No %s security archive known (the host lists none; set security_mirror): the image gets no %s suite.", c.base.Distribution, c.base.SecuritySuite()))
	}
	state.Put("mirrors", m)
	return multistep.ActionContinue
}

func (s *stepCheckHost) Cleanup(multistep.StateBag) {}

// stepWorkDir makes the directory the root filesystem and raw image live in, and
// removes it at the end, but only once nothing is mounted below it any more.
type stepWorkDir struct{ dir string }

func (s *stepWorkDir) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	parent := c.WorkDir
	if parent != "" {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return halt(state, err)
		}
	}
	dir, err := os.MkdirTemp(parent, "ecs-image-")
	if err != nil {
		return halt(state, err)
	}
	s.dir = dir
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return halt(state, err)
	}
	state.Put("workdir", dir)
	state.Put("root", root)
	return multistep.ActionContinue
}

func (s *stepWorkDir) Cleanup(state multistep.StateBag) {
	if s.dir == "" {
		return
	}
	ui := state.Get("ui").(packersdk.Ui)
	if err := chroot.Sweep(s.dir); err != nil {
		ui.Error(fmt.Sprintf("cleaning up %s: %v", s.dir, err))
	}
	if m, err := chroot.MountsUnder(s.dir); err != nil || len(m) > 0 {
		// Never delete through a mount: that would delete the host's files.
		ui.Error(fmt.Sprintf("leaving %s in place: still mounted below it: %v %v", s.dir, m, err))
		return
	}
	if err := os.RemoveAll(s.dir); err != nil {
		ui.Error(err.Error())
	}
}

// stepBootstrap fills the root from the cache or by bootstrapping.
type stepBootstrap struct{}

func (s *stepBootstrap) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	m := state.Get("mirrors").(mirror.Mirrors)
	spec := &bootstrap.Spec{Base: c.base, Mirrors: m, Keyring: c.Keyring, Insecure: c.Insecure}
	ui.Say(fmt.Sprintf("Base %s (%s %s) from %s", c.base.Name, c.base.Bootstrap, c.base.Suite, m.Archive))
	res, err := bootstrap.Prepare(ctx, spec, c.CacheDir, state.Get("root").(string), &uiWriter{ui: ui})
	if err != nil {
		return halt(state, err)
	}
	if res.CacheHit {
		ui.Say(fmt.Sprintf("Unpacked the cached base %s in %s", res.Tarball, res.Duration.Round(time.Second)))
	} else {
		ui.Say(fmt.Sprintf("Bootstrapped the base in %s and cached it as %s", res.Duration.Round(time.Second), res.Tarball))
	}
	state.Put("bootstrap", res)
	return multistep.ActionContinue
}

func (s *stepBootstrap) Cleanup(multistep.StateBag) {}

// stepChroot prepares the root for provisioners and hands Packer the communicator.
type stepChroot struct{ session *chroot.Session }

func (s *stepChroot) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	sess, err := chroot.Enter(state.Get("root").(string))
	if err != nil {
		return halt(state, err)
	}
	s.session = sess
	state.Put("session", sess)
	state.Put("communicator", sess.Communicator())
	// Bootstrapping leaves no package lists; provisioners expect a machine that can
	// install packages, like a fresh cloud VM.
	ui.Say("Refreshing package lists in the root")
	if out, err := sess.Communicator().Run("apt-get update -q"); err != nil {
		return halt(state, fmt.Errorf("apt-get update in the root: %w\n%s", err, out))
	}
	return multistep.ActionContinue
}

func (s *stepChroot) Cleanup(state multistep.StateBag) {
	if err := s.session.Close(); err != nil {
		state.Get("ui").(packersdk.Ui).Error(err.Error())
	}
}

// stepBootable installs the boot files, records the packages and unmounts the root
// so the filesystem copy sees only the image's own files.
type stepBootable struct{}

func (s *stepBootable) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	root := state.Get("root").(string)
	sess := state.Get("session").(*chroot.Session)
	ids := bootable.IDs{RootUUID: uuid.NewString(), ESPVolumeID: randomHex(4)}
	ui.Say("Making the root bootable: initramfs, GRUB for BIOS and UEFI, fstab")
	res, err := bootable.Prepare(root, sess.Communicator(), ids)
	if err != nil {
		return halt(state, err)
	}
	if out, err := sess.Communicator().Run("apt-get clean && rm -rf /var/lib/apt/lists/*"); err != nil {
		return halt(state, fmt.Errorf("clearing apt's lists: %w\n%s", err, out))
	}
	if err := sess.Close(); err != nil {
		return halt(state, err)
	}
	pkgs, err := manifest.Packages(root)
	if err != nil {
		return halt(state, err)
	}
	state.Put("ids", ids)
	state.Put("boot", res)
	state.Put("packages", pkgs)
	return multistep.ActionContinue
}

func (s *stepBootable) Cleanup(multistep.StateBag) {}

// stepAssemble writes the raw disk image into the work directory.
type stepAssemble struct{}

func (s *stepAssemble) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	work := state.Get("workdir").(string)
	ids := state.Get("ids").(bootable.IDs)
	boot := state.Get("boot").(*bootable.Result)
	layout, err := disk.Plan(c.diskBytes)
	if err != nil {
		return halt(state, err)
	}
	efi := filepath.Join(work, "BOOTX64.EFI")
	if err := os.WriteFile(efi, boot.EFIImage, 0o644); err != nil {
		return halt(state, err)
	}
	raw := filepath.Join(work, c.ImageName+".raw")
	start := time.Now()
	ui.Say(fmt.Sprintf("Assembling a %s disk (GPT: BIOS boot, ESP, root %q)", c.DiskSize, c.RootLabel))
	err = disk.Assemble(ctx, &disk.Spec{
		Path: raw, Layout: layout,
		RootDir: state.Get("root").(string), RootUUID: ids.RootUUID, RootLabel: c.RootLabel,
		Ext4Features: c.base.Ext4Features, ESPVolumeID: ids.ESPVolumeID,
		ESPFiles: map[string]string{"EFI/BOOT/BOOTX64.EFI": efi},
		BootImg:  boot.BootImg, CoreImg: boot.CoreImg,
	}, &uiWriter{ui: ui})
	if err != nil {
		return halt(state, err)
	}
	ui.Say(fmt.Sprintf("Disk assembled in %s", time.Since(start).Round(time.Second)))
	state.Put("layout", layout)
	state.Put("raw", raw)
	return multistep.ActionContinue
}

func (s *stepAssemble) Cleanup(multistep.StateBag) {}

// stepConvert writes the requested formats into the output directory.
type stepConvert struct{}

func (s *stepConvert) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	ui.Say(fmt.Sprintf("Writing %v to %s", c.Formats, c.OutputDirectory))
	outs, err := convert.Convert(ctx, state.Get("raw").(string), c.OutputDirectory, c.ImageName, c.Formats)
	if err != nil {
		return halt(state, err)
	}
	state.Put("outputs", outs)
	return multistep.ActionContinue
}

func (s *stepConvert) Cleanup(multistep.StateBag) {}

// stepManifest writes SHA256SUMS and manifest.json.
type stepManifest struct{}

func (s *stepManifest) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	m := state.Get("mirrors").(mirror.Mirrors)
	ids := state.Get("ids").(bootable.IDs)
	outs := state.Get("outputs").([]convert.Output)
	start := state.Get("start").(time.Time)
	man := &manifest.Manifest{
		Base: c.base.Name, Suite: c.base.Suite, Mirror: m.Archive, SecurityMirror: m.Security,
		Commit: c.Commit, BuiltAt: time.Now().UTC().Truncate(time.Second),
		BaseCacheHit: state.Get("bootstrap").(*bootstrap.Result).CacheHit,
		Kernel:       state.Get("boot").(*bootable.Result).Kernel,
		Disk: manifest.Disk{SizeBytes: c.diskBytes, RootUUID: ids.RootUUID, RootLabel: c.RootLabel,
			ESPVolumeID: ids.ESPVolumeID, RootUsedBytes: treeSize(state.Get("root").(string))},
		Packages: state.Get("packages").([]manifest.Package),
	}
	if man.Commit == "" {
		man.Commit = manifest.GitCommit(".")
	}
	sums := map[string]string{}
	var files []string
	for _, o := range outs {
		st, err := os.Stat(o.Path)
		if err != nil {
			return halt(state, err)
		}
		alloc, err := convert.Allocated(o.Path)
		if err != nil {
			return halt(state, err)
		}
		sum, err := filesum.SHA256(o.Path)
		if err != nil {
			return halt(state, err)
		}
		name := filepath.Base(o.Path)
		sums[name] = sum
		files = append(files, o.Path)
		man.Files = append(man.Files, manifest.File{Name: name, Format: o.Format, SizeBytes: st.Size(), AllocatedBytes: alloc, SHA256: sum})
		ui.Say(fmt.Sprintf("%s: %d MiB allocated of %d MiB", name, alloc>>20, st.Size()>>20))
	}
	if err := convert.WriteSums(c.OutputDirectory, sums); err != nil {
		return halt(state, err)
	}
	man.BuildSeconds = time.Since(start).Round(time.Second).Seconds()
	mp := filepath.Join(c.OutputDirectory, "manifest.json")
	if err := man.Write(mp); err != nil {
		return halt(state, err)
	}
	state.Put("files", append(files, filepath.Join(c.OutputDirectory, "SHA256SUMS"), mp))
	return multistep.ActionContinue
}

func (s *stepManifest) Cleanup(multistep.StateBag) {}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// treeSize sums the sizes of the regular files below dir.
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
