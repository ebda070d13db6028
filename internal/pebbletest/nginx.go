package pebbletest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// Webroot is a running nginx serving a webroot's ACME challenges over http.
type Webroot struct {
	Port      int    // on 127.0.0.1: Options.HTTPPort
	AccessLog string // nginx's access log
}

// ServeWebroot runs Debian's nginx (as on the appliance) in the foreground, killed
// at cleanup, serving the challenge directory of webroot as the appliance's nginx
// does.
func ServeWebroot(t testing.TB, webroot string) *Webroot {
	t.Helper()
	nginx := testtool.Require(t, "/usr/sbin/nginx")[0]
	prefix := t.TempDir()
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	addr := testtool.FreeAddress(t)
	port, _ := strconv.Atoi(portOf(addr))
	w := &Webroot{Port: port, AccessLog: filepath.Join(prefix, "access.log")}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log %[2]s;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	default_type text/plain;
	server {
		listen %[3]s;
		location /.well-known/acme-challenge/ { root %[4]s; }
	}
}
`, prefix, w.AccessLog, addr, webroot)
	confFile := filepath.Join(prefix, "nginx.conf")
	writeFile(t, confFile, []byte(conf))
	// -e: the early error log, else nginx opens /var/log/nginx/error.log first.
	p := start(t, prefix, "nginx", exec.Command(nginx, "-p", prefix, "-c", confFile, "-e", filepath.Join(prefix, "error.log")))
	probeDir := filepath.Join(webroot, ".well-known", "acme-challenge")
	if err := os.MkdirAll(probeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(probeDir, "probe")
	writeFile(t, probe, []byte("ready"))
	waitFor(t, p, "nginx", func() error {
		body, err := get(http.DefaultClient, "http://"+addr+"/.well-known/acme-challenge/probe")
		if err == nil && string(body) != "ready" {
			err = fmt.Errorf("probe answered %q", body)
		}
		return err
	})
	if err := os.Remove(probe); err != nil {
		t.Fatal(err)
	}
	return w
}
