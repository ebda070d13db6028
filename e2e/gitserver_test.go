package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// gitServer serves bare repositories over git's dumb HTTP protocol on the host's
// loopback, which the VM reaches at 10.0.2.2 on QEMU's user network.
type gitServer struct {
	dir     string
	port    string
	srv     *http.Server
	mu      sync.Mutex
	isDown  bool
	refused int // requests while down
}

func newGitServer(t testing.TB) *gitServer {
	g := &gitServer{dir: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, g.port, _ = net.SplitHostPort(l.Addr().String())
	files := http.FileServer(http.Dir(g.dir))
	g.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		down := g.isDown
		if down {
			g.refused++
		}
		g.mu.Unlock()
		if down {
			http.Error(w, "the e2e git server is down", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	})}
	go g.srv.Serve(l)
	t.Cleanup(g.stop)
	return g
}

func (g *gitServer) stop() { g.srv.Close() }

// down makes the server refuse every request (or serve again) and returns how many
// it refused since it went down.
func (g *gitServer) down(on bool) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.refused
	g.isDown, g.refused = on, 0
	return n
}

// guestURL is a repository's URL as the VM sees it.
func (g *gitServer) guestURL(name string) string {
	return "http://10.0.2.2:" + g.port + "/" + name + ".git"
}

// gitRepo is a work tree whose commits are pushed to the server's bare repository.
type gitRepo struct {
	work, bare string
}

// repo makes a repository on the server with the content of src as its first commit
// on branch main, and returns it with that commit.
func (g *gitServer) repo(t testing.TB, name, src string) (*gitRepo, string) {
	r := &gitRepo{work: filepath.Join(t.TempDir(), name), bare: filepath.Join(g.dir, name+".git")}
	run(t, "cp", "-a", src, r.work)
	gitIn(t, r.work, "init", "-q", "-b", "main")
	gitIn(t, "", "init", "-q", "--bare", "-b", "main", r.bare)
	gitIn(t, r.work, "remote", "add", "origin", r.bare)
	return r, r.commit(t, "", "initial version")
}

// commit copies overlay (a directory, or "" for none) over the work tree, commits
// everything, pushes, and returns the commit.
func (r *gitRepo) commit(t testing.TB, overlay, msg string) string {
	if overlay != "" {
		run(t, "cp", "-a", overlay+"/.", r.work)
	}
	gitIn(t, r.work, "add", "-A")
	gitIn(t, r.work, "commit", "-q", "-m", msg)
	gitIn(t, r.work, "push", "-q", "origin", "main")
	// The dumb protocol reads info/refs, which only this writes.
	gitIn(t, r.bare, "update-server-info")
	return strings.TrimSpace(gitIn(t, r.work, "rev-parse", "HEAD"))
}

// revert reverts the last commit and pushes.
func (r *gitRepo) revert(t testing.TB) {
	gitIn(t, r.work, "revert", "--no-edit", "HEAD")
	gitIn(t, r.work, "push", "-q", "origin", "main")
	gitIn(t, r.bare, "update-server-info")
}

func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.org",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
