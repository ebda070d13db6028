package env

// The defaults of the original appliance (its appliance.include and prepare scripts),
// kept here and nowhere else.
const (
	DefaultApplianceGitSource = "https://github.com/ecs-org/ecs-appliance.git"
	DefaultApplianceGitBranch = "master"
	DefaultECSGitSource       = "https://github.com/ecs-org/ecs.git"
	DefaultECSGitBranch       = "master"
	DefaultDocsGitSource      = "https://github.com/ecs-org/ecs-docs.git"
	DefaultDocsGitBranch      = "gh-pages"
	DefaultDatabase           = "ecs"
	DefaultUpdateOnCalendar   = "*-*-* 06:30:00"
	DefaultACMEDirectory      = "https://acme-v02.api.letsencrypt.org/directory"
	// pdf-as-web and its configuration as the original's last pdfas image used them,
	// with the checksums ECS's documentation publishes.
	DefaultPDFASWarURL       = "https://ecs-org.github.io/ecs-docs/pdf-as-web-4.1.0.war"
	DefaultPDFASWarSHA256    = "d625cd40a0baadf9ccf2a9bb46f6808efb7929e3fbe107b087b8c42f5b6c1971"
	DefaultPDFASConfigURL    = "https://ecs-org.github.io/ecs-docs/defaultConfig-4.1.1.zip"
	DefaultPDFASConfigSHA256 = "392718b4b8e57582ec529061c25437b3858574a90214e429069cbc084333ca8d"
)

func applyDefaults(e *Env) {
	setString(&e.Appliance.Git.Source, DefaultApplianceGitSource)
	setString(&e.Appliance.Git.Branch, DefaultApplianceGitBranch)
	setString(&e.ECS.Git.Source, DefaultECSGitSource)
	setString(&e.ECS.Git.Branch, DefaultECSGitBranch)
	setString(&e.ECS.Docs.Git.Source, DefaultDocsGitSource)
	setString(&e.ECS.Docs.Git.Branch, DefaultDocsGitBranch)
	setString(&e.ECS.Database, DefaultDatabase)
	setString(&e.Appliance.Update.OnCalendar, DefaultUpdateOnCalendar)
	setDownload(&e.ECS.PDFAS.War, DefaultPDFASWarURL, DefaultPDFASWarSHA256)
	setDownload(&e.ECS.PDFAS.Config, DefaultPDFASConfigURL, DefaultPDFASConfigSHA256)
	setBool(&e.Appliance.SSL.LetsEncrypt.Enabled, true)
	setString(&e.Appliance.SSL.LetsEncrypt.Directory, DefaultACMEDirectory)
	setBool(&e.Appliance.Update.Automatic, true)
	setBool(&e.DisableRoot, false)
	for i := range e.Appliance.Extra.Files {
		f := &e.Appliance.Extra.Files[i]
		setString(&f.Contents, f.Content) // the deprecated spelling still works
		setString(&f.Owner, "root:root")
		setString(&f.Permissions, "0644")
	}
	for i := range e.Appliance.Storage.Setup.Disks {
		for j := range e.Appliance.Storage.Setup.Disks[i].Partitions {
			p := &e.Appliance.Storage.Setup.Disks[i].Partitions[j]
			setString(&p.Format, "ext4")
			if p.Size.IsZero() {
				p.Size.Rest = true
			}
		}
	}
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// setDownload fills in a download the env leaves out; a URL without its checksum
// stays as it is, for validation to refuse.
func setDownload(d *Download, url, sum string) {
	if d.URL == "" && d.SHA256 == "" {
		d.URL, d.SHA256 = url, sum
	}
}

func setBool(b **bool, def bool) {
	if *b == nil {
		*b = &def
	}
}
