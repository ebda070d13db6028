package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// The retention the original's profile meant (MAX_FULLBKP_AGE=2M), with two full
// chains kept instead of its one: a broken newest chain leaves an older one.
const (
	fullAfter = "2M"
	keepFull  = 2
	volSize   = "25" // MB, the original's --volsize
)

// job is one run of duplicity commands against appliance.backup.url. Only options
// that duplicity 0.8 (bookworm) and 3.0 (trixie) both take are used, after the
// action word where there is one: duplicity ≥ 2 parses options per action.
type job struct {
	m        *machine.Machine
	target   string // the URL as duplicity gets it: without a password
	password string // of the URL, for duplicity's FTP_PASSWORD
	options  []string
	key      string // the armored secret key
	fpr      string // its primary key's fingerprint
	home     string // the GnuPG home, once open
}

func newJob(m *machine.Machine, e *env.Env) (*job, error) {
	b := e.Appliance.Backup
	target, password, err := splitURL(b.URL)
	if err != nil {
		return nil, err
	}
	options, err := shellWords(b.Options)
	if err != nil {
		return nil, fmt.Errorf("appliance.backup.options: %w", err)
	}
	ents, err := openpgp.ReadArmoredKeyRing(strings.NewReader(b.Encrypt))
	if err != nil || len(ents) != 1 {
		return nil, errors.New("appliance.backup.encrypt is not one ASCII-armored OpenPGP key")
	}
	return &job{m: m, target: target, password: password, options: options,
		key: b.Encrypt, fpr: fmt.Sprintf("%X", ents[0].PrimaryKey.Fingerprint)}, nil
}

// open makes the directories duplicity works in and the GnuPG home with the key.
func (j *job) open(ctx context.Context) error {
	for _, d := range []machine.Dir{{Path: ArchiveDir, Mode: 0o700}, {Path: TempDir, Mode: 0o700}} {
		did, err := j.m.EnsureDir(d)
		if err != nil {
			return err
		}
		if did != "" {
			j.m.Out.Detail("%s", did)
		}
	}
	// Never stale: what a crashed run left is wiped, the key imported afresh.
	home := j.m.Path(GPGHome)
	if err := os.RemoveAll(home); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(home), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	j.home = home
	// The secret key, not only the public one: duplicity decrypts the chain's
	// metadata when the archive directory is lost (ArchiveDir is on /volatile).
	_, err := j.m.Run(ctx, machine.Command{Name: "gpg", Stdin: []byte(j.key),
		Args: []string{"--homedir", home, "--batch", "--no-tty", "--quiet", "--import"}})
	if err != nil {
		return fmt.Errorf("importing appliance.backup.encrypt into %s: %w", GPGHome, err)
	}
	return nil
}

// close stops the agent gpg started and removes the GnuPG home with the key.
func (j *job) close(ctx context.Context) {
	if j.home == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	_, _ = j.m.Run(ctx, machine.Command{Name: "gpgconf", Args: []string{"--homedir", j.home, "--kill", "all"}})
	if err := os.RemoveAll(j.home); err != nil {
		j.m.Out.Detail("removing %s: %v", GPGHome, err)
	}
}

// duplicity runs duplicity with args and returns its standard output. The
// passphrase is empty (the key has none) but must be set, or duplicity asks for it.
func (j *job) duplicity(ctx context.Context, args []string) (string, error) {
	environ := []string{"GNUPGHOME=" + j.home, "PASSPHRASE="}
	if j.password != "" {
		environ = append(environ, "FTP_PASSWORD="+j.password)
	}
	out, err := j.m.Run(ctx, machine.Command{Name: "duplicity", Args: args, Env: environ})
	return string(out), err
}

// common are the options of every action.
func (j *job) common() []string {
	return []string{
		"--archive-dir", j.m.Path(ArchiveDir),
		"--name", j.name(),
		"--tempdir", j.m.Path(TempDir),
		// Imported keys are not trusted; this one is ours.
		"--gpg-options=--trust-model=always",
	}
}

// backupArgs back up VaultDir and DumpDir with /data as the source, the layout of
// the original's duply profile. The env's options come after the fixed ones, so
// they override them, and before the selection, so their own includes and excludes
// take precedence.
func (j *job) backupArgs() []string {
	// --volsize: the original's 25 MB volumes. duplicity 3's default of 200 MB wants
	// about 480 MB free in TempDir before it starts, more than a small /volatile has.
	args := append(j.common(), "--encrypt-key", j.fpr, "--full-if-older-than", fullAfter, "--volsize", volSize)
	args = append(args, j.options...)
	for _, d := range saved {
		args = append(args, "--include", j.m.Path(filepath.Join(DataDir, d)))
	}
	// With no action word both versions back up: full or incremental by the chain.
	return append(args, "--exclude", "**", j.m.Path(DataDir), j.target)
}

func (j *job) retentionArgs() []string {
	args := append([]string{"remove-all-but-n-full"}, j.common()...)
	args = append(args, "--force")
	args = append(args, otherActions(j.options)...)
	return append(args, strconv.Itoa(keepFull), j.target)
}

func (j *job) restoreArgs(dir string) []string {
	args := append([]string{"restore"}, j.common()...)
	args = append(args, otherActions(j.options)...)
	return append(args, j.target, dir)
}

// name is the backup's name in ArchiveDir: one per target, as duplicity's default
// (a hash of the URL), but ours, so that lastSet finds the cache.
func (j *job) name() string {
	sum := sha256.Sum256([]byte(j.target))
	return "appliance-" + hex.EncodeToString(sum[:8])
}

func (j *job) cache() string { return filepath.Join(j.m.Path(ArchiveDir), j.name()) }

// localTarget is the directory of a file:// target.
func (j *job) localTarget() (string, bool) {
	u, err := url.Parse(j.target)
	if err != nil || u.Scheme != "file" || !filepath.IsAbs(u.Path) {
		return "", false
	}
	return u.Path, true
}

// splitURL takes the password out of a backup URL: duplicity reads it from
// FTP_PASSWORD, for every backend that uses one, so it is never an argument.
func splitURL(raw string) (target, password string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", errors.New("appliance.backup.url is not a URL")
	}
	pw, ok := u.User.Password()
	if !ok {
		return raw, "", nil
	}
	u.User = url.User(u.User.Username())
	return u.String(), pw, nil
}

// backupOnly are the options that mean something only to a backup, each with
// whether it takes a value: duplicity ≥ 2 rejects its backup and selection options
// for restore and remove-all-but-n-full.
var backupOnly = map[string]bool{
	"--allow-source-mismatch": false, "--asynchronous-upload": false, "--dry-run": false,
	"--time-separator": true, "--volsize": true, "--full-if-older-than": true,
	"--exclude": true, "--exclude-device-files": false, "--exclude-filelist": true,
	"--exclude-if-present": true, "--exclude-older-than": true, "--exclude-other-filesystems": false,
	"--exclude-regexp": true, "--include": true, "--include-filelist": true, "--include-regexp": true,
}

// otherActions are the env's options without those only a backup takes.
func otherActions(options []string) []string {
	var out []string
	for i := 0; i < len(options); i++ {
		name, _, inline := strings.Cut(options[i], "=")
		value, only := backupOnly[name]
		if !only {
			out = append(out, options[i])
		} else if value && !inline {
			i++
		}
	}
	return out
}

var statLine = regexp.MustCompile(`(?m)^(\w+) (-?\d+)\b`)

// stat is a number of duplicity's backup statistics, -1 when the output has none.
func stat(out, name string) int64 {
	for _, m := range statLine.FindAllStringSubmatch(out, -1) {
		if m[1] == name {
			n, err := strconv.ParseInt(m[2], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// lastSet says whether the newest backup set in the cache dir is full or
// incremental, by the names duplicity gives the manifests it keeps there
// (duplicity-full.T.manifest and duplicity-inc.T0.to.T.manifest, T sorting as time),
// and how many volumes it has, by the manifest's "Volume N:" entries (the
// original's backup_last_volumes); -1 when the manifest cannot be read.
func lastSet(dir string) (kind string, volumes int) {
	entries, _ := os.ReadDir(dir)
	newest, manifest := "", ""
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".manifest")
		if !ok {
			continue
		}
		var end, k string
		if t, ok := strings.CutPrefix(name, "duplicity-full."); ok {
			end, k = t, "full"
		} else if t, ok := strings.CutPrefix(name, "duplicity-inc."); ok {
			_, end, _ = strings.Cut(t, ".to.")
			k = "incremental"
		}
		if end > newest {
			newest, kind, manifest = end, k, e.Name()
		}
	}
	if manifest == "" {
		return kind, -1
	}
	data, err := os.ReadFile(filepath.Join(dir, manifest))
	if err != nil {
		return kind, -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Volume ") && strings.HasSuffix(line, ":") {
			volumes++
		}
	}
	return kind, volumes
}

// shellWords splits s into words as a POSIX shell does, but without a shell and
// without expanding anything: blanks separate words, '…' is literal, "…" is literal
// but for \" \\ \$ \`, and a backslash outside quotes escapes the next character.
// What only a shell would act on (; & | < > ( ) $ `) is refused rather than passed
// on literally, so the options never mean something else than they seem to.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	word := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if word {
				words = append(words, cur.String())
				cur.Reset()
				word = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("a single quote is not closed")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			word = true
		case c == '"':
			word = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
					i++
				case s[i] == '$' || s[i] == '`':
					return nil, fmt.Errorf("%q would be expanded by a shell; quote it with '…' or \\", s[i])
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("a double quote is not closed")
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("ends with a backslash")
			}
			i++
			cur.WriteByte(s[i])
			word = true
		case strings.IndexByte(";&|<>()$`", c) >= 0:
			return nil, fmt.Errorf("%q means something to a shell, and none runs here; quote it with '…' or \\", c)
		default:
			cur.WriteByte(c)
			word = true
		}
	}
	if word {
		words = append(words, cur.String())
	}
	return words, nil
}
