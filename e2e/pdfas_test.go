package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// standinWarPage is what the stand-in pdf-as-web war serves (a static page: the real
// war cannot be fetched here).
const standinWarPage = "pdf-as-web stand-in (e2e fixture, not pdf-as)"

// pdfasSite is what the e2e gives pdf-as: the Tomcat stand-in base (make
// standin-tomcat, baked into the image) pinned by its image ID, and a host server
// with a stand-in war and configuration.
type pdfasSite struct {
	section string // the ecs.pdfas section of env.yml
}

// newPDFASSite serves the downloads on the host's loopback (the guest's 10.0.2.2).
// Without the Tomcat archive (ECS_E2E_TOMCAT, set by make e2e) it fails under CI and
// returns nil elsewhere.
func newPDFASSite(t testing.TB) *pdfasSite {
	archive := os.Getenv("ECS_E2E_TOMCAT")
	if archive == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ECS_E2E_TOMCAT is not set: make e2e builds the Tomcat stand-in base and sets it")
		}
		t.Log("ECS_E2E_TOMCAT is not set: pdf-as is not checked")
		return nil
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := img.ConfigName() // docker's image ID after docker load
	if err != nil {
		t.Fatal(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil || len(m) != 1 || len(m[0].RepoTags) != 1 {
		t.Fatalf("%s: one tagged image expected: %v", archive, err)
	}
	war := zipOf(t, map[string]string{"index.html": "<html><body>" + standinWarPage + "</body></html>\n"})
	cfg := zipOf(t, map[string]string{"cfg/config.properties": "# stand-in configuration\n"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pdf-as-web.war":
			w.Write(war)
		case "/defaultConfig.zip":
			w.Write(cfg)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	guest := strings.Replace(srv.URL, "127.0.0.1", "10.0.2.2", 1)
	return &pdfasSite{section: fmt.Sprintf("  pdfas:\n    base: %s@%s\n    war:\n      url: %s/pdf-as-web.war\n      sha256: %s\n    config:\n      url: %s/defaultConfig.zip\n      sha256: %s\n",
		m[0].RepoTags[0], id, guest, hexSum(war), guest, hexSum(cfg))}
}

func (p *pdfasSite) edit(t testing.TB, s string) string {
	if p == nil {
		return s
	}
	return replace(t, s, "  userswitcher:\n", p.section+"  userswitcher:\n")
}

func zipOf(t testing.TB, files map[string]string) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for name, content := range files {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(content))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// check: pdf-as-web answers at https://<domain>/pdf-as-web/ through nginx, with its
// settings for the domain, the certificate nginx serves in its JVM's trust store, its
// memory limit and CPU shares, and port 5095 on loopback only. It returns when the container started.
func (p *pdfasSite) check(t testing.TB, b *booted, w *webClient) (started string) {
	if p == nil {
		return ""
	}
	begin := time.Now()
	waitFor(t, "pdf-as-web page through nginx", 6*time.Minute, func() (bool, string) {
		body, code, err := get(w.withCert, "https://"+domain+"/pdf-as-web/")
		return err == nil && code == 200 && strings.Contains(body, standinWarPage), fmt.Sprintf("%d %v %.200q", code, err, body)
	})
	t.Logf("pdf-as-web answered through nginx %s after the check began", time.Since(begin).Round(time.Second))
	if st := b.ssh(t, "systemctl is-active appliance-pdfas.service || true"); st != "active\n" {
		t.Errorf("appliance-pdfas.service: %q", st)
	}
	props := b.ssh(t, "docker exec ecs-pdfas-1 cat /app/pdf-as-web/pdf-as-web.properties")
	for _, want := range []string{"public.url=https://" + domain + "/pdf-as-web\n", `whitelist.url.01=^https://` + strings.ReplaceAll(domain, ".", `\\.`) + "/.*$\n"} {
		if !strings.Contains(props, want) {
			t.Errorf("pdf-as-web.properties in the container lacks %q:\n%s", want, props)
		}
	}
	if cfg := b.ssh(t, "docker exec ecs-pdfas-1 cat /app/pdf-as-web/cfg/config.properties"); !strings.Contains(cfg, "stand-in configuration") {
		t.Errorf("the downloaded configuration is not in the image: %q", cfg)
	}
	sum := sha256.Sum256(parseCert(t, w.serverCert).Raw)
	var fp []string
	for _, c := range sum {
		fp = append(fp, fmt.Sprintf("%02X", c))
	}
	trusted := b.ssh(t, "docker exec ecs-pdfas-1 keytool -list -cacerts -storepass changeit -alias appliance-server")
	if !strings.Contains(trusted, strings.Join(fp, ":")) {
		t.Errorf("the JVM does not trust the certificate nginx serves (SHA-256 %s):\n%s", strings.Join(fp, ":"), trusted)
	}
	if limits := strings.TrimSpace(b.ssh(t, "docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.CPUShares}}' ecs-pdfas-1")); limits != fmt.Sprint(1144<<20, " 256") {
		t.Errorf("pdfas memory limit and CPU shares %s, want 1144m and 256", limits)
	}
	for _, line := range strings.Split(b.ssh(t, "ss -Hltn"), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && strings.HasSuffix(f[3], ":5095") && f[3] != "127.0.0.1:5095" {
			t.Errorf("pdf-as listens on %s, not only on loopback", f[3])
		}
	}
	return p.started(t, b)
}

// unmoved: the updates restarted ECS, not pdf-as.
func (p *pdfasSite) unmoved(t testing.TB, b *booted, before string) {
	if p == nil {
		return
	}
	if now := p.started(t, b); now != before {
		t.Errorf("pdf-as was restarted by the updates of ECS (started %s, now %s)", before, now)
	}
}

func (p *pdfasSite) started(t testing.TB, b *booted) string {
	return strings.TrimSpace(b.ssh(t, "docker inspect -f '{{.State.StartedAt}}' ecs-pdfas-1"))
}
