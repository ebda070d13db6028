package qrpaper

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWrapNeverBreaksNextToSpace: on text with words, no row ends with a space and no
// continuation starts with one, rows fill the width as far as that allows, and the rows
// join back to the line.
func TestWrapNeverBreaksNextToSpace(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "to", "the", "secret", "SECRET_KEY", "=", "'x9Zq+/Ab'", "Universität", "--", "ecs.example.org"}
	for range 2000 {
		var sb strings.Builder
		for sb.Len() < 50+rng.IntN(400) {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteString(strings.Repeat(" ", 1+rng.IntN(3)))
		}
		line := []rune(strings.TrimRight(sb.String(), " "))
		width := 20 + rng.IntN(90)
		segs := wrap(line, width)
		if got := string(slices.Concat(segs...)); got != string(line) {
			t.Fatalf("rows do not join back to the line:\n%q\n%q", got, string(line))
		}
		for i, seg := range segs {
			if len(seg) > width || len(seg) == 0 {
				t.Fatalf("row %d has %d runes, width %d", i, len(seg), width)
			}
			if i < len(segs)-1 && (seg[len(seg)-1] == ' ' || segs[i+1][0] == ' ') {
				t.Fatalf("break next to a space after row %q", string(seg))
			}
			// The words are at most 15 runes, so a valid break lies within 18 of the width.
			if i < len(segs)-1 && len(seg) < width-18 {
				t.Fatalf("row %q is short of width %d", string(seg), width)
			}
		}
	}
}

// TestWrapFallbacks: where every break would touch a space, the row still ends in a
// non-space (the next row's leading space survives by its column); only a run of
// spaces longer than a row is cut blindly; and nothing is lost.
func TestWrapFallbacks(t *testing.T) {
	alternating := []rune(strings.Repeat("a ", 30) + "a")
	segs := wrap(alternating, 10)
	for i, seg := range segs[:len(segs)-1] {
		if seg[len(seg)-1] == ' ' {
			t.Errorf("row %d %q ends in a space", i, string(seg))
		}
	}
	spaces := []rune("x" + strings.Repeat(" ", 25) + "y")
	for _, line := range [][]rune{alternating, spaces} {
		if got := string(slices.Concat(wrap(line, 10)...)); got != string(line) {
			t.Errorf("wrap lost text: %q", got)
		}
	}
}

// TestDisplayMarksWhatPaperCannotShow: tabs, trailing spaces, control characters,
// invalid UTF-8 and runes Go Mono lacks get visible marks; umlauts and leading spaces
// stay as they are.
func TestDisplayMarksWhatPaperCannotShow(t *testing.T) {
	for in, want := range map[string]string{
		"  key: Universität Zürich": "  key: Universität Zürich",
		"a\tb":                      "a→b",
		"value  ":                   "value··",
		"bell\x07 \xff":             "bell� �",
		"crlf\r":                    "crlf�",
		"日本":                        "��",
	} {
		if got := string(display([]byte(in))); got != want {
			t.Errorf("display(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestListingNumbersLines: every source line gets one numbered row and its wraps rows
// numbered 0; a final newline does not add an empty line.
func TestListingNumbersLines(t *testing.T) {
	rows := listing([]byte("a\n"+strings.Repeat("b", 25)+"\n\nc\n"), 10)
	var nums []int
	for _, r := range rows {
		nums = append(nums, r.num)
	}
	if want := []int{1, 2, 0, 0, 3, 4}; !slices.Equal(nums, want) {
		t.Errorf("row numbers %v, want %v", nums, want)
	}
}

// TestPayloads: codes hold at most 900 gzip bytes, sort in order by their label, and
// their base64 parts concatenate into one stream that decodes to the whole gzip data,
// which is what "sort | cut -c9- | base64 -d" relies on.
func TestPayloads(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{1, 2, 899, 900, 901, 1801, 8331, 131200, MaxGzipBytes} {
		gz := make([]byte, size)
		for i := range gz {
			gz[i] = byte(rng.UintN(256))
		}
		texts := payloads(gz)
		if want := (size + chunkMax - 1) / chunkMax; len(texts) != want {
			t.Errorf("%d bytes: %d codes, want %d", size, len(texts), want)
		}
		shuffled := slices.Clone(texts)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		sort.Strings(shuffled)
		if !slices.Equal(shuffled, texts) {
			t.Errorf("%d bytes: sort does not restore the order of the codes", size)
		}
		var joined strings.Builder
		for _, text := range texts {
			p, err := parsePiece(text)
			if err != nil || len(p.data) > chunkMax {
				t.Fatalf("%d bytes: bad code %.20q: %v", size, text, err)
			}
			joined.WriteString(text[labelLen:] + "\n")
		}
		got, err := base64.StdEncoding.DecodeString(joined.String())
		if err != nil || string(got) != string(gz) {
			t.Errorf("%d bytes: the concatenated base64 does not decode to the data: %v", size, err)
		}
	}
}

// TestRenderRejectsTooLarge: an env whose gzip exceeds the limit is refused with both
// figures in the message, and nothing is written.
func TestRenderRejectsTooLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, MaxGzipBytes+1)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	var out strings.Builder
	st, err := Render(context.Background(), &out, Paper{Domain: "ecs.example.org", Created: time.Now(), Name: "env.yml", Data: data})
	if err == nil {
		t.Fatal("Render accepted an env over the limit")
	}
	for _, want := range []string{"env.yml", strconv.Itoa(st.GzipBytes), strconv.Itoa(MaxGzipBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if out.Len() != 0 {
		t.Errorf("Render wrote %d bytes despite the error", out.Len())
	}
}
