package storage

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// fstab makes <root>/etc/fstab mount the labelled filesystems by label (and use the
// swap areas setup made), and drops our entries for volumes now ignored. Other lines
// are kept as they are; the file is replaced atomically.
func (e *ensurer) fstab(ctx context.Context, fss map[string]fsInfo) error {
	want := map[string][]string{} // key → fields
	var drop []string             // keys of entries to remove
	for _, v := range e.volumes {
		key := "mount " + v.mount
		if v.ignore {
			drop = append(drop, key)
			continue
		}
		want[key] = []string{"LABEL=" + v.label, v.mount, "ext4", "defaults,nofail", "0", "2"}
	}
	for label, fs := range fss {
		if fs.Type == "swap" {
			want["swap LABEL="+label] = []string{"LABEL=" + label, "none", "swap", "sw,nofail", "0", "0"}
		}
	}

	path := e.path("/etc/fstab")
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var out []string
	seen := map[string]bool{}
	var changes []string
	for line := range strings.Lines(string(old)) {
		line = strings.TrimRight(line, "\n")
		f := strings.Fields(line)
		key := fstabKey(f)
		switch {
		case key == "":
		case slices.Contains(drop, key) && f[0] == "LABEL="+labelOf(e.volumes, key):
			changes = append(changes, "removed from /etc/fstab: "+line)
			continue
		case want[key] != nil && !seen[key]:
			seen[key] = true
			if !slices.Equal(f[:min(len(f), 6)], want[key]) {
				nl := strings.Join(want[key], " ")
				changes = append(changes, fmt.Sprintf("replaced in /etc/fstab: %q with %q", line, nl))
				line = nl
			}
		case want[key] != nil:
			// A second entry for the same mount point would mount over ours.
			changes = append(changes, "removed from /etc/fstab: "+line)
			continue
		}
		out = append(out, line)
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !seen[k] {
			nl := strings.Join(want[k], " ")
			out = append(out, nl)
			changes = append(changes, "added to /etc/fstab: "+nl)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm() // the admin's, if different
	}
	if _, err := e.m.WriteFile(ctx, machine.File{Path: "/etc/fstab", Data: []byte(strings.Join(out, "\n") + "\n"), Mode: mode}); err != nil {
		return err
	}
	e.actions = append(e.actions, changes...)
	return nil
}

// fstabKey identifies an fstab entry: by mount point, or for swap by its device.
func fstabKey(f []string) string {
	if len(f) < 3 || strings.HasPrefix(f[0], "#") {
		return ""
	}
	if f[2] == "swap" {
		return "swap " + f[0]
	}
	return "mount " + f[1]
}

func labelOf(vs []volume, key string) string {
	for _, v := range vs {
		if "mount "+v.mount == key {
			return v.label
		}
	}
	return ""
}
