package env

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Header is the first line every env.yml must have: it makes the file valid cloud-init
// user-data, and every consumer of the original appliance checked for it.
const Header = "#cloud-config"

// MaxSize bounds what Parse accepts; real files are 10–100 KB.
const MaxSize = 4 << 20

// Parse decodes env.yml from data; name is used in messages. It returns the env with
// defaults applied and validated, the warnings, and an ErrorList holding every error
// found (each with file:line:column).
func Parse(name string, data []byte) (*Env, []Warning, error) {
	if len(data) > MaxSize {
		return nil, nil, ErrorList{{Position{File: name}, fmt.Sprintf("file is %d bytes, more than the %d an env.yml may have", len(data), MaxSize)}}
	}
	if err := checkText(name, data); err != nil {
		return nil, nil, err
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if strings.TrimRight(string(first), " \t\r") != Header {
		return nil, nil, ErrorList{{Position{name, 1, 1}, fmt.Sprintf("the first line must be %q (cloud-init and the appliance expect it); add that line at the top of the file", Header)}}
	}
	root, err := parseDocument(name, data, false)
	if err != nil {
		return nil, nil, err
	}
	d := &decoder{file: name, nodes: map[string]*yaml.Node{}}
	e := &Env{Document: root, File: name}
	d.decodeTop(root.Content[0], e)
	if len(d.errs) == 0 {
		e.nodes = d.nodes
		applyDefaults(e)
		(&validator{env: e, decoder: d}).validate()
	}
	sort.SliceStable(d.warns, func(i, j int) bool { return d.warns[i].Position.before(d.warns[j].Position) })
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Position.before(d.errs[j].Position) })
		return nil, d.warns, d.errs
	}
	return e, d.warns, nil
}

// DecodeAt decodes one YAML document strictly into v, a pointer to a struct with yaml
// and env tags, by the rules of env.yml's appliance: section: unknown keys, wrong
// types and missing required keys are errors with file:line:column. It is for the
// other YAML files the tools read (extra.yml, agent.yml, …), so they report problems
// alike. Unlike env.yml, these files may use YAML aliases; the values expanded from
// aliases are limited to MaxAliasValues. An empty document leaves v unchanged.
//
// It also says where the values were: the position of each key's value by dotted key
// path ("appliance.sentry.dsn", "appliance.extra.files.0"), for every key in the
// file, also when decoding failed. Callers that check values further use it to point
// at them, and to tell a key set to nothing from an absent one.
func DecodeAt(name string, data []byte, v any) (map[string]Position, []Warning, error) {
	if err := checkText(name, data); err != nil {
		return nil, nil, err
	}
	root, err := parseDocument(name, data, true)
	if err != nil {
		var list ErrorList
		if errors.As(err, &list) && list[0].Msg == noDocument {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	d := &decoder{file: name, nodes: map[string]*yaml.Node{}}
	d.mapping(root.Content[0], reflect.ValueOf(v).Elem(), "")
	at := make(map[string]Position, len(d.nodes))
	for path, n := range d.nodes {
		at[path] = d.pos(n)
	}
	if len(d.errs) > 0 {
		return at, d.warns, d.errs
	}
	return at, d.warns, nil
}

const noDocument = "the file holds no YAML document"

// parseDocument parses exactly one YAML mapping document. Without aliases, any anchor
// or alias is an error.
func parseDocument(name string, data []byte, aliases bool) (*yaml.Node, error) {
	cr := &countingReader{r: bytes.NewReader(data)}
	dec := yaml.NewDecoder(cr)
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrorList{{Position{name, 1, 1}, noDocument}}
		}
		return nil, syntaxError(name, data, err, cr.n)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ErrorList{{Position{name, extra.Line, extra.Column}, "a second YAML document starts here; the file must be one document (remove the '---')"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, data, err, cr.n)
	}
	if len(root.Content) == 1 && isNull(root.Content[0]) {
		return nil, ErrorList{{Position{name, 1, 1}, noDocument}} // "~" or a lone "---"
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		n := &root
		if len(root.Content) == 1 {
			n = root.Content[0]
		}
		return nil, ErrorList{{Position{name, n.Line, n.Column}, "the file must be a mapping of keys, found " + kindName(n)}}
	}
	if errs := nodeErrors(name, &root, aliases, nil); len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Position.before(errs[j].Position) })
		return nil, errs
	}
	return &root, nil
}

// noAliases is why env.yml may not have anchors and aliases: nine levels of nine
// aliases fit in a few hundred bytes and expand to 9^9 values, and cloud-init and
// Flatten expand them without a schema to stop them.
const noAliases = "YAML anchors and aliases (&name, *name) are not allowed in env.yml: an alias can expand a small file into gigabytes; write the value out in full"

// MaxAliasValues bounds how many values DecodeAt expands from aliases.
const MaxAliasValues = 1 << 16

// nodeErrors finds keys defined twice in one mapping, which yaml.v3 reports only when
// decoding into Go values, not into nodes, and, unless aliases are allowed, every
// anchor and alias.
func nodeErrors(name string, n *yaml.Node, aliases bool, errs ErrorList) ErrorList {
	if !aliases && (n.Anchor != "" || n.Kind == yaml.AliasNode) {
		errs = append(errs, &Error{Position{name, n.Line, n.Column}, noAliases})
	}
	if n.Kind == yaml.MappingNode {
		first := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if prev, ok := first[k.Value]; ok && k.Kind == yaml.ScalarNode {
				errs = append(errs, &Error{Position{name, k.Line, k.Column}, fmt.Sprintf("invalid YAML: key %q is already defined at line %d", k.Value, prev.Line)})
			}
			first[k.Value] = k
		}
	}
	for _, c := range n.Content {
		errs = nodeErrors(name, c, aliases, errs)
	}
	return errs
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 error ("yaml: line 5: …") into a positioned Error; read
// is how many bytes of data the parser had read when it failed. The parser does not
// report columns, so the column is where that line's text starts.
func syntaxError(name string, data []byte, err error, read int) error {
	msg, line := yamlMessage(err)
	t := newLineTable(data)
	if l := t.problemLine(msg, read); l > 0 {
		line = l
	} else if line == 0 {
		line = t.index(read-1) + 1
	}
	col := 1
	if line >= 1 && line <= len(t.starts) {
		text := data[t.starts[line-1]:t.end(line-1)]
		col = len(text) - len(bytes.TrimLeft(text, " ")) + 1
	}
	return ErrorList{{Position{name, line, col}, "invalid YAML: " + msg}}
}

// yamlMessage splits a yaml.v3 error into its message and the line it names (0 if none).
func yamlMessage(err error) (string, int) {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return m[2], line
	}
	return strings.TrimPrefix(err.Error(), "yaml: "), 0
}

// countingReader counts what the YAML parser reads: it reads ahead at most a buffer
// (512 bytes) beyond where it is, so when it fails the problem is before the count.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// yamlFailure parses every document of data and returns the message of the error the
// parser stops with ("" if none) and how many bytes it had read.
func (t *lineTable) yamlFailure(data []byte) (string, int) {
	t.parsed += len(data)
	cr := &countingReader{r: bytes.NewReader(data)}
	dec := yaml.NewDecoder(cr)
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			return "", cr.n
		} else if err != nil {
			msg, _ := yamlMessage(err)
			return msg, cr.n
		}
	}
}

// lineTable indexes the lines of a file and nests them by indentation, to re-parse a
// few lines in the context of the keys above them.
type lineTable struct {
	data   []byte
	starts []int  // offset of each line
	parent []int  // the nearest line above with text and less indentation, or -1
	text   []bool // the line has more than blanks and a comment
	opener []bool // the line opens a block: "key:" or "- …"
	parsed int    // bytes given to the parser, the cost of the search
}

func newLineTable(data []byte) *lineTable {
	t := &lineTable{data: data}
	var stack []int // lines with text, their indentation increasing
	indent := func(i int) int {
		line := data[t.starts[i]:t.end(i)]
		return len(line) - len(bytes.TrimLeft(line, " "))
	}
	for off := 0; off < len(data); {
		t.starts = append(t.starts, off)
		if j := bytes.IndexByte(data[off:], '\n'); j >= 0 {
			off += j + 1
		} else {
			off = len(data)
		}
	}
	for i := range t.starts {
		rest := bytes.TrimLeft(data[t.starts[i]:t.end(i)], " \t\r\n")
		text := len(rest) > 0 && rest[0] != '#'
		t.text = append(t.text, text)
		code, _, _ := bytes.Cut(rest, []byte(" #"))
		code = bytes.TrimRight(code, " \t\r\n")
		t.opener = append(t.opener, text && (bytes.HasSuffix(code, []byte(":")) || bytes.HasPrefix(rest, []byte("- "))))
		t.parent = append(t.parent, -1)
		if !text {
			continue
		}
		for len(stack) > 0 && indent(stack[len(stack)-1]) >= indent(i) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			t.parent[i] = stack[len(stack)-1]
		}
		stack = append(stack, i)
	}
	return t
}

// end is the offset just after line i (0-based), its newline included.
func (t *lineTable) end(i int) int {
	if i+1 < len(t.starts) {
		return t.starts[i+1]
	}
	return len(t.data)
}

// index is the line (0-based) that holds byte off.
func (t *lineTable) index(off int) int {
	return max(sort.SearchInts(t.starts, off+1)-1, 0)
}

// input is the lines r to i of the file after ctx.
func (t *lineTable) input(ctx []byte, r, i int) []byte {
	return append(ctx[:len(ctx):len(ctx)], t.data[t.starts[r]:t.end(i)]...)
}

// maxFullSearch bounds the files whose every line may be a restart point.
const maxFullSearch = 256 << 10

// problemLine finds the line a syntax error is on (1-based), or 0. yaml.v3 names the
// line where the enclosing construct starts (line 1 for a bad indentation at line 4),
// so this looks for the fewest leading lines that fail with the same message: the
// problem is on the last of them. Parsing every leading part of the file would take
// time quadratic in its size; instead the search restarts the parser close to where it
// failed: at line r, after the lines r is nested in (its parent keys), for r going back
// from there by doubling steps. Where such a part fails with the same message at the
// same place, the problem is between r and the failure, found by bisection.
func (t *lineTable) problemLine(msg string, read int) int {
	if read <= 0 || len(t.starts) == 0 {
		return 0
	}
	hi := t.index(min(read, len(t.data)) - 1) // the last line the parser read
	found := 0
	for d, last := 0, -1; hi-d >= 0; d = max(1, 2*d) {
		r := hi - d
		for r > 0 && !t.text[r] {
			r--
		}
		if r == last {
			continue
		}
		last = r
		// The lines above r must open blocks and parse alone: else they could hold
		// the problem themselves.
		ctx, ok := t.context(r)
		if !ok {
			continue
		}
		if m, _ := t.yamlFailure(ctx); m != "" {
			continue
		}
		if m, n := t.yamlFailure(t.input(ctx, r, hi)); m == msg && n-len(ctx)+t.starts[r] >= read-2048 {
			// The lines left out between the context and r can matter too (a sibling
			// of a context line), so a line counts when two restarts agree on it.
			i := t.bisect(ctx, r, hi, msg) + 1
			if i == found {
				return i
			}
			found = i
		}
	}
	if found == 0 && read <= maxFullSearch {
		return t.bisect(nil, 0, hi, msg) + 1
	}
	return found
}

// context is the lines that line r is nested in, outermost first; false if one of
// them does not open a block.
func (t *lineTable) context(r int) ([]byte, bool) {
	var chain []int
	for p := t.parent[r]; p >= 0; p = t.parent[p] {
		if !t.opener[p] {
			return nil, false
		}
		chain = append(chain, p)
	}
	var ctx []byte
	for i := len(chain) - 1; i >= 0; i-- {
		ctx = append(ctx, t.data[t.starts[chain[i]]:t.end(chain[i])]...)
		if ctx[len(ctx)-1] != '\n' {
			ctx = append(ctx, '\n')
		}
	}
	return ctx, true
}

// bisect returns the first line i in [r, hi] for which lines r to i after ctx fail with
// msg, given that r to hi do.
func (t *lineTable) bisect(ctx []byte, r, hi int, msg string) int {
	lo := r - 1
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if m, _ := t.yamlFailure(t.input(ctx, r, mid)); m == msg {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// decoder fills the schema structs from YAML nodes, collecting every error instead of
// stopping at the first, and remembering where each value was.
type decoder struct {
	file  string
	errs  ErrorList
	warns []Warning
	nodes map[string]*yaml.Node
	// inAlias > 0 while decoding the values an alias stands for; expanded counts them,
	// outer and outerPath are the outermost alias, where a too large expansion is
	// reported.
	inAlias, expanded int
	outer             *yaml.Node
	outerPath         string
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{d.pos(n), fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(n *yaml.Node, format string, args ...any) {
	d.warns = append(d.warns, Warning{d.pos(n), fmt.Sprintf(format, args...)})
}

func (d *decoder) pos(n *yaml.Node) Position {
	if n == nil {
		return Position{File: d.file}
	}
	return Position{d.file, n.Line, n.Column}
}

// decodeTop decodes the top level: our keys strictly, cloud-init's keys untouched.
func (d *decoder) decodeTop(n *yaml.Node, e *Env) {
	fields := structFields(reflect.TypeOf(*e))
	var ours []string
	for name := range fields {
		ours = append(ours, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			// Any other key is cloud-init's; a near miss of ours is probably a typo.
			if s := closest(k.Value, ours); s != "" {
				d.warnf(k, "top-level key %q is passed to cloud-init as is; did you mean %q?", k.Value, s)
			}
			continue
		}
		seen[k.Value] = true
		d.field(reflect.ValueOf(e).Elem().FieldByIndex(f.index), f, k, v, k.Value)
	}
	d.required(n, fields, seen, "")
}

type fieldInfo struct {
	index []int
	tag   string // the env:"…" tag
}

func structFields(t reflect.Type) map[string]fieldInfo {
	m := map[string]fieldInfo{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = fieldInfo{f.Index, f.Tag.Get("env")}
	}
	return m
}

// field decodes one key's value and handles the key's env tag.
func (d *decoder) field(v reflect.Value, f fieldInfo, k, val *yaml.Node, path string) {
	switch tag, arg, _ := strings.Cut(f.tag, "="); tag {
	case "dead":
		d.warnf(k, "%s is not used by the appliance (the original ignored it too); it can be removed", path)
	case "ignored":
		d.warnf(k, "%s is accepted for compatibility with the original appliance, but this appliance does not act on it", path)
	case "deprecated":
		d.warnf(k, "%s is deprecated, use %s", path, arg)
	case "image":
		d.warnf(k, "%s is not used: the original updated itself from it, this appliance is updated with a new disk image (the data disks are carried over)", path)
	case "unpackaged":
		if val.Kind == yaml.ScalarNode && strings.EqualFold(val.Value, "true") {
			d.warnf(k, "%s: this appliance does not run %s (Debian does not package it, and an unpatched image is worse than none); the metrics are in Prometheus (appliance.metric.server), which an admin reaches through an SSH tunnel: ssh -L 9090:127.0.0.1:9090 root@<domain>, then http://127.0.0.1:9090/", path, arg)
		}
	}
	d.value(val, v, path)
}

// required reports required keys that are absent from mapping n at path.
func (d *decoder) required(n *yaml.Node, fields map[string]fieldInfo, seen map[string]bool, path string) {
	var missing []string
	for name, f := range fields {
		if f.tag == "required" && !seen[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		d.errorf(n, "missing required key %s", join(path, name))
	}
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	durationType    = reflect.TypeOf(time.Duration(0))
)

// value decodes node n into v; path is the dotted key path for messages.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		if d.inAlias == 0 {
			d.outer, d.outerPath = n, path
		}
		d.inAlias++
		defer func() { d.inAlias-- }()
		n = n.Alias
	}
	if d.inAlias > 0 {
		if d.expanded++; d.expanded == MaxAliasValues {
			d.errorf(d.outer, "%s: the aliases expand to more than %d values; write the values out instead", d.outerPath, MaxAliasValues)
		}
		if d.expanded >= MaxAliasValues {
			return
		}
	}
	d.nodes[path] = n
	if v.Type() == reflect.TypeOf(yaml.Node{}) {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if isNull(n) {
		return // an empty key (only comments below it) keeps its zero value
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, "%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return
	}
	if v.Type() == durationType {
		dur, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil || dur <= 0 {
			d.errorf(n, "%s must be a positive duration such as 5s or 2m", path)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s must be a list, found %s", path, kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(item, s.Index(i), join(path, strconv.Itoa(i)))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping, found %s", path, kindName(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			e := reflect.New(v.Type().Elem()).Elem()
			d.value(n.Content[i+1], e, join(path, k.Value))
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" {
			d.errorf(n, "%s must be a string, found %s", path, kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, "%s must be true or false, found %s", path, kindName(n))
			return
		}
		v.SetBool(b)
	default:
		panic("env: schema field of unsupported kind " + v.Kind().String())
	}
}

// mapping decodes a YAML mapping into struct v, strictly.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, found %s", path, kindName(n))
		return
	}
	fields := structFields(v.Type())
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			msg := "unknown key " + join(path, k.Value)
			if s := closest(k.Value, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				sort.Strings(names)
				msg += " (known keys: " + strings.Join(names, ", ") + ")"
			}
			d.errorf(k, "%s", msg)
			continue
		}
		seen[k.Value] = true
		d.field(v.FieldByIndex(f.index), f, k, val, join(path, k.Value))
	}
	d.required(n, fields, seen, path)
}

// join appends key to a dotted key path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kindName describes a node for "must be X, found Y" messages, without its value
// (values may be secrets).
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		case "!!null":
			return "nothing"
		}
		return "a string"
	}
	return "no document"
}

// closest returns the candidate nearest to s by edit distance, if it is near enough
// to be a plausible typo.
func closest(s string, candidates []string) string {
	best, bestDist := "", len(s)/3+2
	for _, c := range candidates {
		if dist := levenshtein(strings.ToLower(s), c); dist < bestDist || dist == bestDist && best != "" && c < best {
			best, bestDist = c, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
