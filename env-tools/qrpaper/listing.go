package qrpaper

import (
	"bytes"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/sfnt"
)

// Markers for what paper cannot show as it is. Go Mono has glyphs for all three.
const (
	tabMark      = '→' // a tab character
	trailingMark = '·' // a space at the end of a line (invisible on paper, lost by text extraction)
	unknownMark  = '�' // a control character, invalid UTF-8 or a rune without a glyph
)

// row is one printed line of the listing: the first row of a source line carries its
// number, the rows a long line wraps onto carry 0.
type row struct {
	num  int
	text []rune
}

// listing splits data into numbered source lines and wraps each to width runes.
func listing(data []byte, width int) []row {
	if len(data) == 0 {
		return nil
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	rows := make([]row, 0, len(lines)+len(data)/width)
	for i, line := range lines {
		for j, seg := range wrap(display(line), width) {
			n := 0
			if j == 0 {
				n = i + 1
			}
			rows = append(rows, row{num: n, text: seg})
		}
	}
	return rows
}

// display turns one source line into the runes printed for it: each rune takes one
// column of the monospace font, and ' ' is the only blank.
func display(line []byte) []rune {
	content := bytes.TrimRight(line, " ")
	trailing := len(line) - len(content)
	out := make([]rune, 0, len(line))
	for len(content) > 0 {
		r, size := utf8.DecodeRune(content)
		content = content[size:]
		switch {
		case r == '\t':
			r = tabMark
		case r == utf8.RuneError && size == 1, !unicode.IsPrint(r), !hasGlyph(r):
			r = unknownMark
		}
		out = append(out, r)
	}
	for range trailing {
		out = append(out, trailingMark)
	}
	return out
}

// wrap cuts a line into segments of at most width runes. A break never has a space
// right before or after it when the line allows that: text extraction
// (pdftotext -fixed) drops spaces at the end of a printed line, and a space that
// starts one is easy to miss when retyping. Lines without such a position fall back
// to breaks that keep the spaces recoverable (a continuation that starts with spaces
// keeps them by column), and only a run of spaces longer than a whole row is cut
// blindly.
func wrap(r []rune, width int) [][]rune {
	var segs [][]rune
	for len(r) > width {
		b := breakAt(r, width)
		segs = append(segs, r[:b])
		r = r[b:]
	}
	return append(segs, r)
}

func breakAt(r []rune, width int) int {
	for b := width; b > 0; b-- {
		if r[b-1] != ' ' && r[b] != ' ' {
			return b
		}
	}
	for b := width; b > 0; b-- {
		if r[b-1] != ' ' {
			return b
		}
	}
	return width
}

var monoFont = sync.OnceValues(func() (*sfnt.Font, error) { return sfnt.Parse(gomono.TTF) })

// glyphCache remembers hasGlyph for the runes above ASCII; a listing has few distinct ones.
var glyphCache sync.Map // rune → bool

// hasGlyph reports whether Go Mono can draw r; gopdf would print an empty box otherwise.
func hasGlyph(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= ' ' && r < 0x7f
	}
	if v, ok := glyphCache.Load(r); ok {
		return v.(bool)
	}
	f, err := monoFont()
	ok := false
	if err == nil {
		var buf sfnt.Buffer
		g, gerr := f.GlyphIndex(&buf, r)
		ok = gerr == nil && g != 0
	}
	glyphCache.Store(r, ok)
	return ok
}
