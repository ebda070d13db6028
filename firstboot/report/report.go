// Package report sends the appliance's failures (a failed boot phase, backup or
// update, a failed unit) to the Sentry DSN of appliance.sentry.dsn, as the
// original's sentry_entry did: release = the agent's version, site = the domain,
// and the original's tags from the state store. An event carries no value of
// env.yml but the domain: the caller's messages never contain one (the agent's
// errors name keys, not values), and the tags are the fixed list below.
package report

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
)

// Tags are the state tags an event carries, the original's list. ecs_source is
// left out on purpose: it is env.yml's git URL, which may hold a credential.
var Tags = []string{"last_running_ecs", "last_build_ecs", "last_running_appliance", "last_failed_ecs", "last_running_ecs_image"}

// Failure is one failure to report.
type Failure struct {
	Group   string // what failed: "boot", "backup", "update", a unit's name
	Message string
	Level   sentry.Level // "" = error
	// Fingerprint is how Sentry groups the event; empty: by its message.
	Fingerprint []string
}

// Sender sends failures to one DSN.
type Sender struct {
	DSN  string
	Site string            // the appliance's domain
	Tags map[string]string // state tags; only the names in Tags are sent
}

// timeout bounds the delivery of one event.
const timeout = 20 * time.Second

// Send sends f and waits until the server took it. A Sender without a DSN sends
// nothing and says so.
func (s Sender) Send(f Failure) error {
	if s.DSN == "" {
		return errNoDSN
	}
	// The sync transport sends in CaptureEvent but keeps the answer to itself; the
	// recorder sees it, so a failed delivery is an error here.
	rec := &recorder{next: http.DefaultTransport}
	transport := sentry.NewHTTPSyncTransport()
	transport.Timeout = timeout
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:           s.DSN,
		Release:       Version(),
		ServerName:    s.Site,
		HTTPTransport: rec,
		Transport:     transport,
		// Only the event's own fields: no list of the binary's modules.
		Integrations: func([]sentry.Integration) []sentry.Integration { return nil },
	})
	if err != nil {
		return errors.New("appliance.sentry.dsn is not a Sentry DSN")
	}
	level := f.Level
	if level == "" {
		level = sentry.LevelError
	}
	ev := sentry.NewEvent()
	ev.Level, ev.Message, ev.Logger = level, f.Message, "appliance.status"
	ev.Transaction = f.Group // shown as the culprit, the original's $UNITNAME
	ev.Fingerprint = f.Fingerprint
	ev.Tags = map[string]string{"group": f.Group, "site": s.Site}
	for _, name := range Tags {
		if v, ok := s.Tags[name]; ok {
			ev.Tags[name] = v
		}
	}
	if client.CaptureEvent(ev, nil, nil) == nil {
		return fmt.Errorf("sentry dropped the event of %s", f.Group)
	}
	client.Flush(timeout)
	return rec.result(f.Group)
}

// recorder passes requests on and keeps the outcome of the last one.
type recorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	sent   bool
	status int
	err    error
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.err, r.status = true, err, 0
	if resp != nil {
		r.status = resp.StatusCode
	}
	return resp, err
}

func (r *recorder) result(group string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.sent:
		return fmt.Errorf("sentry: the event of %s was not sent", group)
	case r.err != nil:
		// The error names the DSN's host, never its key: net/http's errors carry
		// the URL, whose user part sentry-go leaves out of the request.
		return fmt.Errorf("sentry: sending the event of %s: %v", group, r.err)
	case r.status >= 300:
		return fmt.Errorf("sentry: the server answered %d to the event of %s", r.status, group)
	}
	return nil
}

var errNoDSN = errors.New("no appliance.sentry.dsn: nothing sent")

// Version is the agent's version: the commit it was built from (with "-modified"
// when the tree had changes), or "unknown".
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-modified"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return rev + modified
}
