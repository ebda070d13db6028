package generate

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// The OpenPGP user ids the appliance looks keys up by.
const (
	uidBackup      = "ecs_backup"
	uidMediaserver = "ecs_mediaserver"
	uidAuthority   = "ecs_authority"
)

// djangoSecretBytes is what the original took from `openssl rand -base64 39`:
// 312 bits, 52 base64 characters, which also passes Django's deploy check
// (at least 50 characters).
const djangoSecretBytes = 39

// secrets is everything random in a new env.yml.
type secrets struct {
	backupKey, vaultEncrypt, vaultSign string // armored OpenPGP secret keys
	dkimKey                            string // PEM RSA private key
	dkimPublic                         string // base64 SubjectPublicKeyInfo, as DNS wants it
	secretKey, registration, pwReset   string // Django secrets
}

// lockedReader lets the key generators, which run concurrently, share one
// caller-supplied reader that need not be safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// newSecrets makes all secrets. The slow part is RSA key generation, so the four
// keys are made concurrently.
func newSecrets(rnd io.Reader, kt KeyType, now time.Time) (*secrets, error) {
	rnd = &lockedReader{r: rnd}
	s := &secrets{}
	jobs := []func() error{
		func() (err error) { s.backupKey, err = openPGPKey(rnd, kt, now, uidBackup); return },
		func() (err error) { s.vaultEncrypt, err = openPGPKey(rnd, kt, now, uidMediaserver); return },
		func() (err error) { s.vaultSign, err = openPGPKey(rnd, kt, now, uidAuthority); return },
		func() (err error) { s.dkimKey, s.dkimPublic, err = dkimKey(rnd); return },
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() { errs[i] = job() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for _, p := range []*string{&s.secretKey, &s.registration, &s.pwReset} {
		b := make([]byte, djangoSecretBytes)
		if _, err := io.ReadFull(rnd, b); err != nil {
			return nil, fmt.Errorf("reading random bytes: %w", err)
		}
		// Standard base64 has no quote or backslash, so the value can sit
		// inside a single-quoted Python string unchanged.
		*p = base64.StdEncoding.EncodeToString(b)
	}
	return s, nil
}

// openPGPKey makes an unprotected, ASCII-armored v4 secret key whose primary key
// certifies and signs and whose subkey encrypts, as the appliance's gpg calls
// expect of each of its three keys.
func openPGPKey(rnd io.Reader, kt KeyType, now time.Time, uid string) (string, error) {
	cfg := &packet.Config{
		Rand:        rnd,
		Time:        func() time.Time { return now },
		DefaultHash: crypto.SHA256,
		// Advertised as the preferred cipher; AES128 is appended by the library.
		DefaultCipher: packet.CipherAES256,
		// GnuPG 2.2 reads neither v6 keys nor AEAD (SEIPDv2) preferences, so both
		// stay off explicitly rather than by default.
		V6Keys:     false,
		AEADConfig: nil,
	}
	switch kt {
	case RSA3072:
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = 3072
	case Ed25519:
		// The legacy EdDSA algorithm (22) with an ECDH cv25519 subkey is what
		// GnuPG 2.2 calls ed25519/cv25519; the RFC 9580 Ed25519 (27) is unknown to it.
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	default:
		return "", fmt.Errorf("unknown key type %d", kt)
	}
	e, err := openpgp.NewEntity(uid, "", "", cfg)
	if err != nil {
		return "", fmt.Errorf("generating OpenPGP key %s: %w", uid, err)
	}
	// go-crypto lists "uncompressed" first, so gpg would not compress what it
	// encrypts to these keys, duplicity's backups included. Advertise GnuPG's own
	// preference, ZLIB, BZip2 (3, no constant in go-crypto), ZIP, with uncompressed
	// implied. SerializePrivate re-signs with it.
	for _, id := range e.Identities {
		id.SelfSignature.PreferredCompression = []uint8{uint8(packet.CompressionZLIB), 3, uint8(packet.CompressionZIP)}
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return "", fmt.Errorf("armoring OpenPGP key %s: %w", uid, err)
	}
	if err := e.SerializePrivate(w, cfg); err != nil {
		return "", fmt.Errorf("serializing OpenPGP key %s: %w", uid, err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("armoring OpenPGP key %s: %w", uid, err)
	}
	buf.WriteByte('\n')
	return buf.String(), nil
}

// dkimKey makes the 2048-bit RSA key opendkim signs mail with: the private key
// as PKCS #1 PEM (what `openssl genrsa` wrote for the original) and the public
// key as base64 DER SubjectPublicKeyInfo for the DNS record.
func dkimKey(rnd io.Reader) (private, public string, err error) {
	k, err := rsa.GenerateKey(rnd, 2048)
	if err != nil {
		return "", "", fmt.Errorf("generating DKIM key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("encoding DKIM public key: %w", err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return string(priv), base64.StdEncoding.EncodeToString(der), nil
}
