package env

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// checkText finds what yaml.v3 refuses before parsing, without a line or column: a
// byte-order mark, bytes that are not UTF-8, and characters YAML does not allow
// (NUL and other control characters). It reports the first with its position.
func checkText(name string, data []byte) error {
	switch {
	case bytes.HasPrefix(data, []byte("\xef\xbb\xbf")):
		return ErrorList{{Position{name, 1, 1}, "the file starts with a UTF-8 byte-order mark (BOM), which hides the #cloud-config header from cloud-init; save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)"}}
	case bytes.HasPrefix(data, []byte("\xfe\xff")), bytes.HasPrefix(data, []byte("\xff\xfe")):
		return ErrorList{{Position{name, 1, 1}, "the file starts with a UTF-16 byte-order mark; save it as UTF-8 without BOM (e.g. iconv -f UTF-16 -t UTF-8)"}}
	}
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return ErrorList{{Position{name, line, col}, "this byte is not UTF-8: env.yml must be UTF-8 text (convert it, e.g. with iconv -f LATIN1 -t UTF-8)"}}
		case r == 0:
			return ErrorList{{Position{name, line, col}, "a NUL byte: env.yml must be text"}}
		case !yamlAllowed(r):
			return ErrorList{{Position{name, line, col}, fmt.Sprintf("control character U+%04X is not allowed in YAML", r)}}
		case r == '\n':
			line, col = line+1, 0
		}
		i += size
		col++
	}
	return nil
}

// yamlAllowed is YAML 1.2's c-printable, the characters yaml.v3 accepts.
func yamlAllowed(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 ||
		r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}
