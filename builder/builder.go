// Package builder is the Packer builder "ecs-image": it bootstraps a Debian or Ubuntu
// root filesystem on the build host (no hypervisor, no cloud account), lets Packer's
// provisioners run in it through a chroot communicator, makes it bootable on BIOS and
// UEFI and writes disk images, SHA256SUMS and manifest.json.
//
// The work is split into packages: mirror (which archive), bootstrap (base root,
// cached), chroot (mounts + communicator), bootable (initramfs, GRUB files, fstab,
// root growth), grub (configuration and BIOS boot code), disk (GPT and filesystems),
// convert (formats, checksums) and manifest.
package builder

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// BuilderID identifies the builder's artifacts.
const BuilderID = "ethikkom.ecs-image"

// Builder implements packer.Builder.
type Builder struct {
	config Config
	runner multistep.Runner
}

var _ packersdk.Builder = (*Builder)(nil)

// ConfigSpec is the HCL2 schema of Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes and validates the configuration.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	warnings, err := b.config.Prepare(raws...)
	if err != nil {
		return nil, warnings, err
	}
	return nil, warnings, nil
}

// Run builds the image. Every step undoes its side effects on failure or
// cancellation: nothing stays mounted, the work directory is removed.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	state := new(multistep.BasicStateBag)
	state.Put("config", &b.config)
	state.Put("hook", hook)
	state.Put("ui", ui)

	steps := []multistep.Step{
		&stepCheckHost{},
		&commonsteps.StepOutputDir{Force: b.config.PackerForce, Path: b.config.OutputDirectory},
		&stepWorkDir{},
		&stepBootstrap{},
		&stepChroot{},
		&commonsteps.StepProvision{},
		&stepBootable{},
		&stepAssemble{},
		&stepConvert{},
		&stepManifest{},
	}
	b.runner = commonsteps.NewRunner(steps, b.config.PackerConfig, ui)
	b.runner.Run(ctx, state)

	if err, ok := state.GetOk("error"); ok {
		return nil, err.(error)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok {
		return nil, fmt.Errorf("build was cancelled")
	}
	if _, ok := state.GetOk(multistep.StateHalted); ok {
		return nil, fmt.Errorf("build was halted")
	}
	files, _ := state.Get("files").([]string)
	return &Artifact{dir: b.config.OutputDirectory, files: files, name: b.config.ImageName}, nil
}

// Artifact is the output directory's files.
type Artifact struct {
	dir   string
	name  string
	files []string
}

func (a *Artifact) BuilderId() string        { return BuilderID }
func (a *Artifact) Files() []string          { return a.files }
func (a *Artifact) Id() string               { return a.name }
func (a *Artifact) State(string) interface{} { return nil }
func (a *Artifact) String() string {
	return fmt.Sprintf("disk images in %s: %s", a.dir, strings.Join(baseNames(a.files), ", "))
}

// Destroy removes the output files.
func (a *Artifact) Destroy() error {
	for _, f := range a.files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// uiWriter sends a tool's output to the Packer UI line by line.
type uiWriter struct {
	ui  packersdk.Ui
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *uiWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil { // incomplete line: keep it for the next write
			w.buf.Reset()
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.ui.Say(strings.TrimRight(line, "\r\n"))
	}
}
