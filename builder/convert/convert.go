// Package convert turns the raw disk image into the requested formats with qemu-img
// and writes SHA256SUMS for the outputs.
package convert

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// format is how qemu-img writes one output format.
type format struct {
	driver string
	opts   []string
}

// Formats are the formats the builder can write.
var formats = map[string]format{
	"raw":   {driver: "raw"},
	"qcow2": {driver: "qcow2"},
	// streamOptimized is what OVA/vSphere imports and VirtualBox read.
	"vmdk": {driver: "vmdk", opts: []string{"-o", "subformat=streamOptimized"}},
	"vhdx": {driver: "vhdx", opts: []string{"-o", "subformat=dynamic"}},
}

// Names lists the supported formats, sorted.
func Names() []string {
	names := make([]string, 0, len(formats))
	for n := range formats {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check rejects unknown or repeated formats.
func Check(names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if _, ok := formats[n]; !ok {
			return fmt.Errorf("unknown format %q (supported: %s)", n, strings.Join(Names(), ", "))
		}
		if seen[n] {
			return fmt.Errorf("format %q given twice", n)
		}
		seen[n] = true
	}
	return nil
}

// Output is one written file.
type Output struct {
	Path, Format string
}

// Convert writes raw as each format into dir as name.<format>. The raw image itself
// is moved there when "raw" is asked for and removed otherwise.
func Convert(ctx context.Context, raw, dir, name string, names []string) ([]Output, error) {
	var outs []Output
	wantRaw := false
	for _, n := range names {
		if n == "raw" {
			wantRaw = true
			continue
		}
		f := formats[n]
		dst := filepath.Join(dir, name+"."+n)
		argv := append([]string{"convert", "-f", "raw", "-O", f.driver}, f.opts...)
		cmd := exec.CommandContext(ctx, "qemu-img", append(argv, raw, dst)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("qemu-img convert to %s: %w: %s", n, err, strings.TrimSpace(string(out)))
		}
		outs = append(outs, Output{Path: dst, Format: n})
	}
	if wantRaw {
		dst := filepath.Join(dir, name+".raw")
		if err := os.Rename(raw, dst); err != nil {
			return nil, err
		}
		outs = append([]Output{{Path: dst, Format: "raw"}}, outs...)
	} else if err := os.Remove(raw); err != nil {
		return nil, err
	}
	return outs, nil
}

// Allocated is the disk space a (sparse) file really uses.
func Allocated(path string) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}

// WriteSums writes dir/SHA256SUMS in sha256sum's format ("sum  name") for sums,
// which maps base names to checksums.
func WriteSums(dir string, sums map[string]string) error {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}
