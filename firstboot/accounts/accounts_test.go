package accounts

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLookups(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/app:/bin/bash\nbroken:x:y:z\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\napp:x:1000:\ngrafana:x:472:\n"), 0o644)
	db := Load(root)
	if u, err := db.User("app"); err != nil || u != (User{1000, 1000, "/app"}) {
		t.Errorf("app = %+v, %v", u, err)
	}
	if uid, gid, err := db.Resolve("472"); err != nil || uid != 472 || gid != 472 {
		t.Errorf("472 = %d:%d %v", uid, gid, err)
	}
	if _, _, err := db.Resolve("postgres"); err == nil || err.Error() != "no user postgres in /etc/passwd" {
		t.Errorf("postgres: %v", err)
	}
	if uid, gid, err := db.Resolve("app:root"); err != nil || uid != 1000 || gid != 0 {
		t.Errorf("app:root = %d:%d %v", uid, gid, err)
	}
	if uid, gid, err := db.Resolve("root:472"); err != nil || uid != 0 || gid != 472 {
		t.Errorf("root:472 = %d:%d %v", uid, gid, err)
	}
	if _, _, err := db.Resolve("app:nogroup"); err == nil || err.Error() != "no group nogroup in /etc/group" {
		t.Errorf("app:nogroup: %v", err)
	}
	if _, err := db.User("broken"); err == nil {
		t.Error("an entry with bad ids was read")
	}
	if _, err := Load(t.TempDir()).User("root"); err == nil {
		t.Error("a tree without etc/passwd resolved a user")
	}
}
