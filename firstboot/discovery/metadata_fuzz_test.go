package discovery

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzMetadataResponses serves arbitrary status codes and bodies for the IMDSv2
// token and the user-data of EC2, GCE and OpenStack. Whatever comes back, a document
// is found only from a 200 answer, byte for byte, and no reason quotes a body
// (user-data holds secrets).
func FuzzMetadataResponses(f *testing.F) {
	f.Add(200, []byte("token"), 200, []byte("#cloud-config\nappliance: {}\n"))
	f.Add(404, []byte(""), 404, []byte(""))
	f.Add(403, []byte("denied"), 401, []byte("secret-in-error-page"))
	f.Add(200, []byte("  \n"), 500, []byte("<html>oops</html>"))
	f.Add(405, []byte{}, 200, []byte{0xff, 0x00, 0xfe})
	f.Add(200, []byte("t"), 302, []byte("redirect"))
	f.Fuzz(func(t *testing.T, tokenStatus int, token []byte, dataStatus int, data []byte) {
		if tokenStatus < 200 || tokenStatus > 599 || dataStatus < 200 || dataStatus > 599 {
			return // net/http refuses to write other codes
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				w.WriteHeader(tokenStatus)
				w.Write(token)
				return
			}
			w.WriteHeader(dataStatus)
			w.Write(data)
		}))
		defer srv.Close()
		m := newMetadataClient(2 * time.Second)
		defer m.close()
		ctx := context.Background()
		for name, o := range map[string]outcome{"ec2": m.ec2(ctx, srv.URL), "gce": m.gce(ctx, srv.URL), "openstack": m.openstack(ctx, srv.URL)} {
			if o.status == Found && (dataStatus != http.StatusOK || !bytes.Equal(o.doc, data)) {
				t.Errorf("%s: found %q from a %d answer with body %q", name, o.doc, dataStatus, data)
			}
			for _, body := range [][]byte{token, data} {
				if len(bytes.TrimSpace(body)) >= 8 && strings.Contains(o.reason, string(bytes.TrimSpace(body))) {
					t.Errorf("%s: the reason %q quotes a response body", name, o.reason)
				}
			}
		}
	})
}
