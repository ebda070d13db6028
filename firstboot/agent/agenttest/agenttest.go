// Package agenttest makes machine trees for the tests of the agent and its command:
// a root directory with an env.yml, agent settings and accounts, as a VM would have.
package agenttest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// SSHKey is the key the template env authorizes.
const SSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@example.org"

// NewRoot makes a machine tree whose env.yml is /app/env.yml (env/testdata's
// template env, changed by edit if given), with storage on the root filesystem, the
// state store on a free loopback port, and discovery limited to local files (no host
// disks, no network).
func NewRoot(t testing.TB, edit func(string) string) string {
	t.Helper()
	root := t.TempDir()
	_, here, _, _ := runtime.Caller(0)
	envText, err := os.ReadFile(filepath.Join(filepath.Dir(here), "../../../env/testdata/template-env.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(envText), "ssh_deprecated_keys:\n", "ssh_deprecated_keys:\n  - ssh-rsa AAAAold old@example.org\n", 1)
	s = strings.Replace(s, "  backup:\n", "  cluster:\n    bind: "+testtool.FreeAddress(t)+"\n  backup:\n", 1)
	if edit != nil {
		s = edit(s)
	}
	uid, gid := os.Getuid(), os.Getgid()
	files := map[string]string{
		"app/env.yml":               s,
		"etc/appliance/agent.yml":   "sources: [env-file, local]\n",
		"etc/passwd":                fmt.Sprintf("root:x:%d:%d:root:/root:/bin/bash\napp:x:%d:%d::/app:/bin/bash\npostgres:x:%d:%d::/var/lib/postgresql:/bin/bash\nopendkim:x:%d:%d::/run/opendkim:/usr/sbin/nologin\nredis:x:%d:%d::/var/lib/redis:/usr/sbin/nologin\nprometheus:x:%d:%d::/var/lib/prometheus:/usr/sbin/nologin\n", uid, gid, uid, gid, uid, gid, uid, gid, uid, gid, uid, gid),
		"etc/group":                 fmt.Sprintf("root:x:%d:\napp:x:%d:\npostgres:x:%d:\nopendkim:x:%d:\nredis:x:%d:\nprometheus:x:%d:\n", gid, gid, gid, gid, gid, gid),
		"root/.ssh/authorized_keys": "ssh-rsa AAAAold old@example.org\nssh-ed25519 AAAAkeep keep@example.org\n",
	}
	// The PostgreSQL version the tree has is the host's: its server checks the render.
	if pg := hostPostgres(t); pg != "" {
		files[pg[1:]] = ""
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// hostPostgres is the path of the host's newest PostgreSQL server binary.
func hostPostgres(t testing.TB) string {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		testtool.Missing(t, "no PostgreSQL server in /usr/lib/postgresql (make test installs it)")
		return ""
	}
	return bins[len(bins)-1]
}
