// Command staticprobe is the smallest program that uses the state store: it opens
// the store in DIR on ADDRESS, writes a tag and prints it back. TestStaticBinary
// builds it with firstboot/static.mk to prove a fully static link works.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/state"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: staticprobe DIR ADDRESS")
		os.Exit(2)
	}
	if err := probe(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "staticprobe:", err)
		os.Exit(1)
	}
}

func probe(dir, address string) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := state.Open(ctx, dir, state.Options{Address: address})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	if err := s.SetTag(ctx, state.TagLastRunningAppliance, "static"); err != nil {
		return err
	}
	v, _, err := s.Tag(ctx, state.TagLastRunningAppliance)
	if err != nil {
		return err
	}
	fmt.Println(v)
	return nil
}
