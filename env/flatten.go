package env

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Flatten turns the selected top-level keys of the document into shell assignments,
// compatible with the original's flatyaml.py: nested keys joined by "_" and upper-cased
// (appliance.ssl.key → APPLIANCE_SSL_KEY), list items numbered (…_FILES_0_PATH) with a
// …_LEN count, booleans as true/false, null as empty, the lines sorted by name.
//
// Unlike flatyaml it is safe to eval: a key that is not [A-Za-z0-9_] is an error, and
// values are quoted exactly as Python's shlex.quote does, keeping every character
// (multi-line PEM keeps its newlines; flatyaml stripped them). keys selects top-level
// keys; "." or none selects all. Unknown keys are returned in missing, like flatyaml's
// message that does not fail. An error is an *Error with the file, line and column.
func Flatten(e *Env, keys []string, prefix string) (lines, missing []string, err error) {
	top := e.Document.Content[0]
	want := map[string]bool{}
	all := len(keys) == 0
	for _, k := range keys {
		all = all || k == "."
		want[k] = true
	}
	found := map[string]bool{}
	vars := map[string]string{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i].Value
		if !all && !want[k] {
			continue
		}
		found[k] = true
		if err := flattenNode(e.File, top.Content[i], top.Content[i+1], k, vars); err != nil {
			return nil, nil, err
		}
	}
	for k := range want {
		if k != "." && !found[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		lines = append(lines, prefix+name+"="+vars[name])
	}
	return lines, missing, nil
}

var shellName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// flattenNode adds the variables of node n at key path name; key is n's key (or n
// itself for a list item), where errors point.
func flattenNode(file string, key, n *yaml.Node, name string, vars map[string]string) error {
	fail := func(format string, args ...any) error {
		return &Error{Position{file, key.Line, key.Column}, fmt.Sprintf(format, args...)}
	}
	if n.Kind == yaml.AliasNode {
		// Parse refuses aliases; expanding one here could print without bound.
		return fail("%s is a YAML alias, which env.yml may not have", name)
	}
	if !shellName.MatchString(name) {
		return fail("key path %q cannot be a shell variable name (only letters, digits and _)", name)
	}
	name = strings.ToUpper(name)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := flattenNode(file, n.Content[i], n.Content[i+1], name+"_"+n.Content[i].Value, vars); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if err := flattenNode(file, item, item, name+"_"+strconv.Itoa(i), vars); err != nil {
				return err
			}
		}
		vars[name+"_LEN"] = strconv.Itoa(len(n.Content))
	default:
		switch n.Tag {
		case "!!null":
			vars[name] = ""
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return fail("%s is not a boolean", name)
			}
			vars[name] = strconv.FormatBool(b)
		default:
			vars[name] = ShellQuote(n.Value)
		}
	}
	return nil
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote quotes s for POSIX shells exactly as Python's shlex.quote does.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
