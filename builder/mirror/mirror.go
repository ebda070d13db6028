// Package mirror finds the package archive a base is bootstrapped from: the mirror the
// build host's apt already uses for the same distribution (so builds behind a proxy or
// on an air-gapped mirror need no settings), or the one the user names. No archive host
// name is ever built in.
package mirror

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ethikkom/ecs-appliance/images"
)

// Source is one apt source entry (one line of a .list file or one deb822 stanza).
type Source struct {
	File       string
	URIs       []string
	Suites     []string
	Components []string
}

// Mirrors are the archives a base is bootstrapped from and its image points at.
type Mirrors struct {
	// Archive serves the suite and its updates suites.
	Archive string
	// Security serves the security suite; empty when none is known (the image then
	// gets no security suite and the builder warns).
	Security string
}

// codenames tells the distribution of a host source by its suite, since URIs are any
// host. Debian's bases and Ubuntu's bases are added from the base table.
var codenames = map[string]string{
	"buster": images.Debian, "bullseye": images.Debian, "bookworm": images.Debian,
	"trixie": images.Debian, "forky": images.Debian, "sid": images.Debian,
	"stable": images.Debian, "oldstable": images.Debian, "testing": images.Debian, "unstable": images.Debian,
	"xenial": images.Ubuntu, "bionic": images.Ubuntu, "focal": images.Ubuntu, "jammy": images.Ubuntu,
	"noble": images.Ubuntu, "oracular": images.Ubuntu, "plucky": images.Ubuntu, "questing": images.Ubuntu,
}

// ReadHost reads the apt sources under root (normally "/"): etc/apt/sources.list and
// the *.list and *.sources files in etc/apt/sources.list.d. Other files there (such as
// *.disabled) are ignored, as apt ignores them.
func ReadHost(root string) ([]Source, error) {
	var parts []string
	for _, pat := range []string{"*.list", "*.sources"} {
		m, err := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d", pat))
		if err != nil {
			return nil, err
		}
		parts = append(parts, m...)
	}
	sort.Strings(parts) // apt's order: sources.list, then the parts by name
	var files []string
	if one := filepath.Join(root, "etc/apt/sources.list"); fileExists(one) {
		files = append(files, one)
	}
	files = append(files, parts...)
	var all []Source
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var srcs []Source
		if strings.HasSuffix(f, ".sources") {
			srcs, err = ParseDeb822(string(data))
		} else {
			srcs, err = ParseOneLine(string(data))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for i := range srcs {
			srcs[i].File = f
		}
		all = append(all, srcs...)
	}
	return all, nil
}

// ParseOneLine parses the classic "deb [options] uri suite component..." format.
// deb-src lines are skipped: only binary archives matter here.
func ParseOneLine(text string) ([]Source, error) {
	var out []Source
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "deb-src" {
			continue
		}
		if f[0] != "deb" {
			return nil, fmt.Errorf("line %d: unknown type %q", n, f[0])
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			// Options may contain spaces: skip to the closing bracket.
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				return nil, fmt.Errorf("line %d: unterminated [options]", n)
			}
			f = f[1:]
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: want uri and suite", n)
		}
		out = append(out, Source{URIs: f[:1], Suites: f[1:2], Components: f[2:]})
	}
	return out, sc.Err()
}

// ParseDeb822 parses the deb822 ".sources" format: stanzas of "Field: value" lines
// separated by blank lines; continuation lines start with white space.
func ParseDeb822(text string) ([]Source, error) {
	var out []Source
	fields := map[string]string{}
	last := ""
	flush := func() error {
		defer func() { fields = map[string]string{}; last = "" }()
		if len(fields) == 0 {
			return nil
		}
		if strings.EqualFold(fields["enabled"], "no") {
			return nil
		}
		types := strings.Fields(fields["types"])
		if !slices.Contains(types, "deb") {
			return nil
		}
		s := Source{URIs: strings.Fields(fields["uris"]), Suites: strings.Fields(fields["suites"]), Components: strings.Fields(fields["components"])}
		if len(s.URIs) == 0 || len(s.Suites) == 0 {
			return fmt.Errorf("stanza without URIs or Suites")
		}
		out = append(out, s)
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			if err := flush(); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation without a field", n)
			}
			fields[last] += " " + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: want \"Field: value\"", n)
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, sc.Err()
}

// Find picks the mirrors for base from the host's sources. archive and security
// override what the host lists; archive is required when the host lists nothing for
// the base's distribution (e.g. Ubuntu on a Debian host).
func Find(sources []Source, base *images.Base, archive, security string) (Mirrors, error) {
	m := Mirrors{Archive: archive, Security: security}
	for _, s := range sources {
		for _, suite := range s.Suites {
			name, pocket, _ := strings.Cut(suite, "-")
			if distributionOf(name) != base.Distribution {
				continue
			}
			isSecurity := pocket == "security" || strings.HasSuffix(suite, "/updates")
			if isSecurity && m.Security == "" && base.Security == images.SecurityFromArchive {
				m.Security = s.URIs[0]
			}
			if !isSecurity && m.Archive == "" {
				m.Archive = s.URIs[0]
			}
		}
	}
	if m.Archive == "" {
		return m, fmt.Errorf("the build host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d) list no %s archive for base %s: set the mirror variable to a %s mirror URL",
			base.Distribution, base.Name, base.Distribution)
	}
	m.Archive = strings.TrimSuffix(m.Archive, "/")
	m.Security = strings.TrimSuffix(m.Security, "/")
	if base.Security == images.SecurityFromMirror && m.Security == "" {
		m.Security = m.Archive
	}
	return m, nil
}

func distributionOf(codename string) string {
	codename, _, _ = strings.Cut(codename, "/")
	return codenames[codename]
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
