package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

// Dump writes the database in ECS's dump format (pg_dump custom, uncompressed, then
// gzip --rsyncable) to DumpDir/NAME.pgdump.gz, via a temporary file renamed when
// complete, and returns its path.
func (l *Lifecycle) Dump(ctx context.Context, name string) (string, error) {
	path := filepath.Join(DumpDir, name+".pgdump.gz")
	f, err := atomicfile.Create(l.M.Path(path), atomicfile.Options{Perm: 0o600})
	if err != nil {
		return "", err
	}
	defer f.Abort()
	err = l.pipe(ctx,
		machine.Command{Name: "pg_dump", User: "postgres", Args: []string{"--encoding=utf-8", "--format=custom", "-Z0", "-d", l.Env.ECS.Database}},
		machine.Command{Name: "gzip", Args: []string{"--rsyncable"}, Output: f})
	if err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return path, f.Commit()
}

// Restore replaces the database with the dump at path. The database it replaces is
// renamed, not dropped, and its new name returned: nothing is lost.
func (l *Lifecycle) Restore(ctx context.Context, path string) (string, error) {
	db := l.Env.ECS.Database
	kept := fmt.Sprintf("%s_before_restore_%s", db, strconv.FormatInt(time.Now().Unix(), 10))
	if _, err := postgresql.Query(ctx, l.M, "", fmt.Sprintf(`ALTER DATABASE "%s" RENAME TO "%s"`, db, kept)); err != nil {
		return "", err
	}
	if _, err := postgresql.EnsureDatabase(ctx, l.M, db); err != nil {
		return kept, err
	}
	in, err := os.Open(l.M.Path(path))
	if err != nil {
		return kept, err
	}
	defer in.Close()
	// --role: the restored objects belong to the app's role, as the dumped ones did.
	return kept, l.pipe(ctx,
		machine.Command{Name: "gzip", Args: []string{"-d"}, Input: in},
		machine.Command{Name: "pg_restore", User: "postgres", Args: []string{"-1", "--format=custom", "--schema=public", "--no-owner", "--role=" + postgresql.Role, "--dbname=" + db}})
}

// pipe runs from | to, the output of from streamed into to; both must succeed.
func (l *Lifecycle) pipe(ctx context.Context, from, to machine.Command) error {
	r, w := io.Pipe()
	from.Output, to.Input = w, r
	done := make(chan error, 1)
	go func() {
		_, err := l.M.Run(ctx, from)
		w.CloseWithError(err)
		done <- err
	}()
	_, toErr := l.M.Run(ctx, to)
	r.CloseWithError(io.ErrClosedPipe) // unblocks from when to ended early
	if fromErr := <-done; fromErr != nil {
		return fromErr
	}
	return toErr
}
