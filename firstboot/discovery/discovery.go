// Package discovery finds the appliance's env.yml, the way the original appliance's
// get_userdata did: it tries the configured sources in order ($ENV_YML, /app/env.yml, a
// NoCloud cidata filesystem, an OpenStack config-2 drive, the EC2, GCE and OpenStack
// metadata services) and the first that yields a document wins. Filesystems are read
// straight from block devices or image files with go-diskfs, nothing is mounted; the
// whole search is bounded by one time budget. Results and reports name where a
// document came from but never contain it.
package discovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/agentconfig"
)

// MaxDocumentSize caps what any source may return; env.yml is a few KiB.
const MaxDocumentSize = 1 << 20

// DefaultRequestTimeout bounds one metadata request (the original used curl --max-time 3):
// a service that does not answer must not eat the whole budget.
const DefaultRequestTimeout = 2 * time.Second

// ErrNotFound is returned, wrapped, when no allowed source yielded a document.
var ErrNotFound = errors.New("no env.yml found")

// Options say where and how to look.
type Options struct {
	// Config gives the allowed sources and their order, the budget and the endpoints.
	Config agentconfig.Config
	// Root prefixes every path read (app/env.yml, sys/class/block, dev/…); "" means "/".
	Root string
	// EnvYML is the value of $ENV_YML: an absolute path, taken under Root; "" if unset.
	EnvYML string
	// Devices, when not nil, are the block devices or image files to search for cidata
	// and config-2 filesystems instead of those listed in <Root>/sys/class/block.
	Devices []string
	// RequestTimeout bounds each metadata request; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Status is what one source came to.
type Status int

// The statuses of a source.
const (
	Skipped Status = iota // not reached: an earlier source had the document
	Found                 // the document came from here
	Absent                // the source works and has no document
	Failed                // the source could not be read; Reason says why
)

func (s Status) String() string {
	switch s {
	case Found:
		return "found"
	case Absent:
		return "absent"
	case Failed:
		return "error"
	}
	return "skipped"
}

// Report is what happened at one source. It never holds document content.
type Report struct {
	Source  string
	Status  Status
	From    string // the file, device or URL looked at, if any
	Reason  string // why absent, failed or skipped
	Elapsed time.Duration
}

func (r Report) String() string {
	if r.Elapsed > 0 {
		return fmt.Sprintf("%s (%s)", r.line(), r.Elapsed.Round(time.Microsecond))
	}
	return r.line()
}

// line is the report without the time it took.
func (r Report) line() string {
	s := r.Source + ": " + r.Status.String()
	if r.From != "" {
		s += " " + r.From
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// Result is the document found and how the search went.
type Result struct {
	Document []byte `json:"-"` // kept out of JSON logs: env.yml holds secrets
	Source   string // the source that yielded Document
	From     string // the file, device or URL it was read from
	SHA256   string // hex digest of Document
	Reports  []Report
}

// String summarises the result without the document, so that printing a Result (%v,
// structured loggers) never leaks secrets.
func (r *Result) String() string {
	if r.Document == nil {
		return "no env.yml found"
	}
	return fmt.Sprintf("env.yml from %s %s (%d bytes, sha256 %s)", r.Source, r.From, len(r.Document), r.SHA256)
}

// outcome is what a source function reports; doc is set only for Found.
type outcome struct {
	status Status
	from   string
	reason string
	doc    []byte
}

func absent(from, format string, args ...any) outcome {
	return outcome{status: Absent, from: from, reason: fmt.Sprintf(format, args...)}
}

func failed(from, format string, args ...any) outcome {
	return outcome{status: Failed, from: from, reason: fmt.Sprintf(format, args...)}
}

// found accepts a document unless it is blank, which no source should serve as env.yml.
func found(from string, doc []byte) outcome {
	if len(bytes.TrimSpace(doc)) == 0 {
		return failed(from, "document is empty")
	}
	return outcome{status: Found, from: from, doc: doc}
}

// Discover tries the allowed sources in order until one yields a document. On failure
// it returns the Result anyway, for its Reports, with an error wrapping ErrNotFound.
func Discover(ctx context.Context, opt Options) (*Result, error) {
	if opt.Root == "" {
		opt.Root = "/"
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = DefaultRequestTimeout
	}
	if opt.Config.Budget <= 0 {
		opt.Config.Budget = agentconfig.DefaultBudget
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Config.Budget)
	defer cancel()

	blocks := &blockScan{root: opt.Root, devices: opt.Devices}
	defer blocks.close()
	web := newMetadataClient(opt.RequestTimeout)
	defer web.close()

	sources := map[string]func(context.Context) outcome{
		agentconfig.SourceEnvFile: func(context.Context) outcome { return envFile(opt.Root, opt.EnvYML) },
		agentconfig.SourceLocal: func(context.Context) outcome {
			return readFile(filepath.Join(opt.Root, "app/env.yml"))
		},
		agentconfig.SourceNoCloud: func(ctx context.Context) outcome {
			return blocks.find(ctx, []string{"cidata"}, "user-data")
		},
		agentconfig.SourceConfigDrive: func(ctx context.Context) outcome {
			return blocks.find(ctx, []string{"config-2"}, "openstack/latest/user_data")
		},
		agentconfig.SourceEC2: func(ctx context.Context) outcome {
			return web.ec2(ctx, opt.Config.Endpoints.EC2)
		},
		agentconfig.SourceGCE: func(ctx context.Context) outcome {
			return web.gce(ctx, opt.Config.Endpoints.GCE)
		},
		agentconfig.SourceOpenStack: func(ctx context.Context) outcome {
			return web.openstack(ctx, opt.Config.Endpoints.OpenStack)
		},
	}

	res := &Result{}
	for _, name := range opt.Config.Sources {
		r := Report{Source: name}
		try, known := sources[name]
		switch {
		case !known:
			r.Status, r.Reason = Failed, "unknown source"
		case res.Document != nil:
			r.Reason = "not reached"
		case ctx.Err() != nil:
			r.Status, r.Reason = Failed, fmt.Sprintf("not tried: the discovery budget of %s is used up", opt.Config.Budget)
		default:
			start := time.Now()
			o := try(ctx)
			r.Elapsed = time.Since(start)
			r.Status, r.From, r.Reason = o.status, o.from, o.reason
			if o.status == Found {
				sum := sha256.Sum256(o.doc)
				res.Document, res.Source, res.From, res.SHA256 = o.doc, name, o.from, hex.EncodeToString(sum[:])
			}
		}
		res.Reports = append(res.Reports, r)
	}
	if res.Document == nil {
		return res, fmt.Errorf("%w (%s)", ErrNotFound, summary(res.Reports))
	}
	return res, nil
}

func summary(reports []Report) string {
	if len(reports) == 0 {
		return "no sources allowed"
	}
	parts := make([]string, len(reports))
	for i, r := range reports {
		parts[i] = r.line()
	}
	return strings.Join(parts, "; ")
}
