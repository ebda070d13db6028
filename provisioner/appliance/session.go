package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/ethikkom/ecs-appliance/firstboot/install"
	"github.com/ethikkom/ecs-appliance/images"
)

// session is one Provision run: the steps, in order, as shell scripts built from the
// recipe, uploaded to the staging directory and run through the communicator.
type session struct {
	ctx    context.Context
	ui     packersdk.Ui
	comm   packersdk.Communicator
	cfg    *Config
	recipe *images.Recipe

	base    *images.Base
	roles   []images.Role
	uploads int
	changes int
}

type step struct {
	name  string
	build func() (string, error) // the script body; may upload files it needs
}

func (s *session) run() error {
	staging := s.cfg.StagingDirectory
	s.ui.Say("ecs-appliance: installing the appliance recipe")
	if _, err := s.plain("mkdir -p -m 0700 " + quote(staging)); err != nil {
		return err
	}
	defer func() {
		if _, err := s.plain("rm -rf " + quote(staging)); err != nil {
			s.ui.Error(fmt.Sprintf("ecs-appliance: removing %s: %v", staging, err))
		}
	}()
	if err := s.upload("lib.sh", []byte(shellLib)); err != nil {
		return err
	}
	if err := s.probe(); err != nil {
		return err
	}
	steps := []step{
		{"packages", s.packagesStep},
		{"locales", s.localesStep},
		{"user", s.userStep},
		{"files", s.filesStep},
		{"units", s.unitsStep},
	}
	if !s.cfg.SkipCleanup {
		steps = append(steps, step{"cleanup", func() (string, error) { return "clean_for_imaging\n", nil }})
	}
	for i, st := range steps {
		before := s.changes
		body, err := st.build()
		if err != nil {
			return fmt.Errorf("ecs-appliance %s: %w", st.name, err)
		}
		s.ui.Say(fmt.Sprintf("ecs-appliance: %s", st.name))
		if err := s.script(fmt.Sprintf("%02d-%s.sh", i+1, st.name), body); err != nil {
			return fmt.Errorf("ecs-appliance %s: %w", st.name, err)
		}
		if n := s.changes - before; n == 0 {
			s.ui.Say(st.name + ": unchanged")
		} else {
			s.ui.Say(fmt.Sprintf("%s: %d changes", st.name, n))
		}
	}
	if s.changes == 0 {
		s.ui.Say("ecs-appliance: unchanged (the machine already had the recipe)")
	} else {
		s.ui.Say(fmt.Sprintf("ecs-appliance: done, %d changes", s.changes))
	}
	return nil
}

// probe finds the base and which conditional roles apply.
func (s *session) probe() error {
	var b strings.Builder
	b.WriteString(". /etc/os-release 2>/dev/null || true\n")
	b.WriteString(`echo "base=${ID:-unknown}-${VERSION_CODENAME:-${UBUNTU_CODENAME:-unknown}}"` + "\n")
	paths := map[string]bool{}
	for _, r := range s.recipe.Roles {
		for _, p := range append(append([]string{}, r.IfExists...), r.UnlessExists...) {
			paths[p] = true
		}
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		fmt.Fprintf(&b, "if [ -e %s ]; then echo exists=%s; fi\n", quote(p), quote(p))
	}
	out, err := s.plain(b.String())
	if err != nil {
		return fmt.Errorf("ecs-appliance: probing the target: %w", err)
	}
	exists := map[string]bool{}
	detected := ""
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "base="); ok {
			detected = v
		}
		if v, ok := strings.CutPrefix(line, "exists="); ok {
			exists[v] = true
		}
	}
	if s.cfg.Base != "" {
		detected = s.cfg.Base
	}
	if s.base, err = images.LookupBase(detected); err != nil {
		// Say so, but a close relative (debian-sid, a Debian derivative) may well work.
		unknown := err
		if s.base, err = images.LookupBase(""); err != nil {
			return err
		}
		s.ui.Error(fmt.Sprintf("ecs-appliance: %v (read from /etc/os-release): using %s's package names", unknown, s.base.Name))
	}
	wanted := map[string]bool{}
	for _, n := range s.cfg.Roles {
		wanted[n] = true
	}
	var used, skipped []string
	for _, r := range s.recipe.Roles {
		applies := len(wanted) == 0 || wanted[r.Name]
		if applies && len(r.IfExists) > 0 {
			applies = anyExists(r.IfExists, exists)
		}
		if applies && anyExists(r.UnlessExists, exists) {
			applies = false
		}
		if applies {
			s.roles = append(s.roles, r)
			used = append(used, r.Name)
		} else {
			skipped = append(skipped, r.Name)
		}
	}
	s.ui.Say(fmt.Sprintf("base %s; roles: %s", s.base.Name, strings.Join(used, ", ")))
	if len(skipped) > 0 {
		s.ui.Say("not for this target: " + strings.Join(skipped, ", "))
	}
	return nil
}

func anyExists(paths []string, exists map[string]bool) bool {
	for _, p := range paths {
		if exists[p] {
			return true
		}
	}
	return false
}

func (s *session) packagesStep() (string, error) {
	if len(s.recipe.Debconf) > 0 {
		if err := s.upload("debconf", []byte(strings.Join(s.recipe.Debconf, "\n")+"\n")); err != nil {
			return "", err
		}
	}
	pkgs, err := s.recipe.Packages(s.base, s.roles)
	if err != nil {
		return "", err
	}
	pkgs = append(pkgs, s.cfg.ExtraPackages...)
	if len(pkgs) == 0 {
		return "", nil
	}
	return "ensure_packages " + quoteAll(pkgs) + "\n", nil
}

func (s *session) localesStep() (string, error) {
	if len(s.recipe.Locales) == 0 {
		return "", nil
	}
	return "ensure_locales " + quoteAll(s.recipe.Locales) + "\n", nil
}

func (s *session) userStep() (string, error) {
	u := s.recipe.User
	return fmt.Sprintf("ensure_group %s %d\nensure_user %s %d %s %s %s %s\n",
		quote(u.Group), u.GID, quote(u.Name), u.UID, quote(u.Group), quote(u.Home), quote(u.Shell), quote(u.Comment)), nil
}

// filesStep uploads the agent binary, every file of the recipe and a manifest to the
// staging directory; the agent's install command then puts each in place with the
// writer the agent uses at boot, changing only what differs.
func (s *session) filesStep() (string, error) {
	staged, err := s.uploadFile(s.cfg.AgentBinary, "appliance-agent")
	if err != nil {
		return "", err
	}
	var mf install.Manifest
	for _, r := range s.roles {
		for _, d := range r.Directories {
			mf.Steps = append(mf.Steps, install.Step{Dir: d.Path, Mode: fs.FileMode(d.Mode), Owner: owner(d.Owner, d.Group)})
		}
		for _, f := range r.Files {
			if f.Link != "" {
				mf.Steps = append(mf.Steps, install.Step{Link: f.Path, Target: f.Link})
				continue
			}
			data, err := f.Data()
			if err != nil {
				return "", err
			}
			name, err := s.uploadNext(data)
			if err != nil {
				return "", err
			}
			mf.Steps = append(mf.Steps, install.Step{File: f.Path, Source: name, Mode: f.FileMode(), Owner: owner(f.Owner, f.Group)})
		}
		for _, p := range r.Remove {
			mf.Steps = append(mf.Steps, install.Step{Absent: p})
		}
	}
	for i, a := range s.cfg.ImageArchives {
		src, err := s.uploadFile(a, fmt.Sprintf("image-%03d", i+1))
		if err != nil {
			return "", err
		}
		mf.Steps = append(mf.Steps, install.Step{File: path.Join(images.ArchiveDir, filepath.Base(a)), Source: src})
	}
	mf.Steps = append(mf.Steps, install.Step{File: s.recipe.AgentPath, Source: staged, Mode: 0o755})
	data, err := json.Marshal(mf)
	if err != nil {
		return "", err
	}
	if err := s.upload("manifest.json", data); err != nil {
		return "", err
	}
	return fmt.Sprintf("chmod 0755 %s\n%s install \"$STAGING/manifest.json\"\n", quote(staged), quote(staged)), nil
}

func (s *session) unitsStep() (string, error) {
	var b strings.Builder
	for _, r := range s.roles {
		for _, u := range r.Enable {
			fmt.Fprintf(&b, "ensure_enabled %s\n", quote(u))
		}
	}
	for _, u := range s.recipe.Disable {
		fmt.Fprintf(&b, "ensure_disabled %s\n", quote(u))
	}
	return b.String(), nil
}

func owner(user, group string) string {
	if user == "" {
		user = "root"
	}
	if group == "" {
		group = "root"
	}
	return user + ":" + group
}

// script uploads a step script and runs it with execute_command, streaming its output
// to the UI and counting the changes it reports.
func (s *session) script(name, body string) error {
	full := fmt.Sprintf("STAGING=%s\n. \"$STAGING/lib.sh\"\n%s", quote(s.cfg.StagingDirectory), body)
	if err := s.upload(name, []byte(full)); err != nil {
		return err
	}
	ictx := s.cfg.ctx
	ictx.Data = &struct{ Path string }{path.Join(s.cfg.StagingDirectory, name)}
	command, err := interpolate.Render(s.cfg.ExecuteCommand, &ictx)
	if err != nil {
		return fmt.Errorf("execute_command: %w", err)
	}
	counter := &changeCounter{}
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: counter}
	if err := cmd.RunWithUi(s.ctx, s.comm, s.ui); err != nil {
		return err
	}
	s.changes += counter.n
	if st := cmd.ExitStatus(); st != 0 {
		return fmt.Errorf("%s exited with status %d", name, st)
	}
	return nil
}

// plain runs a command as the communicator's user, without execute_command, and
// returns its output.
func (s *session) plain(command string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &stdout, Stderr: &stderr}
	if err := s.comm.Start(s.ctx, cmd); err != nil {
		return "", err
	}
	if st := cmd.Wait(); st != 0 {
		return "", fmt.Errorf("%q exited with status %d: %s", firstLine(command), st, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (s *session) upload(name string, data []byte) error {
	dst := path.Join(s.cfg.StagingDirectory, name)
	if err := s.comm.Upload(dst, bytes.NewReader(data), nil); err != nil {
		return fmt.Errorf("uploading %s: %w", dst, err)
	}
	return nil
}

// uploadFile uploads a local file to the staging directory under name and returns
// its remote path.
func (s *session) uploadFile(local, name string) (string, error) {
	f, err := os.Open(local)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	dst := path.Join(s.cfg.StagingDirectory, name)
	s.ui.Say(fmt.Sprintf("uploading %s (%d bytes)", local, fi.Size()))
	if err := s.comm.Upload(dst, f, &fi); err != nil {
		return "", fmt.Errorf("uploading %s: %w", local, err)
	}
	return dst, nil
}

// uploadNext uploads a recipe file under a numbered name and returns its remote path.
func (s *session) uploadNext(data []byte) (string, error) {
	s.uploads++
	name := fmt.Sprintf("file-%03d", s.uploads)
	return path.Join(s.cfg.StagingDirectory, name), s.upload(name, data)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// changeCounter counts the changes a step reports: lib.sh's "changed: " lines and the
// agent's indented lines (one per change; its summary line is not indented).
type changeCounter struct {
	partial []byte
	n       int
}

func (c *changeCounter) Write(p []byte) (int, error) {
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := c.partial[:i]; bytes.HasPrefix(line, []byte("changed: ")) || bytes.HasPrefix(line, []byte("appliance-agent:   ")) {
			c.n++
		}
		c.partial = c.partial[i+1:]
	}
}

// quote makes s one word for sh.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = quote(w)
	}
	return strings.Join(q, " ")
}
