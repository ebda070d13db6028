package generate

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"gopkg.in/yaml.v3"
)

// extra is what an extra.yml may add to a new env.yml: the keys the original
// env-create merged from `--extra`. Unset fields are left out of the output.
type extra struct {
	sshKeys      []string
	sentryDSN    string
	metric       metric
	applianceGit git
	files        []extraFile
	update       *update
	ecsGit       git
}

type metric struct{ exporter, server, gui, pghero *bool }

type git struct{ source, branch, commitid string }

type extraFile struct{ path, contents, owner, permissions string }

type update struct {
	oncalendar string
	automatic  bool
}

// field is one known key of a mapping in extra.yml and what to do with its value.
type field struct {
	key    string
	decode func(n *yaml.Node, path string)
}

// extraDecoder walks the extra.yml node tree, collecting every error with its
// position. Messages name keys, never values: extra.yml may hold secrets (the
// sentry DSN).
type extraDecoder struct {
	file string
	errs env.ErrorList
}

func (d *extraDecoder) errorf(n *yaml.Node, path, msg string) {
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, &env.Error{Position: env.Position{File: d.file, Line: n.Line, Col: n.Column}, Msg: msg})
}

// yamlLine reads the line out of a yaml.v3 syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError positions a yaml.v3 syntax error. The parser reports no column, so
// the column is where the text of that line starts, as package env does.
func syntaxError(file string, data []byte, err error) error {
	pos := env.Position{File: file}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		msg = m[2]
		if pos.Line = problemLine(data, msg); pos.Line == 0 {
			pos.Line, _ = strconv.Atoi(m[1])
		}
		if lines := strings.Split(string(data), "\n"); pos.Line >= 1 && pos.Line <= len(lines) {
			l := lines[pos.Line-1]
			pos.Col = len(l) - len(strings.TrimLeft(l, " ")) + 1
		}
	}
	return env.ErrorList{{Position: pos, Msg: "invalid YAML: " + msg}}
}

// problemLine finds the line a syntax error is on, or 0. yaml.v3 names the line
// where the enclosing construct starts (line 1 for a bad indentation at line 4), so
// this looks for the fewest leading lines that fail with the same message: the
// problem is on the last of them. Only run on failure, and extra files are small.
func problemLine(data []byte, msg string) int {
	var prefix []byte
	for i, l := range strings.SplitAfter(string(data), "\n") {
		prefix = append(prefix, l...)
		var n yaml.Node
		if err := yaml.Unmarshal(prefix, &n); err != nil {
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil && m[2] == msg {
				return i + 1
			}
		}
	}
	return 0
}

// parseExtra reads and checks an extra.yml; data may be nil.
func parseExtra(file string, data []byte) (*extra, error) {
	x := &extra{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty file
			return x, nil
		}
		return nil, syntaxError(file, data, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, env.ErrorList{{Position: env.Position{File: file, Line: more.Line, Col: more.Column}, Msg: "extra file must hold a single YAML document"}}
	}
	d := &extraDecoder{file: file}
	if len(doc.Content) == 1 {
		d.mapping(doc.Content[0], "", []field{
			{"ssh_authorized_keys", func(n *yaml.Node, p string) { x.sshKeys = d.sshKeys(n, p) }},
			{"appliance", func(n *yaml.Node, p string) { d.appliance(n, p, x) }},
			{"ecs", func(n *yaml.Node, p string) {
				d.mapping(n, p, []field{{"git", func(n *yaml.Node, p string) { x.ecsGit = d.git(n, p) }}})
			}},
		})
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return x, nil
}

func (d *extraDecoder) appliance(n *yaml.Node, path string, x *extra) {
	d.mapping(n, path, []field{
		{"sentry", func(n *yaml.Node, p string) {
			seen := false
			d.mapping(n, p, []field{{"dsn", func(n *yaml.Node, p string) { seen, x.sentryDSN = true, d.dsn(n, p) }}})
			if !seen {
				d.errorf(n, p, "dsn is missing")
			}
		}},
		{"metric", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"exporter", func(n *yaml.Node, p string) { x.metric.exporter = d.boolean(n, p) }},
				{"server", func(n *yaml.Node, p string) { x.metric.server = d.boolean(n, p) }},
				{"gui", func(n *yaml.Node, p string) { x.metric.gui = d.boolean(n, p) }},
				{"pghero", func(n *yaml.Node, p string) { x.metric.pghero = d.boolean(n, p) }},
			})
		}},
		{"git", func(n *yaml.Node, p string) { x.applianceGit = d.git(n, p) }},
		{"extra", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{"files", func(n *yaml.Node, p string) { x.files = d.files(n, p) }}})
		}},
		{"update", func(n *yaml.Node, p string) {
			// As in the original template, a given update section always
			// states automatic, true unless set.
			u := &update{automatic: true}
			d.mapping(n, p, []field{
				{"oncalendar", func(n *yaml.Node, p string) {
					if u.oncalendar = d.line(n, p); u.oncalendar != "" {
						if err := env.CheckCalendar(u.oncalendar); err != nil {
							d.errorf(n, p, err.Error())
						}
					}
				}},
				{"automatic", func(n *yaml.Node, p string) {
					if b := d.boolean(n, p); b != nil {
						u.automatic = *b
					}
				}},
			})
			x.update = u
		}},
	})
}

// mapping decodes a mapping whose keys must be among fields. A null value (a key
// with nothing after it) counts as an empty mapping.
func (d *extraDecoder) mapping(n *yaml.Node, path string, fields []field) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := lookup(fields, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode || f == nil:
			d.errorf(k, path, "unknown key "+strconv.Quote(k.Value)+"; known: "+known(fields))
		case seen[k.Value]:
			d.errorf(k, path, "duplicate key "+strconv.Quote(k.Value))
		default:
			seen[k.Value] = true
			f.decode(v, join(path, k.Value))
		}
	}
}

func lookup(fields []field, key string) *field {
	for i := range fields {
		if fields[i].key == key {
			return &fields[i]
		}
	}
	return nil
}

func known(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// str reads any non-null scalar as its source text (so `branch: 2.0` stays "2.0").
func (d *extraDecoder) str(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
		d.errorf(n, path, "must be a non-empty string")
		return "", false
	}
	return n.Value, true
}

// line is str for values that must fit on one line.
func (d *extraDecoder) line(n *yaml.Node, path string) string {
	s, ok := d.str(n, path)
	if ok && strings.ContainsAny(s, "\r\n") {
		d.errorf(n, path, "must be a single line")
		return ""
	}
	return s
}

func (d *extraDecoder) boolean(n *yaml.Node, path string) *bool {
	n = resolve(n)
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.errorf(n, path, "must be true or false")
		return nil
	}
	return &b
}

func (d *extraDecoder) git(n *yaml.Node, path string) git {
	var g git
	d.mapping(n, path, []field{
		{"source", func(n *yaml.Node, p string) { g.source = d.line(n, p) }},
		{"branch", func(n *yaml.Node, p string) { g.branch = d.line(n, p) }},
		{"commitid", func(n *yaml.Node, p string) { g.commitid = d.line(n, p) }},
	})
	return g
}

// dsn accepts a sentry DSN that can also be written into a single-quoted Python
// string in ecs.settings.
func (d *extraDecoder) dsn(n *yaml.Node, path string) string {
	s := d.line(n, path)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		d.errorf(n, path, "must be an http or https URL")
		return ""
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == '\'' || c == '\\' {
			d.errorf(n, path, "must consist of printable ASCII without quotes or backslashes")
			return ""
		}
	}
	return s
}

func (d *extraDecoder) sshKeys(n *yaml.Node, path string) []string {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list of public keys")
		return nil
	}
	keys := make([]string, 0, len(n.Content))
	for i, k := range n.Content {
		if s := d.line(k, path+"["+strconv.Itoa(i)+"]"); s != "" {
			keys = append(keys, s)
		}
	}
	return keys
}

var (
	octalMode = regexp.MustCompile(`^0?[0-7]{3}$`)
	// ownerPattern is the user[:group] form package env accepts: names as
	// useradd(8) allows them, or numeric ids.
	ownerPattern = regexp.MustCompile(`^[a-z_][a-z0-9_.-]*[$]?(:[a-z_][a-z0-9_.-]*[$]?)?$|^[0-9]+(:[0-9]+)?$`)
)

func (d *extraDecoder) files(n *yaml.Node, path string) []extraFile {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list of files")
		return nil
	}
	var files []extraFile
	for i, item := range n.Content {
		p := path + "[" + strconv.Itoa(i) + "]"
		var f extraFile
		var content, contents *string
		hasPath := false
		d.mapping(item, p, []field{
			{"path", func(n *yaml.Node, p string) {
				hasPath = true
				if f.path = d.line(n, p); f.path != "" && !strings.HasPrefix(f.path, "/") {
					d.errorf(n, p, "must be an absolute path")
				}
			}},
			{"contents", func(n *yaml.Node, p string) {
				s := d.text(n, p)
				contents = &s
			}},
			// The original's form: one line, with the two characters `\n`
			// between lines.
			{"content", func(n *yaml.Node, p string) {
				s := strings.ReplaceAll(d.text(n, p), `\n`, "\n")
				if !strings.HasSuffix(s, "\n") {
					s += "\n"
				}
				content = &s
			}},
			{"owner", func(n *yaml.Node, p string) {
				if f.owner = d.line(n, p); f.owner != "" && !ownerPattern.MatchString(f.owner) {
					d.errorf(n, p, "must be user or user:group")
				}
			}},
			{"permissions", func(n *yaml.Node, p string) {
				// The source text, so that an unquoted 0600 keeps its digits.
				if f.permissions = d.line(n, p); f.permissions != "" && !octalMode.MatchString(f.permissions) {
					d.errorf(n, p, `must be an octal mode such as "0600"`)
				}
			}},
		})
		switch {
		case content != nil && contents != nil:
			d.errorf(item, p, "give either contents or content, not both")
		case contents != nil:
			f.contents = *contents
		case content != nil:
			f.contents = *content
		}
		if !hasPath && resolve(item).Kind == yaml.MappingNode {
			d.errorf(item, p, "path is missing")
		}
		files = append(files, f)
	}
	return files
}

// text reads a file's content; empty is allowed.
func (d *extraDecoder) text(n *yaml.Node, path string) string {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "must be a string")
		return ""
	}
	return n.Value
}
