package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// imds emulates the EC2 instance metadata service. By default it is IMDSv2-only
// (HttpTokens=required): a GET without a valid token gets 401.
type imds struct {
	refusePut    int  // answer the token PUT with this status (an IMDSv1-only service)
	expireOnce   bool // answer the first valid token with 401, as if it had expired
	expireAlways bool // answer every token with 401
	userData     string
	getStatus    int // answer user-data GETs with this status instead

	mu     sync.Mutex
	tokens map[string]bool
	puts   int
	gets   []string // the token header of each GET
}

func (s *imds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		s.puts++
		if s.refusePut != 0 {
			w.WriteHeader(s.refusePut)
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		token := fmt.Sprintf("token-%d", s.puts)
		if s.tokens == nil {
			s.tokens = map[string]bool{}
		}
		s.tokens[token] = true
		_, _ = w.Write([]byte(token))
	case r.Method == http.MethodGet && r.URL.Path == "/latest/user-data":
		token := r.Header.Get("X-aws-ec2-metadata-token")
		s.gets = append(s.gets, token)
		if s.refusePut == 0 {
			if !s.tokens[token] || s.expireAlways {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if s.expireOnce {
				s.expireOnce = false
				delete(s.tokens, token)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		switch {
		case s.getStatus != 0:
			w.WriteHeader(s.getStatus)
		case s.userData == "":
			w.WriteHeader(http.StatusNotFound)
		default:
			_, _ = w.Write([]byte(s.userData))
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// metadataOptions allows the given sources, each served by the handler given.
func metadataOptions(t testing.TB, sources map[string]http.Handler, order ...string) Options {
	opt := options(t.TempDir(), order...)
	for name, h := range sources {
		u := serve(t, h)
		switch name {
		case "ec2":
			opt.Config.Endpoints.EC2 = u
		case "gce":
			opt.Config.Endpoints.GCE = u
		case "openstack":
			opt.Config.Endpoints.OpenStack = u
		}
	}
	return opt
}

func TestEC2IMDSv2(t *testing.T) {
	s := &imds{userData: doc("ec2")}
	opt := metadataOptions(t, map[string]http.Handler{"ec2": s}, "ec2")
	mustFind(t, opt, "ec2", opt.Config.Endpoints.EC2+"/latest/user-data", doc("ec2"))
	if s.puts != 1 || !slices.Equal(s.gets, []string{"token-1"}) {
		t.Fatalf("puts %d, GET tokens %q; want one token, sent with the GET", s.puts, s.gets)
	}
	// the emulator really insists on the token
	resp, err := http.Get(opt.Config.Endpoints.EC2 + "/latest/user-data")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a GET without token got %d, want 401", resp.StatusCode)
	}
}

// A token that expired between PUT and GET is fetched again once.
func TestEC2TokenRefreshedOnce(t *testing.T) {
	s := &imds{userData: doc("ec2"), expireOnce: true}
	opt := metadataOptions(t, map[string]http.Handler{"ec2": s}, "ec2")
	mustFind(t, opt, "ec2", "", doc("ec2"))
	if s.puts != 2 || !slices.Equal(s.gets, []string{"token-1", "token-2"}) {
		t.Fatalf("puts %d, GET tokens %q; want a second token after the 401", s.puts, s.gets)
	}

	s = &imds{userData: doc("ec2"), expireAlways: true}
	opt = metadataOptions(t, map[string]http.Handler{"ec2": s}, "ec2")
	res, _ := discover(t, opt)
	wantReport(t, res, "ec2", Failed, "HTTP 401 Unauthorized")
	if s.puts != 2 || len(s.gets) != 2 {
		t.Fatalf("puts %d, gets %d; want exactly one refresh", s.puts, len(s.gets))
	}
}

// A service that refuses the token PUT is asked the IMDSv1 way, without a token.
func TestEC2FallsBackToIMDSv1(t *testing.T) {
	for _, code := range []int{http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed} {
		s := &imds{refusePut: code, userData: doc("ec2 v1")}
		opt := metadataOptions(t, map[string]http.Handler{"ec2": s}, "ec2")
		mustFind(t, opt, "ec2", "", doc("ec2 v1"))
		if !slices.Equal(s.gets, []string{""}) {
			t.Fatalf("PUT %d: GET tokens %q, want one GET without token", code, s.gets)
		}
	}
}

func TestEC2Errors(t *testing.T) {
	cases := []struct {
		s      *imds
		status Status
		reason string
	}{
		{&imds{}, Absent, "no user data (HTTP 404 Not Found)"},
		{&imds{getStatus: http.StatusInternalServerError}, Failed, "HTTP 500 Internal Server Error"},
		{&imds{refusePut: http.StatusInternalServerError}, Failed, "IMDSv2 token: HTTP 500"},
		{&imds{refusePut: http.StatusNotFound, getStatus: http.StatusUnauthorized}, Failed, "wants an IMDSv2 token but did not issue one"},
	}
	for _, c := range cases {
		// the next source is tried after ec2's problem
		opt := metadataOptions(t, map[string]http.Handler{"ec2": c.s, "openstack": openstackServer(doc("openstack"))}, "ec2", "openstack")
		res := mustFind(t, opt, "openstack", "", doc("openstack"))
		wantReport(t, res, "ec2", c.status, c.reason)
		if strings.Contains(reports(res), "token-") {
			t.Fatalf("a token leaked into the reports:\n%s", reports(res))
		}
	}
}

// gceServer answers only with Metadata-Flavor: Google, as the real one does.
func gceServer(userData string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Metadata-Flavor") != "Google":
			w.WriteHeader(http.StatusForbidden)
		case r.URL.Path != "/computeMetadata/v1/instance/attributes/user-data" || userData == "":
			w.WriteHeader(http.StatusNotFound)
		default:
			w.Header().Set("Metadata-Flavor", "Google")
			_, _ = w.Write([]byte(userData))
		}
	})
}

func openstackServer(userData string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/openstack/latest/user_data" || userData == "" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(userData))
	})
}

func TestGCE(t *testing.T) {
	opt := metadataOptions(t, map[string]http.Handler{"gce": gceServer(doc("gce"))}, "gce")
	mustFind(t, opt, "gce", opt.Config.Endpoints.GCE+"/computeMetadata/v1/instance/attributes/user-data", doc("gce"))
	resp, err := http.Get(opt.Config.Endpoints.GCE + "/computeMetadata/v1/instance/attributes/user-data")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a GET without Metadata-Flavor got %d, want 403", resp.StatusCode)
	}

	opt = metadataOptions(t, map[string]http.Handler{"gce": gceServer(""), "openstack": openstackServer(doc("os"))}, "gce", "openstack")
	res := mustFind(t, opt, "openstack", "", doc("os"))
	wantReport(t, res, "gce", Absent, "HTTP 404")
}

func TestOpenStack(t *testing.T) {
	opt := metadataOptions(t, map[string]http.Handler{"openstack": openstackServer(doc("openstack"))}, "openstack")
	mustFind(t, opt, "openstack", opt.Config.Endpoints.OpenStack+"/openstack/latest/user_data", doc("openstack"))

	opt = metadataOptions(t, map[string]http.Handler{"openstack": openstackServer("")}, "openstack")
	res, err := discover(t, opt)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	wantReport(t, res, "openstack", Absent, "HTTP 404")
}

// Answers that are too large, empty or redirected are errors; a redirect is not followed.
func TestBadAnswers(t *testing.T) {
	big := strings.Repeat("x", MaxDocumentSize+1)
	var redirected atomic.Int32
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		_, _ = w.Write([]byte(doc("elsewhere")))
	}))
	cases := []struct {
		h      http.HandlerFunc
		reason string
	}{
		{func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(big)) }, "larger than 1048576 bytes"},
		{func(w http.ResponseWriter, r *http.Request) {
			// chunked, so the size is known only while reading
			_, _ = w.Write([]byte(big[:1000]))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte(big[1000:]))
		}, "larger than 1048576 bytes"},
		{func(w http.ResponseWriter, r *http.Request) {}, "document is empty"},
		{func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target+"/openstack/latest/user_data", http.StatusFound)
		}, "HTTP 302 Found"},
	}
	for _, c := range cases {
		opt := metadataOptions(t, map[string]http.Handler{"openstack": c.h}, "openstack")
		res, err := discover(t, opt)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		wantReport(t, res, "openstack", Failed, c.reason)
	}
	if redirected.Load() != 0 {
		t.Fatal("a redirect was followed")
	}
}

// Nothing listens: every metadata source fails at once with "connection refused".
func TestNoMetadataServer(t *testing.T) {
	opt := options(t.TempDir(), "ec2", "gce", "openstack")
	opt.Config.Budget = time.Second
	start := time.Now()
	res, err := discover(t, opt)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("took %s with a budget of 1s", elapsed)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	for _, s := range []string{"ec2", "gce", "openstack"} {
		wantReport(t, res, s, Failed, "connection refused")
	}
}

// hang never answers until the client goes away.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// A server that never answers cannot hold discovery beyond its budget; it is reported
// as an error, and the sources after it as not tried.
func TestBudgetBoundsDiscovery(t *testing.T) {
	slow := http.HandlerFunc(hang)
	opt := metadataOptions(t, map[string]http.Handler{"ec2": slow, "gce": slow, "openstack": slow}, "ec2", "gce", "openstack")
	opt.Config.Budget = time.Second
	start := time.Now()
	res, err := discover(t, opt)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("took %s with a budget of 1s", elapsed)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	wantReport(t, res, "ec2", Failed, "budget ran out")
	wantReport(t, res, "gce", Failed, "not tried: the discovery budget of 1s is used up")
	wantReport(t, res, "openstack", Failed, "not tried")
}

// One silent service costs one request timeout, and the next source still gets its turn.
func TestRequestTimeout(t *testing.T) {
	opt := metadataOptions(t, map[string]http.Handler{"ec2": http.HandlerFunc(hang), "gce": gceServer(doc("gce"))}, "ec2", "gce")
	opt.RequestTimeout = 100 * time.Millisecond
	res := mustFind(t, opt, "gce", "", doc("gce"))
	wantReport(t, res, "ec2", Failed, "IMDSv2 token: no answer within 100ms")
}

func TestCallerCancellation(t *testing.T) {
	opt := metadataOptions(t, map[string]http.Handler{"openstack": http.HandlerFunc(hang)}, "openstack")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	res, _ := Discover(ctx, opt)
	wantReport(t, res, "openstack", Failed, "discovery was cancelled")
}

func TestEndpointWithPasswordIsRedacted(t *testing.T) {
	opt := metadataOptions(t, map[string]http.Handler{"openstack": openstackServer("")}, "openstack")
	opt.Config.Endpoints.OpenStack = strings.Replace(opt.Config.Endpoints.OpenStack, "http://", "http://user:pw-xyz@", 1)
	res, err := discover(t, opt)
	if strings.Contains(reports(res)+err.Error(), "pw-xyz") {
		t.Fatalf("password in reports:\n%s", reports(res))
	}
	wantReport(t, res, "openstack", Absent, "HTTP 404")
}
