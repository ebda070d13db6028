package env

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// bigEnv is the template env grown to size bytes (at most) with cloud-init
// write_files entries, its last line misindented: a syntax error at the end. It
// returns the file and the number of that line.
func bigEnv(tb testing.TB, size int) ([]byte, int) {
	tb.Helper()
	const bad = "   misindented: x\n"
	var b strings.Builder
	b.WriteString(readFixture(tb, "template-env.yml"))
	b.WriteString("write_files:\n")
	body := strings.Repeat("      "+strings.Repeat("0123456789", 6)+"\n", 20)
	for i := 0; ; i++ {
		entry := fmt.Sprintf("  - path: /etc/example/%d.conf\n    content: |\n%s", i, body)
		if b.Len()+len(entry)+len(bad) > size {
			break
		}
		b.WriteString(entry)
	}
	b.WriteString(bad)
	s := b.String()
	return []byte(s), strings.Count(s, "\n")
}

// BenchmarkSyntaxErrorAtEnd is the time Parse takes to find and position a syntax
// error on the last line of a 1 MB and of a 4 MiB (MaxSize) file.
func BenchmarkSyntaxErrorAtEnd(b *testing.B) {
	for _, size := range []int{1 << 20, MaxSize} {
		data, line := bigEnv(b, size)
		want := fmt.Sprintf("env.yml:%d:", line)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Parse("env.yml", data); err == nil || !strings.HasPrefix(err.Error(), want) {
					b.Fatalf("got %v, want an error at %s", err, want)
				}
			}
		})
	}
}

// firstFailure parses data as parseDocument does and returns yaml.v3's message and how
// many bytes the parser had read.
func firstFailure(tb testing.TB, data []byte) (string, int) {
	tb.Helper()
	cr := &countingReader{r: bytes.NewReader(data)}
	var n yaml.Node
	err := yaml.NewDecoder(cr).Decode(&n)
	if err == nil {
		tb.Fatal("the YAML parses")
	}
	msg, _ := yamlMessage(err)
	return msg, cr.n
}

// TestSyntaxErrorSearchIsLinear: positioning an error at the end of a 1 MB file hands
// the parser a few times the file, not every leading part of it (issue 10: that took
// minutes). The work is counted in bytes parsed, not timed.
func TestSyntaxErrorSearchIsLinear(t *testing.T) {
	data, line := bigEnv(t, 1<<20)
	msg, read := firstFailure(t, data)
	lt := newLineTable(data)
	if got := lt.problemLine(msg, read); got != line {
		t.Errorf("problem at line %d, want %d", got, line)
	}
	if lt.parsed > len(data) {
		t.Errorf("the search parsed %d bytes for a file of %d", lt.parsed, len(data))
	}
}

// TestSyntaxErrorLineAsDefined: the search finds the line the definition names, the
// fewest leading lines that fail with the same message, for broken variants of the
// fixtures (a character or a line inserted at random places).
func TestSyntaxErrorLineAsDefined(t *testing.T) {
	fewest := func(data []byte, msg string) int {
		for i, end := 1, 0; end < len(data); i++ {
			if j := bytes.IndexByte(data[end:], '\n'); j >= 0 {
				end += j + 1
			} else {
				end = len(data)
			}
			var n yaml.Node
			if err := yaml.Unmarshal(data[:end], &n); err != nil {
				if m, _ := yamlMessage(err); m == msg {
					return i
				}
			}
		}
		return 0
	}
	rng := rand.New(rand.NewSource(1))
	bads := []string{"\t", "]", "[", "{", "}", ": :", "\"", "'", "- ", "  x: y", " x", "!", "%", "@", "`",
		":", "? ", "|", ">", ",", "\n x", "\n   ", "\n- a\n"}
	for _, name := range []string{"template-env.yml", "default-env.yml"} {
		fixture := readFixture(t, name)
		for range 150 {
			at := rng.Intn(len(fixture))
			data := []byte(fixture[:at] + bads[rng.Intn(len(bads))] + fixture[at:])
			var n yaml.Node
			if yaml.Unmarshal(data, &n) == nil {
				continue
			}
			msg, read := firstFailure(t, data)
			if got, want := newLineTable(data).problemLine(msg, read), fewest(data, msg); got != want {
				t.Errorf("%s broken at byte %d (%s): line %d, want %d", name, at, msg, got, want)
			}
		}
	}
}
