// Package bundle seals the env files into the archive kept for safe keeping:
// <domain>.env.<YYYY-MM-DD_HH.MM>.tar.gz.gpg, a tar.gz encrypted with OpenPGP to
// every key in the admin's gpgkeys.txt, decryptable by any one of them with
// GnuPG 2.2 (`gpg --decrypt`).
package bundle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Name is the bundle's file name, as the original's `date +%Y-%m-%d_%H.%M` made it.
func Name(domain string, t time.Time) string {
	return domain + ".env." + t.Format("2006-01-02_15.04") + ".tar.gz.gpg"
}

// File is one member of the bundle.
type File struct {
	Name string // a plain file name, no directories
	Data []byte
}

// ReadRecipients reads the public keys in r (source names it in errors): either
// concatenated ASCII-armored blocks of one or more keys each, as in the
// original's gpgkeys.txt, possibly with text between them, or binary keys (gpg
// --export). Every key must be usable for encryption now: a key that is not
// (expired, revoked, sign-only, not v4), a secret key or an unreadable one is an
// error naming it, never skipped, so no intended recipient is silently left out.
func ReadRecipients(r io.Reader, source string) (openpgp.EntityList, error) {
	// 100 bytes is armor.Decode's buffer size; with at least that, Decode keeps
	// using our reader and the next block can be read after this one.
	br := bufio.NewReaderSize(r, 4096)
	var keys openpgp.EntityList
	for {
		body, err := nextBlock(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		packets := packet.NewReader(body)
		for {
			e, err := openpgp.ReadEntity(packets)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: key %d: %w", source, len(keys)+1, err)
			}
			if e.PrivateKey != nil {
				return nil, fmt.Errorf("%s: %s is a secret key; give only the public key (gpg --export)", source, describe(e))
			}
			keys = append(keys, e)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no public keys", source)
	}
	if err := check(keys, time.Now()); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return keys, nil
}

// nextBlock returns the next block of key packets: the rest of the input if it
// is binary, else the body of the next armored block.
func nextBlock(br *bufio.Reader) (io.Reader, error) {
	c, err := br.Peek(1)
	if err != nil {
		return nil, err
	}
	if isKeyPacketTag(c[0]) {
		return br, nil
	}
	block, err := armor.Decode(br)
	if err != nil {
		return nil, err
	}
	if block.Type != openpgp.PublicKeyType {
		return nil, fmt.Errorf("armored %q block, want %q", block.Type, openpgp.PublicKeyType)
	}
	return block.Body, nil
}

// isKeyPacketTag reports whether c starts a public or secret key packet, in old
// (10tttt..) or new (11tttttt) packet format: binary keys start so, while text,
// even a UTF-8 comment before an armored block, does not.
func isKeyPacketTag(c byte) bool {
	var tag byte
	switch c >> 6 {
	case 0b10:
		tag = c >> 2 & 0x0f
	case 0b11:
		tag = c & 0x3f
	default:
		return false
	}
	return tag == 5 || tag == 6 // secret key (refused later), public key
}

// check refuses keys GnuPG 2.2 users cannot decrypt with, or that must not be
// encrypted to at now.
func check(keys openpgp.EntityList, now time.Time) error {
	var problems []string
	for _, e := range keys {
		if why := unusable(e, now); why != "" {
			problems = append(problems, describe(e)+": "+why)
		}
	}
	if len(problems) > 0 {
		return errors.New("unusable recipient keys:\n  " + strings.Join(problems, "\n  "))
	}
	return nil
}

func unusable(e *openpgp.Entity, now time.Time) string {
	if v := e.PrimaryKey.Version; v != 4 {
		return fmt.Sprintf("is a v%d key; only v4 keys work with GnuPG 2.2", v)
	}
	if e.Revoked(now) {
		return "is revoked"
	}
	sig, id := e.PrimarySelfSignature()
	switch {
	case sig == nil:
		return "has no valid self-signature"
	case e.PrimaryKey.CreationTime.After(now) || sig.CreationTime.After(now):
		return "is dated in the future; check the clock"
	case e.PrimaryKey.KeyExpired(sig, now):
		expiry := e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
		return "expired on " + expiry.UTC().Format(time.DateOnly)
	case sig.SigExpired(now):
		return "its self-signature expired"
	case id != nil && id.Revoked(now):
		return "its user id is revoked"
	}
	if _, ok := e.EncryptionKey(now); !ok {
		return "has no usable encryption key (sign-only, or its encryption subkeys expired or were revoked)"
	}
	return ""
}

// describe names a key the way `gpg --list-keys` shows it: fingerprint and primary
// user id.
func describe(e *openpgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return fmt.Sprintf("%X %q", e.PrimaryKey.Fingerprint, id.Name)
	}
	return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
}

// config is what GnuPG 2.2 decrypts: no AEADConfig, so go-crypto writes SEIPD v1
// with MDC (2.2 cannot read v2 SEIPD); AES-256 whenever every recipient
// advertises it; no OpenPGP compression because the payload is gzip already.
func config(now time.Time) *packet.Config {
	return &packet.Config{
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
		Time:                   func() time.Time { return now },
	}
}

// Seal writes to w a tar.gz of files (in order, mode 0600, modified at now)
// encrypted to every recipient, in binary like gpg's .gpg files. Nothing is
// written to disk: the archive is streamed straight into the encryption. On
// error, w holds a partial bundle the caller must discard.
func Seal(w io.Writer, recipients openpgp.EntityList, files []File, now time.Time) error {
	if len(recipients) == 0 {
		return errors.New("bundle: no recipients")
	}
	if err := check(recipients, now); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if f.Name == "" || f.Name == "." || f.Name == ".." || strings.ContainsAny(f.Name, "/\x00") {
			return fmt.Errorf("bundle: bad file name %q", f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("bundle: file %q given twice", f.Name)
		}
		seen[f.Name] = true
	}
	// tar headers hold whole seconds.
	now = now.Truncate(time.Second)

	plain, err := openpgp.Encrypt(w, recipients, nil, &openpgp.FileHints{IsBinary: true, ModTime: now}, config(now))
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	zw, err := gzip.NewWriterLevel(plain, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.ModTime = now
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     0o600,
			Size:     int64(len(f.Data)),
			ModTime:  now,
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("bundle: %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("bundle: %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	// Closing the plaintext writer finishes the MDC and the encrypted packet.
	if err := plain.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}
