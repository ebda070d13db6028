package generate

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
)

// extra is what an extra.yml may add to a new env.yml: the keys the original
// env-create merged from `--extra`, in env.yml's schema. Unset keys are left out of
// the output.
type extra struct {
	SSHAuthorizedKeys []string       `yaml:"ssh_authorized_keys"`
	Appliance         extraAppliance `yaml:"appliance"`
	ECS               extraECS       `yaml:"ecs"`
}

type extraAppliance struct {
	Sentry sentry      `yaml:"sentry"`
	Metric metric      `yaml:"metric"`
	Git    env.Git     `yaml:"git"`
	Extra  extraFiles  `yaml:"extra"`
	Update *env.Update `yaml:"update"`
}

type sentry struct {
	DSN string `yaml:"dsn" env:"required"`
}

// metric is env.Metric with pointers: only the switches given are written.
type metric struct {
	Exporter *bool `yaml:"exporter"`
	Server   *bool `yaml:"server"`
	GUI      *bool `yaml:"gui"`
	PgHero   *bool `yaml:"pghero"`
}

type extraFiles struct {
	Files []env.ExtraFile `yaml:"files"`
}

type extraECS struct {
	Git env.Git `yaml:"git"`
}

// parseExtra reads and checks an extra.yml; data may be nil. Package env decodes it
// by env.yml's rules; this adds the checks of values env.yml's validation would do
// (with the generated secrets around them) and those only extra.yml needs, before any
// key is made. Messages name keys, never values: extra.yml may hold secrets (the
// sentry DSN).
func parseExtra(file string, data []byte) (*extra, error) {
	x := &extra{}
	// The only warning env's tags give here is for content, deprecated in env.yml but
	// the original's form in extra.yml, made into contents below.
	at, _, err := env.DecodeAt(file, data, x)
	var errs env.ErrorList
	if err != nil && !errors.As(err, &errs) {
		return nil, err
	}
	reported := map[env.Position]bool{}
	for _, e := range errs {
		reported[e.Position] = true
	}
	// given: the key is in the file and the decoder found nothing wrong with its value.
	given := func(key string) bool {
		p, ok := at[key]
		return ok && !reported[p]
	}
	failf := func(key, format string, args ...any) {
		errs = append(errs, &env.Error{Position: at[key], Msg: key + fmt.Sprintf(format, args...)})
	}

	if k := "appliance.sentry.dsn"; given(k) {
		if msg := checkDSN(x.Appliance.Sentry.DSN); msg != "" {
			failf(k, " %s", msg)
		}
	}
	if k := "appliance.update.oncalendar"; given(k) {
		if err := env.CheckCalendar(x.Appliance.Update.OnCalendar); err != nil {
			failf(k, " %v", err)
		}
	}
	for i := range x.Appliance.Extra.Files {
		f := &x.Appliance.Extra.Files[i]
		k := "appliance.extra.files." + strconv.Itoa(i)
		if given(k+".path") && !path.IsAbs(f.Path) {
			failf(k+".path", " must be an absolute path")
		}
		if given(k + ".owner") {
			if err := env.CheckOwner(f.Owner); err != nil {
				failf(k+".owner", " %v", err)
			}
		}
		if given(k + ".permissions") {
			if err := env.CheckPermissions(f.Permissions); err != nil {
				failf(k+".permissions", " %v", err)
			}
		}
		_, hasContents := at[k+".contents"]
		if _, hasContent := at[k+".content"]; hasContent && hasContents {
			failf(k, ": give either contents or content, not both")
		} else if hasContent {
			// The original's form: one line, with the two characters `\n` between lines.
			f.Contents = strings.ReplaceAll(f.Content, `\n`, "\n")
			if !strings.HasSuffix(f.Contents, "\n") {
				f.Contents += "\n"
			}
			f.Content = ""
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return x, nil
}

// checkDSN accepts a sentry DSN that can also be written into a single-quoted Python
// string in ecs.settings; otherwise it says what is wrong, without the DSN.
func checkDSN(s string) string {
	if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "must be an http or https URL"
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == '\'' || c == '\\' {
			return "must consist of printable ASCII without quotes or backslashes"
		}
	}
	return ""
}
