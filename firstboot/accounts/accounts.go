// Package accounts reads the users and groups of a machine tree from its own
// etc/passwd and etc/group, not the host's user database that os/user would ask:
// the agent works under --root and the image may define users the host lacks.
package accounts

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// User is one etc/passwd entry.
type User struct {
	UID, GID int
	Home     string
}

// DB holds the users and groups of one tree.
type DB struct {
	users  map[string]User
	groups map[string]int
	err    error // reading failed; reported when a name is needed
}

// Load reads <root>/etc/passwd and <root>/etc/group. A read error is kept and
// returned by the lookups, so a tree whose names are never needed works without them.
func Load(root string) *DB {
	db := &DB{users: map[string]User{}, groups: map[string]int{}}
	err1 := scan(filepath.Join(root, "etc/passwd"), func(f []string) {
		if len(f) < 6 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 == nil && err2 == nil {
			db.users[f[0]] = User{uid, gid, f[5]}
		}
	})
	err2 := scan(filepath.Join(root, "etc/group"), func(f []string) {
		if gid, err := strconv.Atoi(f[2]); err == nil {
			db.groups[f[0]] = gid
		}
	})
	db.err = errors.Join(err1, err2)
	return db
}

func scan(path string, line func(fields []string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Split(sc.Text(), ":"); len(fields) >= 3 {
			line(fields)
		}
	}
	return sc.Err()
}

// User looks up a user by name.
func (db *DB) User(name string) (User, error) {
	if u, ok := db.users[name]; ok {
		return u, nil
	}
	if db.err != nil {
		return User{}, db.err
	}
	return User{}, fmt.Errorf("no user %s in /etc/passwd", name)
}

// Resolve gives the user and group ids of owner: "user:group", or one name or number
// for both (the original's owners, e.g. "app" or "1000"). Names are the machine's.
func (db *DB) Resolve(owner string) (uid, gid int, err error) {
	user, group, split := strings.Cut(owner, ":")
	if !split {
		group = user
	}
	if n, err := strconv.Atoi(user); err == nil {
		uid = n
	} else {
		u, err := db.User(user)
		if err != nil {
			return 0, 0, err
		}
		uid = u.UID
	}
	if n, err := strconv.Atoi(group); err == nil {
		return uid, n, nil
	}
	gid, ok := db.groups[group]
	if !ok {
		if db.err != nil {
			return 0, 0, db.err
		}
		return 0, 0, fmt.Errorf("no group %s in /etc/group", group)
	}
	return uid, gid, nil
}
