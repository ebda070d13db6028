// Package sentrytest is a Sentry receiver for tests: an HTTP server on loopback that
// takes envelopes at /api/42/envelope/ as a Sentry server does and keeps their events.
package sentrytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Event is the part of a Sentry event the tests look at.
type Event struct {
	Message string            `json:"message"`
	Level   string            `json:"level"`
	Release string            `json:"release"`
	Logger  string            `json:"logger"`
	Tags    map[string]string `json:"tags"`
}

// Receiver is a running receiver.
type Receiver struct {
	DSN    string // http://publickey@HOST:PORT/42
	srv    *httptest.Server
	mu     sync.Mutex
	raw    []string
	auth   []string
	refuse int
}

// Start runs a receiver on 127.0.0.1, closed at cleanup.
func Start(t testing.TB) *Receiver {
	return StartOn(t, "127.0.0.1:0")
}

// StartOn runs a receiver on addr (e.g. 0.0.0.0:0 for a VM that reaches the host).
func StartOn(t testing.TB, addr string) *Receiver {
	r := &Receiver{}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(r.serve)}}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	r.DSN = "http://publickey@" + l.Addr().String() + "/42"
	return r
}

// Refuse makes the receiver answer code to every request.
func (r *Receiver) Refuse(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse = code
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	refuse := r.refuse
	if refuse == 0 && req.URL.Path == "/api/42/envelope/" {
		r.raw = append(r.raw, string(body))
		r.auth = append(r.auth, req.Header.Get("X-Sentry-Auth"))
	}
	r.mu.Unlock()
	if refuse != 0 {
		http.Error(w, "refused by the test", refuse)
		return
	}
	w.Write([]byte(`{"id":"0"}`))
}

// Raw is every envelope received, as sent.
func (r *Receiver) Raw() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.raw, "\n")
}

// Events are the events of the envelopes received.
func (r *Receiver) Events(t testing.TB) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var events []Event
	for _, env := range r.raw {
		// An envelope: its header line, then item header and payload lines.
		sc := bufio.NewScanner(strings.NewReader(env))
		sc.Buffer(nil, 1<<24)
		sc.Scan()
		for sc.Scan() {
			var item struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(sc.Bytes(), &item) != nil || !sc.Scan() {
				break
			}
			if item.Type != "event" {
				continue
			}
			var ev Event
			if err := json.NewDecoder(bytes.NewReader(sc.Bytes())).Decode(&ev); err != nil {
				t.Fatalf("sentrytest: event payload: %v", err)
			}
			events = append(events, ev)
		}
	}
	return events
}

var keyField = regexp.MustCompile(`sentry_key=([^,\s]+)`)

// Key is the sentry_key of the last request's X-Sentry-Auth header.
func (r *Receiver) Key(t testing.TB) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.auth) == 0 {
		t.Fatal("sentrytest: no request")
	}
	m := keyField.FindStringSubmatch(r.auth[len(r.auth)-1])
	if m == nil {
		return ""
	}
	return m[1]
}
