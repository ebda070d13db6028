// Package generate writes the content of a fresh env.yml for `ecs-env new`: the
// original appliance's env-template.yml rebuilt with yaml.v3 nodes, with its secrets
// (three OpenPGP keys, the DKIM key, the Django secrets) made in Go and the optional
// extra.yml of `--extra` merged in.
package generate

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"gopkg.in/yaml.v3"
)

// KeyType selects the algorithm of the three OpenPGP keys.
type KeyType int

const (
	// RSA3072 is an RSA 3072 primary key (certify, sign) with an RSA 3072
	// encryption subkey. The zero value, and the default.
	RSA3072 KeyType = iota
	// Ed25519 is an ed25519 primary key (certify, sign) with a cv25519
	// encryption subkey.
	Ed25519
)

// String gives the name ParseKeyType accepts.
func (k KeyType) String() string {
	switch k {
	case RSA3072:
		return "rsa3072"
	case Ed25519:
		return "ed25519"
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

// ParseKeyType reads the value of `--key-type`: rsa3072 or ed25519.
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "rsa3072":
		return RSA3072, nil
	case "ed25519":
		return Ed25519, nil
	}
	return 0, fmt.Errorf("unknown key type %q (want rsa3072 or ed25519)", s)
}

// Options are the inputs of New.
type Options struct {
	// Domain is the appliance's DNS name (appliance.domain).
	Domain string
	// KeyType is the algorithm of the OpenPGP keys; RSA3072 if zero.
	KeyType KeyType
	// Extra is the content of an extra.yml to merge, or nil.
	Extra []byte
	// ExtraName names Extra in error messages; "extra.yml" if empty.
	ExtraName string
	// Rand is the source of the random secrets; crypto/rand if nil. Since Go 1.26
	// the standard library's key generators ignore it and always use a secure
	// source (unless GODEBUG=cryptocustomrand=1).
	Rand io.Reader
	// Now is the creation time of the OpenPGP keys; time.Now if zero.
	Now time.Time
}

// New returns the content of a new env.yml for opts.Domain. Errors in the extra
// file are an env.ErrorList with file:line:column positions; no error carries a
// secret or a value taken from the extra file.
func New(opts Options) ([]byte, error) {
	if err := checkDomain(opts.Domain); err != nil {
		return nil, err
	}
	if opts.KeyType != RSA3072 && opts.KeyType != Ed25519 {
		return nil, fmt.Errorf("unknown key type %v", opts.KeyType)
	}
	name := opts.ExtraName
	if name == "" {
		name = "extra.yml"
	}
	x, err := parseExtra(name, opts.Extra)
	if err != nil {
		return nil, err
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	s, err := newSecrets(rnd, opts.KeyType, now.Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	doc := document(opts.Domain, x, s)

	var buf bytes.Buffer
	// cloud-init and the appliance both require the header as the very first line.
	buf.WriteString(env.Header + "\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding env.yml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding env.yml: %w", err)
	}
	return buf.Bytes(), nil
}

// checkDomain accepts a domain as package env does (env.CheckDomain), but without the
// final dot env.yml tolerates: the domain is written into Python settings and DNS
// comments as given.
func checkDomain(d string) error {
	if d == "" {
		return fmt.Errorf("domain is empty")
	}
	if strings.HasSuffix(d, ".") {
		return fmt.Errorf("domain %q must not end with a dot", d)
	}
	if err := env.CheckDomain(d); err != nil {
		return fmt.Errorf("domain %q %v", d, err)
	}
	return nil
}
