package qrpaper

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// codeText is what a code of a paper backup holds: "iii/nnn <base64>".
var codeText = regexp.MustCompile(`^([0-9]{3})/([0-9]{3}) ([A-Za-z0-9+/]+=*)$`)

// FuzzAssemble feeds assemble, the step of Restore that turns the texts of the
// decoded QR codes into the env, with code texts one per line. It must never panic,
// never return data with an error, and return data only for one complete,
// consistent backup whose data matches the sha256 it carries. The seeds, which plain
// "go test" runs, are a backup in order, reordered, incomplete and mixed with
// another one.
func FuzzAssemble(f *testing.F) {
	one := backupTexts(f, []byte("#cloud-config\n"))
	texts := backupTexts(f, fakeEnv(11, 6000))
	same := backupTexts(f, fakeEnv(12, 6000))
	if len(texts) < 3 || len(same) != len(texts) {
		f.Fatalf("fixtures: %d and %d codes", len(texts), len(same))
	}
	n := len(texts)
	join := func(parts ...[]string) string {
		var all []string
		for _, p := range parts {
			all = append(all, p...)
		}
		return strings.Join(all, "\n")
	}
	for _, seed := range []string{
		join(one),
		join(texts),
		join(texts[n-1:], texts[1:n-1], texts[:1], texts[:1]), // reordered, a duplicate
		join(texts[1:]),                       // incomplete
		join(texts[:1], same[1:2], texts[2:]), // same count, another backup
		join(texts, same[:1]),                 // conflicting duplicate
		join(one, texts),                      // different totals
		join(texts, []string{"https://example.org/"}),
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, lines string) {
		var texts []string
		if lines != "" {
			texts = strings.Split(lines, "\n")
		}
		got, err := assemble(texts)
		if err != nil {
			if got != nil {
				t.Fatalf("assemble returned %d bytes with the error %v", len(got), err)
			}
			return
		}
		// Accepted: check from scratch that the texts are one whole backup.
		total := 0
		byNumber := map[int]string{}
		for _, text := range texts {
			m := codeText.FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("accepted a text that is no code of a backup: %q", text)
			}
			i, _ := strconv.Atoi(m[1])
			n, _ := strconv.Atoi(m[2])
			if total == 0 {
				total = n
			}
			if n != total || i < 1 || i > n {
				t.Fatalf("accepted code %d/%d among codes of %d", i, n, total)
			}
			if prev, ok := byNumber[i]; ok && prev != m[3] {
				t.Fatalf("accepted two different codes numbered %d/%d", i, n)
			}
			byNumber[i] = m[3]
		}
		var gz []byte
		for i := 1; i <= total; i++ {
			piece, ok := byNumber[i]
			if !ok {
				t.Fatalf("accepted a backup without code %d/%d", i, total)
			}
			b, err := base64.StdEncoding.DecodeString(piece)
			if err != nil {
				t.Fatalf("accepted code %d/%d with bad base64: %v", i, total, err)
			}
			gz = append(gz, b...)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("accepted codes that are no gzip stream: %v", err)
		}
		zr.Multistream(false)
		inflated, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(inflated, got) {
			t.Fatalf("returned %d bytes, the codes inflate to %d (%v)", len(got), len(inflated), err)
		}
		sum := sha256.Sum256(got)
		if want := sumComment + hex.EncodeToString(sum[:]); zr.Comment != want {
			t.Fatalf("returned data whose sha256 is not the one the backup carries (%q)", zr.Comment)
		}
	})
}
