package generate

import (
	"fmt"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"gopkg.in/yaml.v3"
)

// The address used in the DNS how-to (RFC 5737 documentation range).
const (
	exampleIP  = "192.0.2.10"
	examplePTR = "10.2.0.192.in-addr.arpa."
)

// mapping builds a YAML mapping in insertion order. Comment lines given with
// comment are attached above the next key, which is how the original template's
// commented-out examples read.
type mapping struct {
	node    *yaml.Node
	pending []string
}

func newMapping() *mapping { return &mapping{node: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}} }

func (m *mapping) comment(lines ...string) { m.pending = append(m.pending, lines...) }

func (m *mapping) add(key string, value *yaml.Node) {
	head := strings.Join(m.pending, "\n")
	if len(m.pending) > 0 && head == "" {
		head = "\n" // yaml.v3 writes a leading newline as a blank line
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, HeadComment: head}
	m.pending = nil
	m.node.Content = append(m.node.Content, k, value)
}

func (m *mapping) sub(key string) *mapping {
	s := newMapping()
	m.add(key, s.node)
	return s
}

// str is a string node; the encoder quotes it as needed and writes values with
// newlines as literal blocks.
func str(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(b)}
}

func strList(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range items {
		n.Content = append(n.Content, str(s))
	}
	return n
}

// document is the env.yml as a YAML document, key order as in the original
// env-template.yml.
func document(domain string, x *extra, s *secrets) *yaml.Node {
	top := newMapping()
	top.comment(`# XXX keep the "#cloud-config" line first and unchanged, software expects this header`, "")
	top.comment(todos()...)
	top.comment("")
	top.comment(dnsHowTo(domain, s.dkimPublic)...)
	top.comment("")

	top.comment("# ssh public keys for root and app; cloud-init reads them too")
	if len(x.SSHAuthorizedKeys) > 0 {
		top.add("ssh_authorized_keys", strList(x.SSHAuthorizedKeys))
	} else {
		// cloud-init's schema rejects an empty or null list, so the key is left out.
		top.comment(`# ssh_authorized_keys:`, `#   - "ssh-ed25519 AAAA... somebody@somewhere"`)
	}
	top.comment("# keys listed here are removed from root and app; also a log of past access keys")
	top.add("ssh_deprecated_keys", strList(nil))
	top.add("disable_root", boolean(false))
	top.node.Content[len(top.node.Content)-1].LineComment = "# cloud-init compatibility: the appliance expects root to be usable"

	top.comment("")
	top.add("appliance", appliance(domain, x, s).node)
	top.comment("")
	top.add("ecs", ecs(domain, x, s).node)
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{top.node}}
}

func todos() []string {
	return []string{
		"# TODO before the first start:",
		"# - ecs.settings: set ETHICS_COMMISSION_UUID to the uuid of the ethics commission",
		"# - ecs.settings: change EMAIL_BACKEND to 'django.core.mail.backends.smtp.EmailBackend'",
		"#   once the appliance may send mail",
		"# - optional: add appliance.update.oncalendar for a custom update schedule",
	}
}

// dnsHowTo lists the records the domain needs for web and mail, as the original
// template did.
func dnsHowTo(domain, dkimPublic string) []string {
	d := domain + "."
	dkimName := "default._domainkey." + d
	w := max(len(dkimName), len(examplePTR)) // align the record types
	lines := []string{
		"# DNS records to publish for " + domain + " (replace " + exampleIP + " with the",
		"# appliance's public IPv4 address):",
		fmt.Sprintf("#   %-*s IN A    %s", w, d, exampleIP),
		fmt.Sprintf("#   %-*s IN MX   10 %s", w, d, d),
		fmt.Sprintf("#   %-*s IN TXT  \"v=spf1 a mx -all\"", w, d),
		fmt.Sprintf("#   %-*s IN TXT  \"v=DMARC1; p=quarantine\"", w, "_dmarc."+d),
	}
	for i, t := range dkimTXT(dkimPublic) {
		if i == 0 {
			lines = append(lines, fmt.Sprintf("#   %-*s IN TXT  ( \"%s\"", w, dkimName, t))
		} else {
			lines = append(lines, "#       \""+t+"\"")
		}
	}
	lines[len(lines)-1] += " )"
	return append(lines,
		"# the same TXT value on one line, for DNS web forms (name default._domainkey):",
		"#   "+dkimRecord(dkimPublic),
		"# and, with the provider of the address, the reverse record:",
		fmt.Sprintf("#   %-*s IN PTR  %s", w, examplePTR, d),
	)
}

const dkimPrefix = "v=DKIM1; k=rsa; s=email; "

func dkimRecord(public string) string { return dkimPrefix + "p=" + public }

// dkimTXT splits the DKIM record into the character-strings of a TXT record, each
// at most 255 characters (RFC 1035 §3.3); resolvers concatenate them.
func dkimTXT(public string) []string {
	const max = 255
	parts := []string{dkimPrefix}
	for rest := "p=" + public; rest != ""; {
		n := min(len(rest), max)
		parts = append(parts, rest[:n])
		rest = rest[n:]
	}
	return parts
}

func appliance(domain string, x *extra, s *secrets) *mapping {
	xa := &x.Appliance
	a := newMapping()
	a.comment("# standby: true  # if true, the appliance does not activate")
	a.add("domain", str(domain))

	ssl := a.sub("ssl")
	ssl.sub("letsencrypt").add("enabled", boolean(true))
	ssl.comment("# if true, every request needs a client certificate")
	ssl.add("client_certs_mandatory", boolean(false))
	// key and cert close the ssl section, so their example hangs below it.
	ssl.node.Content[len(ssl.node.Content)-1].FootComment = strings.Join([]string{
		"# key: |   # PEM key and certificate chain for https; if both are set,",
		"# cert: |  # they are used instead of letsencrypt",
	}, "\n")

	if xa.Sentry.DSN != "" {
		a.comment("# errors are reported to sentry; ecs.settings SENTRY_DSN is set to the same")
		a.sub("sentry").add("dsn", str(xa.Sentry.DSN))
	} else {
		a.comment("# sentry:", "#   dsn: 'https://url'  # report errors to sentry")
	}

	if m := xa.Metric; m != (metric{}) {
		mm := a.sub("metric")
		for _, f := range []struct {
			key string
			v   *bool
		}{{"exporter", m.Exporter}, {"server", m.Server}, {"gui", m.GUI}, {"pghero", m.PgHero}} {
			if f.v != nil {
				mm.add(f.key, boolean(*f.v))
			}
		}
	} else {
		a.comment("# metric:  # optional monitoring services, all default false",
			"#   exporter: false", "#   server: false", "#   gui: false", "#   pghero: false")
	}

	if !addGit(a, xa.Git) {
		a.comment("# git:  # where the appliance updates itself from",
			"#   source: https://github.com/ecs-org/ecs-appliance.git", "#   branch: master")
	}

	if len(xa.Extra.Files) > 0 {
		files := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, f := range xa.Extra.Files {
			fm := newMapping()
			fm.add("path", str(f.Path))
			fm.add("contents", str(f.Contents))
			if f.Owner != "" {
				fm.add("owner", str(f.Owner))
			}
			if f.Permissions != "" {
				fm.add("permissions", str(f.Permissions))
			}
			files.Content = append(files.Content, fm.node)
		}
		a.comment("# extra files are written at every start")
		a.sub("extra").add("files", files)
	} else {
		a.comment("# extra:  # files written and packages installed at every start",
			"#   files:", "#     - path: /path/of/filename", "#       contents: |",
			"#         # content here", "#       owner: user:group", `#       permissions: "0600"`,
			"#   packages:", "#     - qrencode")
	}

	a.comment("# XXX do not update between 00:30 and 06:30 (backup window); use metrics and",
		"# alerting when updating automatically")
	if u := xa.Update; u != nil {
		um := a.sub("update")
		if u.OnCalendar != "" {
			um.add("oncalendar", str(u.OnCalendar))
		}
		// As in the original template, a given update section always states
		// automatic, true unless set.
		um.add("automatic", boolean(u.Automatic == nil || *u.Automatic))
	} else {
		a.comment("# update:", "#   automatic: true  # false disables automatic updates",
			`#   oncalendar: "*-*-* 06:30:00"  # systemd OnCalendar, this is the default`)
	}

	st := a.sub("storage")
	st.comment("# setup:  # how to create ecs-data and ecs-volatile when they are missing")
	ign := st.sub("ignore")
	ign.comment("# true: keep /volatile and /data on the root filesystem instead of the",
		"# filesystems labelled ecs-volatile and ecs-data")
	ign.add("volatile", boolean(true))
	ign.add("data", boolean(true))

	a.comment("# mail signing key of opendkim; its public half is in the DNS records above")
	a.sub("dkim").add("key", str(s.dkimKey))

	b := a.sub("backup")
	b.add("url", str("file:///volatile/ecs-backup-test/"))
	b.comment(`# options: "string of options passed directly to duplicity"`,
		"# mount:  # mounted before and unmounted after each backup",
		`#   type: cifs`, `#   source: "//192.0.2.20/datavolume"`,
		`#   target: /mnt/appliance-backup-mount`, `#   options: "user=username,pass=password"`,
		"# encrypt: secret OpenPGP key (uid ecs_backup) backups are encrypted to")
	b.add("encrypt", str(s.backupKey))
	return a
}

// addGit adds a git section with the keys that are set; false if none are.
func addGit(m *mapping, g env.Git) bool {
	if g == (env.Git{}) {
		return false
	}
	gm := m.sub("git")
	for _, f := range [][2]string{{"source", g.Source}, {"branch", g.Branch}, {"commitid", g.CommitID}} {
		if f[1] != "" {
			gm.add(f[0], str(f[1]))
		}
	}
	return true
}

func ecs(domain string, x *extra, s *secrets) *mapping {
	e := newMapping()
	if !addGit(e, x.ECS.Git) {
		e.comment("# git:  # where ECS is built from",
			"#   source: https://github.com/ecs-org/ecs.git", "#   branch: stable")
	}
	e.comment("# pdfas:  # pdf-as-web, the signing service ECS calls; it runs only with a base:",
		"#   # a Tomcat 8.5 or 9 image pinned by its image ID (docker image inspect -f '{{.Id}}')",
		"#   base: tomcat:9.0-jre8@sha256:<image ID>",
		"#   # war and config default to pdf-as-web 4.1.0 and its defaultConfig 4.1.1",
		"#   # war: {url: https://mirror.example.org/pdf-as-web.war, sha256: <SHA-256>}")
	e.add("userswitcher", func() *yaml.Node {
		u := newMapping()
		u.add("enabled", boolean(false))
		return u.node
	}())
	e.comment("# Python appended to the Django settings of ECS")
	e.add("settings", str(settings(domain, x.Appliance.Sentry.DSN, s)))
	e.comment("# secret OpenPGP key (uid ecs_mediaserver) the document vault encrypts with")
	e.add("vault_encrypt", str(s.vaultEncrypt))
	e.comment("# secret OpenPGP key (uid ecs_authority) the document vault signs with")
	e.add("vault_sign", str(s.vaultSign))
	return e
}

// settings is ecs.settings. Every value written into it is either a checked DNS
// name, a checked DSN or a base64 secret, none of which can contain a quote or
// backslash, so single quotes suffice.
func settings(domain, sentryDSN string, s *secrets) string {
	sentry := "# SENTRY_DSN = 'https://url'  # set to the sentry url if available"
	if sentryDSN != "" {
		sentry = "SENTRY_DSN = '" + sentryDSN + "'"
	}
	return strings.Join([]string{
		"DOMAIN = '" + domain + "'",
		"ABSOLUTE_URL_PREFIX = 'https://{}'.format(DOMAIN)",
		"ALLOWED_HOSTS = [DOMAIN, ]",
		"PDFAS_SERVICE = ABSOLUTE_URL_PREFIX+ '/pdf-as-web/'",
		"SECURE_PROXY_SSL = True",
		"ECS_REQUIRE_CLIENT_CERTS = True",
		"DEBUG = False",
		sentry,
		"# TODO: set to the uuid of the target ethics commission",
		"ETHICS_COMMISSION_UUID = 'ecececececececececececececececec'",
		"",
		"SECRET_KEY = '" + s.secretKey + "'",
		"REGISTRATION_SECRET = '" + s.registration + "'",
		"PASSWORD_RESET_SECRET = '" + s.pwReset + "'",
		"",
		"# TODO: change to 'django.core.mail.backends.smtp.EmailBackend' to send mail",
		"EMAIL_BACKEND = 'django.core.mail.backends.console.EmailBackend'",
		"EMAIL_BACKEND_UNFILTERED = 'django.core.mail.backends.smtp.EmailBackend'",
		"EMAIL_UNFILTERED_DOMAINS = ()  # = ('example.com',)",
		"EMAIL_UNFILTERED_INDIVIDUALS = ()  # = ('ada@example.org',)",
		"",
		"SMTPD_CONFIG['listen_addr'] = ('0.0.0.0', 8025)",
		"SMTPD_CONFIG['domain'] = DOMAIN",
		"",
		"# EMAIL_BACKEND_UNFILTERED is used for user registration and invitation,",
		"# password reset, sending client certificates and all mail to domains in",
		"# EMAIL_UNFILTERED_DOMAINS or to EMAIL_UNFILTERED_INDIVIDUALS; all other mail",
		"# goes through EMAIL_BACKEND.",
		"#   django.core.mail.backends.console.EmailBackend logs mail instead of sending it",
		"#   django.core.mail.backends.smtp.EmailBackend sends it with the EMAIL_* settings",
	}, "\n")
}
