package pdfas

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

var pin = "tomcat:9.0-jre8@sha256:" + strings.Repeat("ab", 32)

func withPDFAS(s string) string {
	return strings.Replace(s, "  userswitcher:\n", "  pdfas:\n    base: "+pin+"\n  userswitcher:\n", 1)
}

func TestOffWithoutBase(t *testing.T) {
	c := servicetest.Context(t, nil, services.Facts{})
	if files, err := (Service{}).Files(c); err != nil || len(files) != 0 {
		t.Errorf("files without ecs.pdfas.base: %v %v", files, err)
	}
	if s := (Service{}).Spec(c.Env); len(s.Later) != 0 || len(s.Watch) != 0 {
		t.Errorf("spec without ecs.pdfas.base: %+v", s)
	}
}

func TestFiles(t *testing.T) {
	c := servicetest.Context(t, withPDFAS, services.Facts{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Golden(t, "default", files[:1]) // the properties; the rest is this package's files as they are
	props := string(files[0].Data)
	for _, want := range []string{
		"public.url=https://" + c.Env.Appliance.Domain + "/pdf-as-web\n",
		// Java's properties reader turns \\. into \., the regular expression's dot.
		"whitelist.url.01=^https://" + strings.ReplaceAll(c.Env.Appliance.Domain, ".", `\\.`) + "/.*$\n",
	} {
		if !strings.Contains(props, want) {
			t.Errorf("pdf-as-web.properties lacks %q", want)
		}
	}
	if s := (Service{}).Spec(c.Env); len(s.Later) != 1 || s.Later[0] != Unit || s.Reload != services.Restart {
		t.Errorf("spec: %+v", s)
	}
	testtool.Require(t, "sh")
	if out, err := exec.Command("sh", "-n", "entrypoint.sh").CombinedOutput(); err != nil {
		t.Errorf("sh -n entrypoint.sh: %v\n%s", err, out)
	}
}

// TestImageFollowsPins: the image tag is the same for the same pins and another for
// any other base or download.
func TestImageFollowsPins(t *testing.T) {
	e := &env.Env{}
	e.ECS.PDFAS = env.PDFAS{Base: pin, War: env.Download{SHA256: "1"}, Config: env.Download{SHA256: "2"}}
	first := Image(e)
	if !strings.HasPrefix(first, Repository+":") || Image(e) != first {
		t.Fatalf("Image %q is not stable", first)
	}
	for _, change := range []func(p *env.PDFAS){
		func(p *env.PDFAS) { p.Base = "tomcat:9.0-jre8@sha256:" + strings.Repeat("cd", 32) },
		func(p *env.PDFAS) { p.War.SHA256 = "3" },
		func(p *env.PDFAS) { p.Config.SHA256 = "3" },
	} {
		other := *e
		change(&other.ECS.PDFAS)
		if Image(&other) == first {
			t.Errorf("%+v makes the same image as %+v", other.ECS.PDFAS, e.ECS.PDFAS)
		}
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFetch: a download is kept only with the env's checksum, is not fetched again
// once there, and errors name the URL without its password.
func TestFetch(t *testing.T) {
	war := []byte("the war")
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		if r.URL.Path != "/pdf-as-web.war" {
			http.NotFound(w, r)
			return
		}
		w.Write(war)
	}))
	defer srv.Close()
	c := servicetest.Context(t, withPDFAS, services.Facts{})
	b := &builder{m: c.M, client: srv.Client()}
	name := filepath.Join(Dir, warName)
	ctx := context.Background()

	u := strings.Replace(srv.URL, "http://", "http://admin:s3cret@", 1) + "/pdf-as-web.war"
	_, err := b.fetch(ctx, env.Download{URL: u, SHA256: sum([]byte("another war"))}, name)
	if err == nil || !strings.Contains(err.Error(), "has SHA-256 "+sum(war)) || !strings.Contains(err.Error(), "admin:xxxxx@") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("wrong checksum: %v", err)
	}
	if entries, _ := os.ReadDir(c.M.Path(Dir)); len(entries) != 0 {
		t.Errorf("a refused download left %v", entries)
	}
	if _, err := b.fetch(ctx, env.Download{URL: srv.URL + "/missing.war", SHA256: sum(war)}, name); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("missing file: %v", err)
	}

	good := env.Download{URL: srv.URL + "/pdf-as-web.war", SHA256: sum(war)}
	p, err := b.fetch(ctx, good, name)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, war) {
		t.Errorf("downloaded %q", got)
	}
	before := requests
	if _, err := b.fetch(ctx, good, name); err != nil || requests != before {
		t.Errorf("a file already there was fetched again (%d requests, %v)", requests-before, err)
	}
}

func writeZip(t *testing.T, entries map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := zip.NewWriter(f)
	for name, content := range entries {
		fw, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(content))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestUnzip: the configuration replaces the directory whole; an archive with an
// entry outside it is refused and the directory kept.
func TestUnzip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if err := unzip(writeZip(t, map[string]string{"cfg/config.properties": "a=1\n", "cfg/": ""}), dir); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "cfg/config.properties")); err != nil || string(got) != "a=1\n" {
		t.Fatalf("extracted %q %v", got, err)
	}
	for _, evil := range []string{"../outside", "/etc/passwd", "cfg/../../outside"} {
		err := unzip(writeZip(t, map[string]string{"cfg/other": "b", evil: "x"}), dir)
		if err == nil || !strings.Contains(err.Error(), "not inside the archive's directory") {
			t.Errorf("%s: %v", evil, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cfg/config.properties")); err != nil {
		t.Errorf("a refused archive changed the directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside")); err == nil {
		t.Error("an entry was written outside the directory")
	}
}

// TestWhitelistInJava: Java reads the whitelist as a pattern that accepts only URLs
// on the appliance's own domain (the original's ^https://HOSTNAME.*$ also accepted
// https://HOSTNAME.elsewhere.example/).
func TestWhitelistInJava(t *testing.T) {
	testtool.Require(t, "java", "javac") // java runs a source file with the JDK's compiler
	c := servicetest.Context(t, withPDFAS, services.Facts{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	props := filepath.Join(t.TempDir(), "pdf-as-web.properties")
	if err := os.WriteFile(props, files[0].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := c.Env.Appliance.Domain
	want := map[string]string{
		"https://" + d + "/pdf/1":                               "true",
		"https://" + d + ".elsewhere.example/pdf/1":             "false",
		"https://" + strings.Replace(d, ".", "x", 1) + "/pdf/1": "false",
		"http://" + d + "/pdf/1":                                "false",
	}
	args := []string{"testdata/Whitelist.java", props}
	for u := range want {
		args = append(args, u)
	}
	out, err := exec.Command("java", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		u, got, _ := strings.Cut(line, " ")
		if want[u] != got {
			t.Errorf("whitelist on %s: %s, want %s", u, got, want[u])
		}
		delete(want, u)
	}
	if len(want) != 0 {
		t.Errorf("java did not answer for %v:\n%s", want, out)
	}
}

// fakeDocker puts a docker on PATH that logs its arguments and answers from script
// (a shell case body over "$*"), to test the builder's decisions; the real docker
// runs them in the e2e.
func fakeDocker(t *testing.T, script string) (log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "log")
	body := "#!/bin/sh\necho \"$*\" >> " + log + "\ncase \"$*\" in\n" + script + "\n*) exit 0 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return log
}

// TestBase: the pinned ID is used when docker has it; else the name is pulled, and
// an image with another ID is refused, saying both.
func TestBase(t *testing.T) {
	c := servicetest.Context(t, withPDFAS, services.Facts{})
	name, id, _ := strings.Cut(pin, "@")
	b := &builder{m: c.M, p: c.Env.ECS.PDFAS}
	ctx := context.Background()

	log := fakeDocker(t, `"image inspect --format {{.Id}} `+id+`") echo `+id+` ;;`)
	local, err := b.base(ctx)
	if err != nil || local != baseRepository+":"+strings.Repeat("ab", 8) {
		t.Fatalf("base with the pinned image here: %q %v", local, err)
	}
	calls, _ := os.ReadFile(log)
	if strings.Contains(string(calls), "pull") || !strings.Contains(string(calls), "tag "+id+" "+local) {
		t.Errorf("docker calls:\n%s", calls)
	}

	log = fakeDocker(t, `"image inspect --format {{.Id}} `+id+`") exit 1 ;;
"image inspect --format {{.Id}} `+name+`") echo sha256:`+strings.Repeat("cd", 32)+` ;;`)
	_, err = b.base(ctx)
	if err == nil || !strings.Contains(err.Error(), name+" pulled as sha256:"+strings.Repeat("cd", 32)+", but ecs.pdfas.base pins "+id) {
		t.Errorf("a pulled image with another ID: %v", err)
	}
	if calls, _ := os.ReadFile(log); !strings.Contains(string(calls), "pull -q "+name) || strings.Contains(string(calls), "tag ") {
		t.Errorf("docker calls:\n%s", calls)
	}

	fakeDocker(t, `"image inspect --format {{.Id}} `+id+`") exit 1 ;;
"pull -q `+name+`") echo "no route to registry" >&2; exit 1 ;;`)
	if _, err = b.base(ctx); err == nil || !strings.Contains(err.Error(), "air-gapped") || !strings.Contains(err.Error(), "no route to registry") {
		t.Errorf("a failed pull: %v", err)
	}
}

// TestRemoveOld: after a build, the images of earlier pins are untagged, the new one
// and its base kept.
func TestRemoveOld(t *testing.T) {
	c := servicetest.Context(t, withPDFAS, services.Facts{})
	b := &builder{m: c.M, image: Repository + ":new"}
	log := fakeDocker(t, `"image ls --format {{.Repository}}:{{.Tag}} `+Repository+`") printf '%s\n' `+Repository+`:old `+Repository+`:new ;;
"image ls --format {{.Repository}}:{{.Tag}} `+baseRepository+`") printf '%s\n' `+baseRepository+`:old `+baseRepository+`:cur ;;`)
	b.removeOld(context.Background(), baseRepository+":cur")
	calls, _ := os.ReadFile(log)
	var removed []string
	for _, line := range strings.Split(string(calls), "\n") {
		if ref, ok := strings.CutPrefix(line, "image rm "); ok {
			removed = append(removed, ref)
		}
	}
	if strings.Join(removed, " ") != Repository+":old "+baseRepository+":old" {
		t.Errorf("removed %v", removed)
	}
}
