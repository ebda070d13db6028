package status

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

func TestPublishEscapesAndReadsBack(t *testing.T) {
	root := t.TempDir()
	s := Status{State: Error, Title: "Appliance Error", Message: `storage: <script>alert("x")</script> & more`,
		Phase: "storage", Domain: "ecs.example.org", Time: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		Services:    []services.State{{Name: "nginx", State: "failed", Note: "<b>bad</b>"}},
		Certificate: &services.Certificate{Source: "self-signed", NotAfter: time.Date(2027, 11, 24, 12, 0, 0, 0, time.UTC), Notice: "ACME failed"}}
	if err := Publish(root, s); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(root, PagePath))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(html), "<script>") || !strings.Contains(string(html), "&lt;script&gt;") {
		t.Errorf("message not escaped:\n%s", html)
	}
	for _, want := range []string{"<title>Appliance Error · ecs.example.org</title>", `class="state-error"`, "<dd>storage</dd>", "2026-11-24 12:00:00 UTC",
		"<td>nginx</td><td>failed</td><td>&lt;b&gt;bad&lt;/b&gt;</td>", "self-signed, valid until 2027-11-24", "<strong>ACME failed</strong>"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	got, err := Read(root)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("Read = %+v, %v; want %+v", got, err, s)
	}
}

func TestRunningRemovesThePage(t *testing.T) {
	root := t.TempDir()
	if err := Publish(root, Status{State: Starting, Title: "Appliance Startup", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := Publish(root, Status{State: Running, Title: "Appliance Running", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, PagePath)); !os.IsNotExist(err) {
		t.Errorf("page still there: %v", err)
	}
	if s, err := Read(root); err != nil || s.State != Running {
		t.Errorf("json: %+v %v", s, err)
	}
}
