package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/canonical/go-dqlite/client"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// node is one member of a test cluster.
type node struct {
	store   *Store
	address string
	stopped bool
}

// startCluster starts three nodes on loopback, the second and third joining the
// first, and waits until all three vote.
func startCluster(t *testing.T) []*node {
	t.Helper()
	ctx := deadline(t, 2*time.Minute)
	begin := time.Now()
	var nodes []*node
	t.Cleanup(func() {
		// Without a quorum a graceful close would wait for a leader in vain.
		for _, n := range nodes {
			if !n.stopped {
				n.store.abandon()
			}
		}
	})
	var join []string
	for range 3 {
		addr := testtool.FreeAddress(t)
		s, err := Open(ctx, t.TempDir(), Options{Address: addr, Join: join, Logger: testLogger})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &node{store: s, address: addr})
		join = append(join, addr)
	}
	waitFor(t, ctx, "three voters", func(ctx context.Context) bool {
		cli, err := nodes[0].store.app.Leader(ctx)
		if err != nil {
			return false
		}
		defer cli.Close()
		members, err := cli.Cluster(ctx)
		if err != nil {
			return false
		}
		voters := 0
		for _, m := range members {
			if m.Role == client.Voter {
				voters++
			}
		}
		return voters == 3
	})
	t.Logf("3-node cluster formed and voting in %v", time.Since(begin).Round(time.Millisecond))
	return nodes
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func(context.Context) bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// leaderAddress asks the cluster, through s, who leads.
func leaderAddress(t *testing.T, ctx context.Context, s *Store) string {
	t.Helper()
	cli, err := s.app.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	info, err := cli.Leader(ctx)
	if err != nil || info == nil {
		t.Fatalf("leader: %v %v", info, err)
	}
	return info.Address
}

func tagMap(t *testing.T, ctx context.Context, s *Store) map[string]string {
	t.Helper()
	tags, err := s.Tags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, tag := range tags {
		m[tag.Name] = tag.Value
	}
	return m
}

// TestCluster shows a three-node store keeps serving, and accepting writes, after
// losing a node: a follower that shuts down cleanly, or the leader dying without a
// handover (the crash case, which needs a new election).
func TestCluster(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader bool
	}{
		{"follower closes", false},
		{"leader crashes", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startCluster(t)
			ctx := deadline(t, 2*time.Minute)

			// Write through a node that does not lead: dqlite forwards to the leader.
			leader := leaderAddress(t, ctx, nodes[0].store)
			var writer *node
			for _, n := range nodes {
				if n.address != leader {
					writer = n
				}
			}
			want := map[string]string{TagLastRunningECS: "c0ffee", TagLastRunningAppliance: "v1"}
			for name, value := range want {
				if err := writer.store.SetTag(ctx, name, value); err != nil {
					t.Fatal(err)
				}
			}
			// Writes through all nodes at once collide on the leader ("database is
			// locked") and are retried.
			errs := make(chan error, len(nodes))
			for i, n := range nodes {
				name := fmt.Sprintf("node%d", i)
				want[name] = n.address
				go func() {
					var err error
					for range 5 {
						err = errors.Join(err, n.store.SetTag(ctx, name, n.address))
					}
					errs <- err
				}()
			}
			for range nodes {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}

			var victim *node
			for _, n := range nodes {
				if (n.address == leader) == tc.leader && n != writer {
					victim = n
				}
			}
			var lost time.Time
			stop := func() {
				lost = time.Now()
				victim.stopped = true
				if tc.leader {
					if err := victim.store.abandon(); err != nil {
						t.Error(err)
					}
				} else if err := victim.store.Close(); err != nil {
					t.Error(err)
				}
			}
			if tc.leader {
				// The leader dies while the writer's transaction is open: the
				// store retries the whole transaction once a new leader is elected.
				attempts := 0
				err := writer.store.transact(ctx, func(tx *sql.Tx) error {
					if attempts++; attempts == 1 {
						stop()
					}
					return setTag(ctx, tx, "last_build_ecs", "c0ffee")
				})
				if err != nil || attempts < 2 {
					t.Fatalf("transaction cut by the crash: %v after %d attempts; want success on a retry", err, attempts)
				}
				t.Logf("transaction cut by the leader's crash committed %v later", time.Since(lost).Round(time.Millisecond))
				want["last_build_ecs"] = "c0ffee"
			} else {
				stop()
			}

			var rest []*node
			for _, n := range nodes {
				if n != victim {
					rest = append(rest, n)
				}
			}
			for _, n := range rest {
				if got := tagMap(t, ctx, n.store); !reflect.DeepEqual(got, want) {
					t.Fatalf("node %s serves tags %v, want %v", n.address, got, want)
				}
			}
			if err := rest[0].store.SetTag(ctx, TagLastFailedECS, "bad1"); err != nil {
				t.Fatalf("write after losing a node: %v", err)
			}
			if v, ok, err := rest[1].store.Tag(ctx, TagLastFailedECS); err != nil || !ok || v != "bad1" {
				t.Fatalf("the other node reads %q %v %v", v, ok, err)
			}
			if now := leaderAddress(t, ctx, rest[0].store); now == victim.address {
				t.Fatalf("leader is still the stopped node %s", now)
			}
		})
	}
}
