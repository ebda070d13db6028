package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// errNotFound is blkid's "nothing found" (exit status 2).
var errNotFound = errors.New("nothing found")

// fsInfo is a filesystem (or swap area) blkid found.
type fsInfo struct {
	Device string
	Type   string
	Label  string
}

// probe returns the labelled filesystems by label.
func (e *ensurer) probe(ctx context.Context) (map[string][]fsInfo, error) {
	var all []fsInfo
	if e.devices == nil {
		// -c /dev/null: probe afresh rather than trust blkid's cache.
		out, err := run(ctx, "blkid", "-c", "/dev/null", "-o", "export")
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, err
		}
		all = parseBlkid(out)
	} else {
		for _, d := range e.devices {
			parts, err := partitions(d)
			if err != nil {
				return nil, err
			}
			for _, dev := range append([]string{d}, sortedValues(parts)...) {
				fs, err := probeDevice(ctx, dev)
				if err != nil {
					return nil, err
				}
				if fs.Type != "" {
					all = append(all, fs)
				}
			}
		}
	}
	found := map[string][]fsInfo{}
	for _, fs := range all {
		if fs.Label != "" {
			found[fs.Label] = append(found[fs.Label], fs)
		}
	}
	return found, nil
}

// probeDevice asks blkid, bypassing its cache, what filesystem is on dev; a Type of ""
// means none (a partition table alone is no filesystem).
func probeDevice(ctx context.Context, dev string) (fsInfo, error) {
	out, err := run(ctx, "blkid", "-p", "-o", "export", dev)
	if errors.Is(err, errNotFound) {
		return fsInfo{Device: dev}, nil
	}
	if err != nil {
		return fsInfo{}, err
	}
	l := parseBlkid(out)
	if len(l) == 0 {
		return fsInfo{Device: dev}, nil
	}
	l[0].Device = dev
	return l[0], nil
}

// parseBlkid reads `blkid -o export`: KEY=value lines, one blank-line-separated block
// per device.
func parseBlkid(out string) []fsInfo {
	var l []fsInfo
	var cur fsInfo
	flush := func() {
		if cur.Device != "" {
			l = append(l, cur)
		}
		cur = fsInfo{}
	}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			flush()
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		v = unescapeExport(v)
		switch k {
		case "DEVNAME":
			cur.Device = v
		case "TYPE":
			cur.Type = v
		case "LABEL":
			cur.Label = v
		}
	}
	flush()
	return l
}

// unescapeExport undoes the backslashes `blkid -o export` puts before shell specials.
func unescapeExport(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// partitions lists the kernel's partitions of disk from sysfs: number → device node.
func partitions(disk string) (map[int]string, error) {
	name := filepath.Base(disk)
	dir := filepath.Join("/sys/class/block", name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing the partitions of %s: %w", disk, err)
	}
	parts := map[int]string{}
	for _, ent := range entries {
		if !strings.HasPrefix(ent.Name(), name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ent.Name(), "partition"))
		if err != nil {
			continue // not a partition (holders, queue, …)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: partition number %q", ent.Name(), b)
		}
		parts[n] = "/dev/" + ent.Name()
	}
	return parts, nil
}

func sortedValues(m map[int]string) []string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	vals := make([]string, 0, len(m))
	for _, k := range keys {
		vals = append(vals, m[k])
	}
	return vals
}

// signatures lists what wipefs sees on dev (partition tables, filesystems, RAID, LUKS,
// …), as "type at offset" strings; it writes nothing.
func signatures(ctx context.Context, dev string) ([]string, error) {
	out, err := run(ctx, "wipefs", "--no-act", "--json", dev)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	var doc struct {
		Signatures []struct {
			Offset string  `json:"offset"`
			Type   string  `json:"type"`
			Label  *string `json:"label"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("wipefs --json %s: %w", dev, err)
	}
	var l []string
	for _, s := range doc.Signatures {
		d := s.Type + " at " + s.Offset
		if s.Label != nil && *s.Label != "" {
			d += " labelled " + *s.Label
		}
		l = append(l, d)
	}
	return l, nil
}

// zeroEnds reports whether the first and last MiB of f (size bytes) are all zero, which
// catches content no signature names.
func zeroEnds(f io.ReaderAt, size int64) (bool, error) {
	buf := make([]byte, min(mib, size))
	zero := make([]byte, len(buf))
	for _, off := range []int64{0, size - int64(len(buf))} {
		if _, err := f.ReadAt(buf, off); err != nil {
			return false, err
		}
		if !bytes.Equal(buf, zero) {
			return false, nil
		}
	}
	return true, nil
}

// run runs a tool and returns its standard output; a failure names the command and
// carries its standard error. Exit status 2 of blkid (nothing found) is errNotFound.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	var exit *exec.ExitError
	if name == "blkid" && errors.As(err, &exit) && exit.ExitCode() == 2 {
		return stdout.String(), errNotFound
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		msg = strings.TrimSpace(stdout.String())
	}
	if msg != "" {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
}
