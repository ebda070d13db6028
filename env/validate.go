package env

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"gopkg.in/yaml.v3"
)

type validator struct {
	env *Env
	*decoder
}

// at is the node of a dotted key path, for positions; nil (whole file) if absent.
func (v *validator) at(path string) *yaml.Node { return v.env.nodes[path] }

// within is the node of key's child, or of key when the child is missing.
func (v *validator) within(key, child string) *yaml.Node {
	if n := v.at(key + "." + child); n != nil {
		return n
	}
	return v.at(key)
}

func (v *validator) validate() {
	a, e := &v.env.Appliance, &v.env.ECS
	v.domain(a.Domain)
	v.tlsPair(a.SSL.Key, a.SSL.Cert)
	v.acme(&a.SSL.LetsEncrypt)
	if a.DKIM.Key == "" {
		v.warnf(v.at("appliance"), "appliance.dkim.key is not set: outgoing mail will not be DKIM-signed")
	} else {
		v.rsaKey("appliance.dkim.key", a.DKIM.Key)
	}
	v.openpgpKey("appliance.backup.encrypt", a.Backup.Encrypt, true, false)
	v.openpgpKey("ecs.vault_encrypt", e.VaultEncrypt, true, false)
	v.openpgpKey("ecs.vault_sign", e.VaultSign, false, true)
	v.backupURL(a.Backup.URL)
	if m := a.Backup.Mount; m.Type != "" && (m.Source == "" || m.Target == "") {
		v.errorf(v.at("appliance.backup.mount"), "appliance.backup.mount: type is set, so source and target are needed too")
	}
	for i, f := range a.Extra.Files {
		p := fmt.Sprintf("appliance.extra.files.%d", i)
		if !path.IsAbs(f.Path) {
			v.errorf(v.at(p+".path"), "%s.path must be an absolute path", p)
		}
		if err := CheckPermissions(f.Permissions); err != nil {
			v.errorf(v.at(p+".permissions"), "%s.permissions %v", p, err)
		}
		if err := CheckOwner(f.Owner); err != nil {
			v.errorf(v.at(p+".owner"), "%s.owner %v", p, err)
		}
	}
	if err := CheckCalendar(a.Update.OnCalendar); err != nil {
		v.errorf(v.at("appliance.update.oncalendar"), "appliance.update.oncalendar %v", err)
	}
	v.storage(&a.Storage.Setup)
	v.pdfas(&e.PDFAS)
	for i, addr := range a.Cluster.Join {
		if !hostPort.MatchString(addr) {
			v.errorf(v.at(fmt.Sprintf("appliance.cluster.join.%d", i)), "appliance.cluster.join.%d must be host:port", i)
		}
	}
	if a.Cluster.Bind != "" && !hostPort.MatchString(a.Cluster.Bind) {
		v.errorf(v.at("appliance.cluster.bind"), "appliance.cluster.bind must be host:port")
	}
}

var (
	ownerPattern = regexp.MustCompile(`^[a-z_][a-z0-9_.-]*[$]?(:[a-z_][a-z0-9_.-]*[$]?)?$|^[0-9]+(:[0-9]+)?$`)
	hostPort     = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	allDigits    = regexp.MustCompile(`^[0-9]+$`)
)

// pdfasBase is a Tomcat image reference pinned by its image ID.
var (
	pdfasBase = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$`)
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// pdfas checks pdf-as's base image pin and downloads.
func (v *validator) pdfas(p *PDFAS) {
	if p.Base == "" {
		v.warnf(v.at("ecs"), "ecs.pdfas.base is not set: ECS runs without pdf-as, so documents cannot be signed electronically")
	} else if !pdfasBase.MatchString(p.Base) {
		v.errorf(v.at("ecs.pdfas.base"), "ecs.pdfas.base must be a Tomcat image pinned by its image ID, name:tag@sha256:<64 hex digits> (docker image inspect -f '{{.Id}}' name:tag prints it)")
	}
	for _, k := range []struct {
		key string
		d   Download
	}{{"ecs.pdfas.war", p.War}, {"ecs.pdfas.config", p.Config}} {
		key, d := k.key, k.d
		if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.errorf(v.within(key, "url"), "%s.url must be an http:// or https:// URL", key)
		}
		if !sha256Hex.MatchString(d.SHA256) {
			v.errorf(v.within(key, "sha256"), "%s.sha256 must be the file's SHA-256, 64 lower-case hex digits", key)
		}
	}
}

// acme checks the ACME directory URL and the optional root certificates for it.
func (v *validator) acme(le *LetsEncrypt) {
	if u, err := url.Parse(le.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		v.errorf(v.at("appliance.ssl.letsencrypt.directory"), "appliance.ssl.letsencrypt.directory must be an https:// URL of an ACME directory")
	}
	if le.Email != "" && !strings.Contains(le.Email, "@") {
		v.errorf(v.at("appliance.ssl.letsencrypt.email"), "appliance.ssl.letsencrypt.email must be an e-mail address")
	}
	if le.RootCA != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(le.RootCA)) {
			v.errorf(v.at("appliance.ssl.letsencrypt.root_ca"), "appliance.ssl.letsencrypt.root_ca holds no PEM certificate")
		}
	}
}

func (v *validator) domain(d string) {
	n := v.at("appliance.domain")
	if d == "localhost" {
		v.warnf(n, "appliance.domain is localhost: fine for a test machine, but mail, certificates and links need the real domain")
		return
	}
	if err := CheckDomain(d); err != nil {
		v.errorf(n, "appliance.domain %v", err)
	}
}

// CheckDomain reports whether d is a domain as appliance.domain needs it: a fully
// qualified DNS name (IDNs in their xn-- form, a final dot allowed), or localhost.
// Certificates, mail and the ECS settings need a name, so an IP address or a
// numeric top-level domain is refused. The error does not repeat d.
func CheckDomain(d string) error {
	if d == "localhost" {
		return nil
	}
	if net.ParseIP(d) != nil {
		return errors.New("must be a domain name, not an IP address (certificates and mail need a name)")
	}
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(d), "."), ".")
	if len(d) > 253 || len(labels) < 2 {
		return errors.New("must be a fully qualified domain name such as ecs.example.org")
	}
	for i, l := range labels {
		if !dnsLabel.MatchString(l) {
			return fmt.Errorf("must be a DNS name: label %d of %d is not letters, digits and inner hyphens of at most 63 characters", i+1, len(labels))
		}
	}
	if allDigits.MatchString(labels[len(labels)-1]) {
		return errors.New("must end in a top-level domain that is not all digits, such as .org")
	}
	return nil
}

func (v *validator) tlsPair(key, cert string) {
	switch {
	case key == "" && cert == "":
		return
	case key == "":
		v.errorf(v.at("appliance.ssl.cert"), "appliance.ssl.cert is set but appliance.ssl.key is not: set both or neither")
		return
	case cert == "":
		v.errorf(v.at("appliance.ssl.key"), "appliance.ssl.key is set but appliance.ssl.cert is not: set both or neither")
		return
	}
	if _, err := tls.X509KeyPair([]byte(cert), []byte(key)); err != nil {
		// The tls errors name what failed (no PEM, key/cert mismatch) without the values.
		v.errorf(v.at("appliance.ssl.key"), "appliance.ssl.key and appliance.ssl.cert: %v", err)
	}
}

func (v *validator) rsaKey(p, s string) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		v.errorf(v.at(p), "%s is not a PEM private key", p)
		return
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(interface{ Size() int }); ok {
			return
		}
	}
	v.errorf(v.at(p), "%s is not an RSA private key in PEM (PKCS#1 or PKCS#8)", p)
}

// openpgpKey checks that s is an unprotected OpenPGP secret key that can do what its
// consumer needs.
func (v *validator) openpgpKey(p, s string, encrypt, sign bool) {
	n := v.at(p)
	if s == "" {
		return // the decoder already reported the missing key
	}
	ents, err := openpgp.ReadArmoredKeyRing(strings.NewReader(s))
	if err != nil {
		v.errorf(n, "%s is not an ASCII-armored OpenPGP key: %v", p, err)
		return
	}
	if len(ents) != 1 {
		v.errorf(n, "%s must hold exactly one OpenPGP key, found %d", p, len(ents))
		return
	}
	ent, now := ents[0], time.Now()
	if ent.PrivateKey == nil {
		v.errorf(n, "%s is a public key; the appliance needs the secret key (gpg --export-secret-keys --armor)", p)
		return
	}
	if ent.PrivateKey.Encrypted {
		v.errorf(n, "%s is protected by a passphrase; the appliance cannot unlock it at boot", p)
		return
	}
	if encrypt {
		if k, ok := ent.EncryptionKey(now); !ok || k.PrivateKey == nil {
			v.errorf(n, "%s has no usable encryption key with its secret part (expired, revoked or sign-only?)", p)
		}
	}
	if sign {
		if k, ok := ent.SigningKey(now); !ok || k.PrivateKey == nil {
			v.errorf(n, "%s has no usable signing key with its secret part (expired, revoked or encrypt-only?)", p)
		}
	}
}

// backupSchemes are the duplicity backends (duplicity(1), "URL format").
var backupSchemes = map[string]bool{
	"file": true, "ftp": true, "ftps": true, "sftp": true, "scp": true, "ssh": true, "rsync": true,
	"s3": true, "s3+http": true, "boto3+s3": true, "gs": true, "swift": true, "webdav": true,
	"webdavs": true, "b2": true, "azure": true, "cf+http": true, "dpbx": true, "gdocs": true,
	"imap": true, "imaps": true, "mega": true, "megav2": true, "megav3": true, "onedrive": true,
	"pydrive": true, "pydrive+gdocs": true, "multi": true, "rclone": true, "hsi": true, "tahoe": true,
	"xorriso": true, "box": true, "dropbox": true, "copy": true, "jottacloud": true, "pca": true,
	"lftp+ftp": true, "lftp+ftps": true, "lftp+sftp": true, "lftp+webdav": true, "lftp+webdavs": true,
	"pexpect+scp": true, "pexpect+sftp": true, "paramiko+scp": true, "paramiko+sftp": true,
	"gio+file": true, "gio+ftp": true, "gio+sftp": true, "gio+ssh": true, "gio+smb": true, "gio+dav": true,
	"par2+file": true, "par2+sftp": true, "par2+s3": true, "par2+rsync": true,
}

func (v *validator) backupURL(s string) {
	n := v.at("appliance.backup.url")
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		v.errorf(n, "appliance.backup.url must be a duplicity URL such as file:///volatile/backup/ or sftp://user@host/path")
		return
	}
	if !backupSchemes[strings.ToLower(u.Scheme)] {
		v.errorf(n, "appliance.backup.url: the scheme is not a duplicity backend (file, sftp, rsync, s3, webdavs, …)")
	}
}

func (v *validator) storage(s *StorageSetup) {
	labels := map[string]bool{}
	for i, d := range s.Disks {
		p := fmt.Sprintf("appliance.storage.setup.disks.%d", i)
		if !path.IsAbs(d.Device) {
			v.errorf(v.at(p+".device"), "%s.device must be a block device path such as /dev/vdb", p)
		}
		var percent int
		for j, part := range d.Partitions {
			pp := fmt.Sprintf("%s.partitions.%d", p, j)
			if len(part.Label) > 16 {
				v.errorf(v.at(pp+".label"), "%s.label is longer than the 16 characters an ext4 or swap label may have", pp)
			}
			if part.Format == "swap" && (part.Label == "ecs-data" || part.Label == "ecs-volatile") {
				v.errorf(v.at(pp+".format"), "%s: %s must be an ext4 filesystem, not swap", pp, part.Label)
			}
			if labels[part.Label] {
				v.errorf(v.at(pp+".label"), "%s.label is used by an earlier partition too", pp)
			}
			labels[part.Label] = true
			if part.Format != "ext4" && part.Format != "swap" {
				v.errorf(v.at(pp+".format"), "%s.format must be ext4 or swap", pp)
			}
			if part.Size.Rest && j != len(d.Partitions)-1 {
				v.errorf(v.at(pp), "%s: only the last partition can take the rest of the disk", pp)
			}
			percent += part.Size.Percent
		}
		if percent > 100 {
			v.errorf(v.at(p+".partitions"), "%s.partitions: the percentages add up to %d%%", p, percent)
		}
	}
	// The original's format: options were "-L label" style arguments to mkfs.
	for dev, f := range s.Format {
		if f.FSType != "" && f.FSType != "ext4" && f.FSType != "swap" {
			v.errorf(v.at("appliance.storage.setup.format."+dev), "appliance.storage.setup.format.%s.fstype must be ext4 or swap", dev)
		}
	}
}

// CheckOwner reports whether s is an owner of appliance.extra.files as Parse accepts
// it: user or user:group, names as useradd(8) allows them, or numeric ids. The error
// does not repeat s.
func CheckOwner(s string) error {
	if !ownerPattern.MatchString(s) {
		return errors.New("must be user or user:group")
	}
	return nil
}

// CheckPermissions reports whether s is a file mode of appliance.extra.files as Parse
// accepts it: octal, such as "0600". The error does not repeat s.
func CheckPermissions(s string) error {
	if _, err := strconv.ParseUint(s, 8, 12); err != nil {
		return errors.New(`must be an octal mode such as "0600"`)
	}
	return nil
}
