package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

// GPGHome is the document vault's GnuPG home, mounted at /app/ecs-gpg.
const GPGHome = "/data/ecs-gpg"

// Prepare imports the vault keys (ecs.vault_encrypt, ecs.vault_sign) into GPGHome
// when it does not hold exactly these secret keys, as the original's
// prepare_storagevault did at every boot, but without a change when nothing changed.
func (Service) Prepare(ctx context.Context, c *services.Context) error {
	keys := []string{c.Env.ECS.VaultEncrypt, c.Env.ECS.VaultSign}
	want, err := fingerprints(keys)
	if err != nil {
		return err
	}
	if !c.M.Live() {
		c.M.Out.Detail("would import the vault keys into %s (not the running system)", GPGHome)
		return nil
	}
	gpg := func(stdin []byte, args ...string) (string, error) {
		out, err := c.M.Run(ctx, machine.Command{Name: "gpg", User: "app", Stdin: stdin,
			Args: append([]string{"--homedir", GPGHome, "--batch", "--no-tty"}, args...)})
		return string(out), err
	}
	listed, _ := gpg(nil, "--list-secret-keys", "--with-colons")
	if slices.Equal(want, secretFingerprints(listed)) {
		return nil
	}
	// What the keyring held is replaced whole; random_seed and the like stay.
	for _, name := range []string{"pubring.kbx", "pubring.kbx~", "pubring.gpg", "pubring.gpg~", "secring.gpg", "trustdb.gpg", "private-keys-v1.d"} {
		if err := os.RemoveAll(filepath.Join(GPGHome, name)); err != nil {
			return err
		}
	}
	if _, err := gpg([]byte(strings.Join(keys, "\n")), "--import"); err != nil {
		return fmt.Errorf("importing the vault keys into %s: %w", GPGHome, err)
	}
	// The agent gpg started must not keep the home busy.
	_, _ = c.M.Run(ctx, machine.Command{Name: "gpgconf", User: "app", Args: []string{"--homedir", GPGHome, "--kill", "gpg-agent"}})
	c.M.Out.Detail("imported the vault keys into %s", GPGHome)
	c.Did()
	return nil
}

// fingerprints are the primary key fingerprints of armored keys, sorted, upper-case
// hex as gpg prints them.
func fingerprints(armored []string) ([]string, error) {
	var fprs []string
	for _, a := range armored {
		ents, err := openpgp.ReadArmoredKeyRing(strings.NewReader(a))
		if err != nil {
			return nil, fmt.Errorf("vault key: %w", err)
		}
		for _, e := range ents {
			fprs = append(fprs, fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
		}
	}
	slices.Sort(fprs)
	return slices.Compact(fprs), nil
}

// secretFingerprints reads the primary keys' fingerprints from gpg --with-colons
// output of --list-secret-keys (an fpr line follows each sec line).
func secretFingerprints(colons string) []string {
	var fprs []string
	primary := false
	for _, line := range strings.Split(colons, "\n") {
		f := strings.Split(line, ":")
		switch {
		case f[0] == "sec":
			primary = true
		case f[0] == "fpr" && primary && len(f) > 9:
			fprs = append(fprs, f[9])
			primary = false
		case f[0] == "ssb":
			primary = false
		}
	}
	slices.Sort(fprs)
	return slices.Compact(fprs)
}
