// Package install puts the image recipe's directories, files and links in place on
// the machine being built. The provisioner stages the files and a manifest on the
// target and runs `appliance-agent install MANIFEST` there, so that the image build
// and the boot share one file writer (firstboot/machine): written only when content,
// mode or owner differ, atomically, every change reported.
package install

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// Manifest is the list of steps, applied in order.
type Manifest struct {
	Steps []Step `json:"steps"`
}

// Step is one of: a directory (Dir), a file copied from Source (File), a symbolic link
// to Target (Link), or a path that must not exist (Absent).
type Step struct {
	Dir    string      `json:"dir,omitempty"`
	File   string      `json:"file,omitempty"`
	Source string      `json:"source,omitempty"` // the staged content of File
	Link   string      `json:"link,omitempty"`
	Target string      `json:"target,omitempty"`
	Absent string      `json:"absent,omitempty"`
	Mode   fs.FileMode `json:"mode,omitempty"`
	Owner  string      `json:"owner,omitempty"` // "user:group"; "" is root
}

// Read loads a manifest file.
func Read(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var mf Manifest
	if err := json.Unmarshal(data, &mf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &mf, nil
}

// Apply makes the machine match the manifest and returns how many steps changed
// something; each change is reported on the machine's output.
func Apply(ctx context.Context, m *machine.Machine, mf *Manifest) (int, error) {
	changes := 0
	for i, s := range mf.Steps {
		changed, err := apply(ctx, m, s)
		if err != nil {
			return changes, fmt.Errorf("step %d: %w", i+1, err)
		}
		if changed {
			changes++
		}
	}
	return changes, nil
}

func apply(ctx context.Context, m *machine.Machine, s Step) (bool, error) {
	switch {
	case s.Dir != "":
		did, err := m.EnsureDir(machine.Dir{Path: s.Dir, Owner: s.Owner, Mode: s.Mode})
		return report(m, did, err)
	case s.File != "":
		data, err := os.ReadFile(s.Source)
		if err != nil {
			return false, fmt.Errorf("%s: %w", s.File, err)
		}
		return m.WriteFile(ctx, machine.File{Path: s.File, Data: data, Mode: s.Mode, Owner: s.Owner})
	case s.Link != "":
		did, err := m.EnsureLink(s.Target, s.Link)
		return report(m, did, err)
	case s.Absent != "":
		return m.Remove(s.Absent)
	}
	return false, fmt.Errorf("empty step")
}

func report(m *machine.Machine, did string, err error) (bool, error) {
	if did != "" {
		m.Out.Detail("%s", did)
	}
	return did != "", err
}
