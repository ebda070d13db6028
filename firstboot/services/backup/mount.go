package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
	"github.com/ethikkom/ecs-appliance/internal/mountinfo"
)

// mountTarget mounts appliance.backup.mount when it names a type and returns what
// unmounts it. A target that is mounted already is used as it is and left mounted:
// someone else mounted it.
func mountTarget(ctx context.Context, m *machine.Machine, mt env.BackupMount) (func() error, error) {
	none := func() error { return nil }
	if mt.Type == "" {
		return none, nil
	}
	target := m.Path(mt.Target)
	if mounted(target) {
		m.Out.Detail("%s is mounted already; the backup uses it as it is", mt.Target)
		return none, nil
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, err
	}
	cmd, done, err := mountCommand(m, mt)
	if err != nil {
		return nil, err
	}
	_, err = m.Run(ctx, cmd)
	done() // mount has read the credentials; the kernel keeps what it needs
	if err != nil {
		return nil, fmt.Errorf("mounting appliance.backup.mount: %w", err)
	}
	m.Out.Detail("mounted %s on %s", mt.Source, mt.Target)
	return func() error {
		// Also after a cancelled run: the mount must not outlive it.
		if _, err := m.Run(context.WithoutCancel(ctx), machine.Command{Name: "umount", Args: []string{target}}); err != nil {
			return fmt.Errorf("unmounting %s: %w", mt.Target, err)
		}
		m.Out.Detail("unmounted %s", mt.Target)
		return nil
	}, nil
}

// mountCommand is the mount of mt. A cifs password (and the user and domain with
// it) moves from the options into a 0600 credentials file at CredentialsPath that
// mount.cifs reads, so no argument carries it; done removes the file.
func mountCommand(m *machine.Machine, mt env.BackupMount) (cmd machine.Command, done func(), err error) {
	options, creds, err := mountOptions(mt.Type, mt.Options)
	if err != nil {
		return cmd, nil, err
	}
	done = func() {}
	if creds != nil {
		p := m.Path(CredentialsPath)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return cmd, nil, err
		}
		if err := atomicfile.WriteFile(p, creds, atomicfile.Options{Perm: 0o600}); err != nil {
			return cmd, nil, err
		}
		done = func() { os.Remove(p) }
		options = append(options, "credentials="+p)
	}
	args := []string{"-t", mt.Type}
	if len(options) > 0 {
		args = append(args, "-o", strings.Join(options, ","))
	}
	args = append(args, mt.Source, m.Path(mt.Target))
	return machine.Command{Name: "mount", Args: args}, done, nil
}

// mountOptions splits the options of a mount of type typ into those that stay on
// the command line and the content of a cifs credentials file (nil when there is no
// password). Errors name options, never their values.
func mountOptions(typ, options string) (kept []string, creds []byte, err error) {
	cifs := typ == "cifs" || typ == "smb3"
	var user, pass, domain string
	secret := false
	for _, o := range strings.Split(options, ",") {
		if o == "" {
			continue
		}
		k, v, _ := strings.Cut(o, "=")
		switch k = strings.ToLower(k); {
		case k == "pass" || k == "password":
			if !cifs {
				return nil, nil, fmt.Errorf("appliance.backup.mount.options: a password is passed to mount only for cifs, in a credentials file; a %s mount must read it from where that filesystem keeps it", typ)
			}
			pass, secret = v, true
		case cifs && (k == "user" || k == "username"):
			user = v
			// mount.cifs also takes user%password.
			if name, pw, ok := strings.Cut(v, "%"); ok {
				user, pass, secret = name, pw, true
			}
			kept = append(kept, o)
		case cifs && (k == "dom" || k == "domain" || k == "workgroup"):
			domain = v
			kept = append(kept, o)
		default:
			kept = append(kept, o)
		}
	}
	if !secret {
		return kept, nil, nil
	}
	// With a password, the user and domain go to the file too.
	kept = withoutKeys(kept, "user", "username", "dom", "domain", "workgroup")
	var b strings.Builder
	for _, kv := range [][2]string{{"username", user}, {"password", pass}, {"domain", domain}} {
		if kv[1] == "" {
			continue
		}
		if strings.ContainsAny(kv[1], "\n\r") {
			return nil, nil, fmt.Errorf("appliance.backup.mount.options: the %s has a line break", kv[0])
		}
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	return kept, []byte(b.String()), nil
}

func withoutKeys(options []string, keys ...string) []string {
	return slices.DeleteFunc(options, func(o string) bool {
		k, _, _ := strings.Cut(o, "=")
		return slices.ContainsFunc(keys, func(key string) bool { return strings.EqualFold(k, key) })
	})
}

// mounted reports whether something is mounted on path.
func mounted(path string) bool {
	mounts, err := mountinfo.Read()
	if err != nil {
		return false
	}
	for _, mt := range mounts {
		if mt.Point == path {
			return true
		}
	}
	return false
}
