// Package qrpaper makes the printable paper backup of an env.yml and restores it.
//
// The PDF has three parts: the env as numbered, selectable monospace text; QR codes
// that hold gzip -9 of the env in base64, four per page, each labelled "i/n"; and a
// page of restore instructions. The codes can be restored with standard tools only
// (pdftoppm, zbarimg, sort, cut, base64, gunzip), or with Restore, which also names
// missing codes and checks the sha256 that the gzip header carries in its comment.
package qrpaper

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/signintech/gopdf"
	"golang.org/x/image/font/gofont/gomono"
)

// Paper is what Render prints.
type Paper struct {
	Domain  string    // the appliance's domain, printed in every page header
	Created time.Time // when the backup was made, printed in every page header
	Name    string    // file name of the env, "env.yml"; the PDF is expected as Name+".pdf"
	Data    []byte    // the env itself
}

// Stats describes a rendered backup.
type Stats struct {
	Pages     int    // all pages
	TextPages int    // pages of the text listing
	QRPages   int    // pages of QR codes
	QRCodes   int    // number of QR codes
	QRVersion int    // largest QR version used (all codes are printed at the same size)
	GzipBytes int    // size of gzip -9 of the env, which the codes hold
	SHA256    string // hex sha256 of the env
}

// Page geometry in PostScript points. Go Mono gives every glyph the same advance,
// 1229/2048 em, so at 8 pt a character is 4.8 pt wide and pdftotext -fixed 4.8
// maps each one to a column.
const (
	a4Short  = 595.0
	a4Long   = 842.0
	fontSize = 8.0
	charW    = fontSize * 1229 / 2048
	// margin is a whole number of characters: pdftotext -fixed rounds x/4.8 to a
	// column, and at 36 pt every glyph started half-way between two columns.
	margin  = 8 * charW
	leading = 10.0
	bodyTop = 76.0 // baseline of the first row below the header

	codeSize  = 270.0 // printed side of a QR code, quiet zone included
	codeGapY  = 44.0  // room under a code for its label
	labelSize = 11.0
)

var (
	columns  = cols(a4Short)                                        // characters per listing row
	rowsPage = int(math.Floor((a4Long-margin-bodyTop)/leading)) + 1 // listing rows per page
)

// cols is how many characters fit between the margins of a page w wide.
func cols(w float64) int { return int(math.Floor((w - 2*margin) / charW)) }

const (
	fontName = "mono"
	rowSep   = " │ " // between a row's number and its text
	// zbarOpts limit zbarimg to QR codes: its other decoders sometimes read a
	// DataBar number out of a QR page, which would corrupt the base64 stream.
	zbarOpts = "--raw -q -Sdisable -Sqrcode.enable"
)

// Render writes the paper backup of p as an A4 PDF to w. It stops early, with ctx's
// error and nothing written to w, once ctx is done: encoding the codes of a large env
// takes seconds.
func Render(ctx context.Context, w io.Writer, p Paper) (Stats, error) {
	sum := sha256.Sum256(p.Data)
	st := Stats{SHA256: hex.EncodeToString(sum[:])}
	gz, err := compress(p.Data, sum, p.Created)
	if err != nil {
		return st, err
	}
	st.GzipBytes = len(gz)
	if len(gz) > MaxGzipBytes {
		return st, fmt.Errorf("qrpaper: %s is %d bytes after gzip -9; a paper backup holds at most %d bytes (%d QR codes)",
			p.Name, len(gz), MaxGzipBytes, MaxCodes)
	}
	texts := payloads(gz)
	codes, err := encodeAll(ctx, texts)
	if err != nil {
		return st, err
	}
	for _, c := range codes {
		st.QRVersion = max(st.QRVersion, c.version)
	}

	numW := max(3, len(strconv.Itoa(bytes.Count(p.Data, []byte("\n"))+1)))
	rows := listing(p.Data, columns-numW-utf8.RuneCountInString(rowSep))
	st.QRCodes = len(codes)
	st.TextPages = (len(rows) + rowsPage - 1) / rowsPage
	st.QRPages = (len(codes) + 3) / 4
	st.Pages = st.TextPages + st.QRPages + 1

	d := &doc{pdf: &gopdf.GoPdf{}, p: p, st: st}
	d.pdf.Start(gopdf.Config{PageSize: *gopdf.PageSizeA4, Unit: gopdf.UnitPT})
	d.pdf.SetInfo(gopdf.PdfInfo{
		Title:        "Paper backup of " + p.Name + " for " + p.Domain,
		Creator:      "ecs-env",
		CreationDate: p.Created,
	})
	if err := d.pdf.AddTTFFontData(fontName, gomono.TTF); err != nil {
		return st, fmt.Errorf("qrpaper: loading Go Mono: %w", err)
	}
	if err := d.textPages(rows, numW); err != nil {
		return st, err
	}
	if err := d.qrPages(codes); err != nil {
		return st, err
	}
	if err := d.instructions(); err != nil {
		return st, err
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if _, err := d.pdf.WriteTo(w); err != nil {
		return st, fmt.Errorf("qrpaper: writing the PDF: %w", err)
	}
	return st, nil
}

// doc is the PDF being drawn.
type doc struct {
	pdf  *gopdf.GoPdf
	p    Paper
	st   Stats
	page int
}

// newPage starts a page, w by h points, with the header every page carries:
// domain, name, date, page number and the env's sha256.
func (d *doc) newPage(w, h float64) error {
	d.pdf.AddPageWithOption(gopdf.PageOption{PageSize: &gopdf.Rect{W: w, H: h}})
	d.page++
	pageNo := fmt.Sprintf("page %d/%d", d.page, d.st.Pages)
	left := []rune(string(display([]byte(d.p.Domain))) + "  " + string(display([]byte(d.p.Name))) +
		" paper backup  " + d.p.Created.Format("2006-01-02 15:04 MST"))
	if room := cols(w) - len(pageNo) - 2; len(left) > room {
		left = append(left[:room-1], '…')
	}
	if err := d.text(margin, margin+fontSize, fontSize, string(left)); err != nil {
		return err
	}
	if err := d.text(w-margin-float64(len(pageNo))*charW, margin+fontSize, fontSize, pageNo); err != nil {
		return err
	}
	if err := d.text(margin, margin+fontSize+leading, fontSize, "sha256 "+d.st.SHA256); err != nil {
		return err
	}
	d.pdf.SetLineWidth(0.5)
	d.pdf.Line(margin, margin+fontSize+leading+6, w-margin, margin+fontSize+leading+6)
	return d.pdf.SetFont(fontName, "", fontSize)
}

// text draws s with its baseline at y.
func (d *doc) text(x, y, size float64, s string) error {
	if err := d.pdf.SetFont(fontName, "", size); err != nil {
		return err
	}
	d.pdf.SetXY(x, y)
	if err := d.pdf.Text(s); err != nil {
		return fmt.Errorf("qrpaper: drawing text: %w", err)
	}
	return nil
}

// textPages prints the listing: "  12 │ content", and for a wrapped line's further
// rows a blank number. Each row is one text run so that it can be selected whole.
func (d *doc) textPages(rows []row, numW int) error {
	blank := strings.Repeat(" ", numW)
	var sb strings.Builder
	for i, r := range rows {
		if i%rowsPage == 0 {
			if err := d.newPage(a4Short, a4Long); err != nil {
				return err
			}
		}
		sb.Reset()
		if r.num > 0 {
			fmt.Fprintf(&sb, "%*d", numW, r.num)
		} else {
			sb.WriteString(blank)
		}
		sb.WriteString(rowSep)
		sb.WriteString(string(r.text))
		d.pdf.SetXY(margin, bodyTop+float64(i%rowsPage)*leading)
		if err := d.pdf.Text(sb.String()); err != nil {
			return fmt.Errorf("qrpaper: drawing the listing: %w", err)
		}
	}
	return nil
}

// qrPages prints the codes 2×2 per page, all at one size so that small codes get
// larger modules, each with its label "i/n" below.
func (d *doc) qrPages(codes []qrCode) error {
	// The codes get the width the printer margin leaves: their quiet zone is
	// their own, and larger modules read more reliably.
	gapX := (a4Short - 2*codeSize) / 3
	gridH := 2*codeSize + 2*codeGapY
	top := bodyTop - fontSize + (a4Long-margin-(bodyTop-fontSize)-gridH)/2
	for i, c := range codes {
		if i%4 == 0 {
			if err := d.newPage(a4Short, a4Long); err != nil {
				return err
			}
			if err := d.text(margin, a4Long-margin, fontSize, fmt.Sprintf(
				"QR codes %d-%d of %d. How to restore: page %d.", i+1, min(i+4, len(codes)), len(codes), d.st.Pages)); err != nil {
				return err
			}
		}
		x := gapX + float64(i%2)*(codeSize+gapX)
		y := top + float64(i%4/2)*(codeSize+codeGapY)
		holder, err := gopdf.ImageHolderByBytes(c.png)
		if err == nil {
			err = d.pdf.ImageByHolder(holder, x, y, &gopdf.Rect{W: codeSize, H: codeSize})
		}
		if err != nil {
			return fmt.Errorf("qrpaper: placing QR code %d: %w", i+1, err)
		}
		label := fmt.Sprintf("%d/%d", i+1, len(codes))
		lx := x + (codeSize-float64(len(label))*labelSize*1229/2048)/2
		if err := d.text(lx, y+codeSize+labelSize+2, labelSize, label); err != nil {
			return err
		}
	}
	return nil
}

// shellWord quotes s for sh when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// restoreCommand is the one-line restore from the PDF printed on the last page.
// sort -u orders the codes by their label and drops a code read twice; cut -c9-
// drops the label.
func restoreCommand(name string) string {
	n := shellWord(name)
	return "pdftoppm -r 150 -png " + shellWord(name+".pdf") + " p && zbarimg " + zbarOpts +
		" p-*.png | sort -u | cut -c9- | base64 -d | gunzip > " + n + " && sha256sum " + n
}

// instructions prints the last page: how to restore, by hand and with ecs-env. It
// is landscape so that the one-line restore fits a line at a readable size.
func (d *doc) instructions() error {
	if err := d.newPage(a4Long, a4Short); err != nil {
		return err
	}
	st, name, shown := d.st, shellWord(d.p.Name), string(display([]byte(d.p.Name)))
	textRange := "none"
	if st.TextPages > 0 {
		textRange = pageRange(1, st.TextPages)
	}
	qrRange := pageRange(st.TextPages+1, st.TextPages+st.QRPages)
	scan := "zbarimg " + zbarOpts + " scan-*.png | sort -u"
	lines := []string{
		"HOW TO RESTORE " + shown,
		"",
		fmt.Sprintf("Pages %s list %s as text. Pages %s hold it in %d QR codes: %s compressed with gzip -9 (%d bytes),",
			textRange, shown, qrRange, st.QRCodes, shown, st.GzipBytes),
		fmt.Sprintf("cut into pieces, each piece base64-encoded behind its number (\"001/%03d \") so that sort puts them in order.", st.QRCodes),
		"",
		"The restored file must have this sha256:",
		"",
		"    " + st.SHA256 + "  " + shown,
		"",
		"From this PDF file, with pdftoppm (poppler-utils), zbarimg (zbar-tools), sort, cut, base64 and gunzip:",
		"",
		restoreCommand(d.p.Name),
		"",
		"The command ends by printing the sha256 of the restored file; compare it with the one above.",
		"",
		"From paper:",
		fmt.Sprintf("  1. Scan pages %s at 150 dpi or more (300 dpi is safer), in grey or colour, to PNG or JPEG files named", qrRange),
		"     e.g. scan-1.png, scan-2.png, ... Keep the codes flat, sharp and whole.",
		fmt.Sprintf("  2. Check that all %d codes read; this must print %d:", st.QRCodes, st.QRCodes),
		"       " + scan + " | wc -l",
		"     If it prints less, scan the pages again at a higher resolution or in better light.",
		"  3. Restore, then check the sha256:",
		"       " + scan + " | cut -c9- | base64 -d | gunzip > " + name,
		"       sha256sum " + name,
		"  Or let ecs-env do it; it names any missing code and checks the sha256:",
		"       ecs-env restore scan-*.png",
		"",
		fmt.Sprintf("Without a scanner, retype the listing on pages %s. In it, %c marks a tab, %c a space at the end of a line and %c a",
			textRange, tabMark, trailingMark, unknownMark),
		"character that cannot be printed; the QR codes hold the file exactly.",
	}
	for i, l := range lines {
		// The longest line, the one-line restore, must stay on one line to be
		// copied: it gets the largest size up to 8 pt that fits.
		size := min(fontSize, (a4Long-2*margin)/(float64(utf8.RuneCountInString(l))*1229/2048))
		if err := d.text(margin, bodyTop+float64(i)*leading*1.2, size, l); err != nil {
			return err
		}
	}
	return nil
}

func pageRange(first, last int) string {
	if first == last {
		return strconv.Itoa(first)
	}
	return fmt.Sprintf("%d-%d", first, last)
}
