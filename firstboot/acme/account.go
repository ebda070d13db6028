package acme

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	legoacme "github.com/go-acme/lego/v5/acme"

	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

// Files in Config.AccountDir.
const (
	AccountKeyFile   = "account.key"       // PKCS#8 PEM, ECDSA P-256, 0600
	RegistrationFile = "registration.json" // savedRegistration, 0600
)

// account is the lego registration.User kept in AccountDir.
type account struct {
	dir, directory, email string
	key                   crypto.Signer
	reg                   *legoacme.ExtendedAccount // nil until registered at directory
}

func (a *account) GetEmail() string                           { return a.email }
func (a *account) GetRegistration() *legoacme.ExtendedAccount { return a.reg }
func (a *account) GetPrivateKey() crypto.Signer               { return a.key }

// savedRegistration records which directory the account belongs to, so that
// pointing env.yml at another CA registers there instead of reusing a foreign URL.
type savedRegistration struct {
	Directory string                    `json:"directory"`
	Email     string                    `json:"email,omitempty"`
	Account   *legoacme.ExtendedAccount `json:"account"`
}

// loadAccount reads the account key (creating it on first use) and the registration
// for directory, if there is one.
func loadAccount(dir, directory, email string) (*account, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(dir, AccountKeyFile))
	if err != nil {
		return nil, err
	}
	a := &account{dir: dir, directory: directory, email: email, key: key}
	data, err := os.ReadFile(filepath.Join(dir, RegistrationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, err
	}
	var saved savedRegistration
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("%s: %w", RegistrationFile, err)
	}
	if saved.Directory == directory && saved.Account != nil && saved.Account.Location != "" {
		a.reg = saved.Account
	}
	return a, nil
}

func (a *account) saveRegistration() error {
	data, err := json.MarshalIndent(savedRegistration{Directory: a.directory, Email: a.email, Account: a.reg}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(a.dir, RegistrationFile), append(data, '\n'), atomicfile.Options{Perm: 0o600})
}

// loadOrCreateKey never overwrites a key: losing it would orphan the registration.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = newKeyPEM()
		if err != nil {
			return nil, err
		}
		err = atomicfile.WriteFile(path, data, atomicfile.Options{Perm: 0o600, NoOverwrite: true})
		if errors.Is(err, atomicfile.ErrExists) {
			// A concurrent first run won: use its key.
			data, err = os.ReadFile(path)
		}
	}
	if err != nil {
		return nil, err
	}
	return parseKeyPEM(path, data)
}

func newKeyPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKeyPEM's errors name the file only, never its content.
func parseKeyPEM(path string, data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PKCS#8 PEM private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: unreadable private key", path)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: private key cannot sign", path)
	}
	return signer, nil
}
