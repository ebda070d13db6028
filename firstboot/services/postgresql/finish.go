package postgresql

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
)

// readyWithin is how long Finish waits for the server to accept connections.
const readyWithin = 2 * time.Minute

// Finish makes the app role and the database when they are missing. The role's
// password is made once (192 bits) and kept in DATABASE_URL; the server only ever sees
// its SCRAM verifier, on psql's standard input, so neither a command line nor a
// statement logged on error carries the password.
func (Service) Finish(ctx context.Context, c *services.Context) error {
	db := c.Env.ECS.Database
	if !c.M.Live() {
		c.M.Out.Detail("would create role %s and database %s when missing (not the running system)", Role, db)
		return nil
	}
	if err := waitReady(ctx, c.M); err != nil {
		return err
	}
	password, fresh, err := password(ctx, c, db)
	if err != nil {
		return err
	}
	exists, err := Query(ctx, c.M, "", "SELECT 1 FROM pg_roles WHERE rolname = '"+Role+"'")
	if err != nil {
		return err
	}
	switch {
	case exists == "":
		if err := exec(ctx, c.M, "", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", Role, verifier(password))); err != nil {
			return err
		}
		c.M.Out.Detail("created role %s", Role)
		c.Did()
	case fresh:
		if err := exec(ctx, c.M, "", fmt.Sprintf("ALTER ROLE %s LOGIN PASSWORD '%s'", Role, verifier(password))); err != nil {
			return err
		}
		c.M.Out.Detail("set a new password for role %s", Role)
		c.Did()
	}
	made, err := EnsureDatabase(ctx, c.M, db)
	if made {
		c.Did()
	}
	return err
}

// EnsureDatabase makes the database db (owner app, ECS's locale) and its
// pg_stat_statements extension when they are missing, and says whether it made any.
func EnsureDatabase(ctx context.Context, m *machine.Machine, db string) (bool, error) {
	made := false
	exists, err := Query(ctx, m, "", "SELECT 1 FROM pg_database WHERE datname = '"+db+"'")
	if err != nil {
		return false, err
	}
	if exists == "" {
		// The locale of the original's createdb; template0 because template1 has C.
		sql := fmt.Sprintf(`CREATE DATABASE "%s" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'de_DE.UTF-8' OWNER %s`, db, Role)
		if err := exec(ctx, m, "", sql); err != nil {
			return false, err
		}
		m.Out.Detail("created database %s (owner %s, locale de_DE.UTF-8)", db, Role)
		made = true
	}
	ext, err := Query(ctx, m, db, "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
	if err != nil {
		return made, err
	}
	if ext == "" {
		if err := exec(ctx, m, db, "CREATE EXTENSION pg_stat_statements"); err != nil {
			return made, err
		}
		m.Out.Detail("created extension pg_stat_statements in %s", db)
		made = true
	}
	return made, nil
}

func waitReady(ctx context.Context, m *machine.Machine) error {
	deadline := time.Now().Add(readyWithin)
	for {
		_, err := m.Run(ctx, machine.Command{Name: "pg_isready", Args: []string{"-q", "-h", "127.0.0.1", "-p", fmt.Sprint(Port)}})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server does not accept connections after %s: %w", readyWithin, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// password returns the app role's password from DATABASE_URL, or makes and keeps a
// new one (fresh) when the file has none, as the original did with "invalid".
func password(ctx context.Context, c *services.Context, db string) (string, bool, error) {
	data, err := os.ReadFile(c.M.Path(DatabaseURLPath))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if pw := parseURLFile(data); pw != "" && pw != "invalid" {
		// Rewrite only if the host part or database changed; the password stays.
		return pw, false, writeURL(ctx, c, pw, db)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	pw := hex.EncodeToString(raw)
	return pw, true, writeURL(ctx, c, pw, db)
}

// writeURL keeps DATABASE_URL; the file is the application's, the server never
// reads it, so writing it restarts nothing.
func writeURL(ctx context.Context, c *services.Context, password, db string) error {
	changed, err := c.M.WriteFile(ctx, urlFile(password, db))
	if changed {
		c.Did()
	}
	return err
}

func urlFile(password, db string) machine.File {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(Role, password), Host: fmt.Sprintf("%s:%d", docker.BridgeIP, Port), Path: "/" + db}
	return machine.File{Path: DatabaseURLPath, Data: []byte("DATABASE_URL=" + u.String() + "\n"), Mode: 0o600}
}

// parseURLFile returns the password of DATABASE_URL in an env file.
func parseURLFile(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "DATABASE_URL=")
		if !ok {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.User == nil {
			return ""
		}
		pw, _ := u.User.Password()
		return pw
	}
	return ""
}

// verifier is PostgreSQL's SCRAM-SHA-256 password verifier (RFC 5802/7677), what the
// server stores for password_encryption = scram-sha-256.
func verifier(password string) string {
	const iterations = 4096
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, _ := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key")))
}

// Query runs one SQL statement as postgres and returns its unaligned output.
func Query(ctx context.Context, m *machine.Machine, db, sql string) (string, error) {
	out, err := psql(ctx, m, db, sql)
	return strings.TrimSpace(string(out)), err
}

func exec(ctx context.Context, m *machine.Machine, db, sql string) error {
	_, err := psql(ctx, m, db, sql)
	return err
}

// psql sends sql on standard input: statements with secrets never reach argv.
func psql(ctx context.Context, m *machine.Machine, db, sql string) ([]byte, error) {
	args := []string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"}
	if db != "" {
		args = append(args, "-d", db)
	}
	out, err := m.Run(ctx, machine.Command{Name: "psql", User: "postgres", Args: args, Stdin: []byte(sql + ";\n")})
	if err != nil {
		return nil, fmt.Errorf("psql: %w", scrub(err))
	}
	return out, nil
}

// scrub drops the server's message, which may quote the statement.
func scrub(err error) error {
	if s := err.Error(); strings.Contains(s, "SCRAM-SHA-256$") {
		return errors.New("a statement setting the app role's password failed")
	}
	return err
}
