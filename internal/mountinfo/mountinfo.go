// Package mountinfo reads the kernel's table of this process's mounts
// (/proc/self/mountinfo), for code that must know what is mounted where: the image
// builder's chroot cleanup and the agent's storage setup.
package mountinfo

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of the table.
type Mount struct {
	Major, Minor uint32 // the mounted device
	Point        string // the mount point, unescaped
}

// Read returns the mounts in the kernel's order: a later mount of a point hides
// the earlier ones.
func Read() ([]Mount, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []Mount
	for line := range strings.Lines(string(data)) {
		// id parent major:minor root mountpoint options …
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/self/mountinfo: bad device %q", f[2])
		}
		out = append(out, Mount{uint32(ma), uint32(mi), Unescape(f[4])})
	}
	return out, nil
}

// Unescape undoes the octal escapes (\040 for a space, \134 for a backslash) of
// mountinfo's path fields.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
