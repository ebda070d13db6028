package services

import (
	"context"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// noting notes in its Finish or AfterApp step, as pdf-as does when its image cannot
// be built.
type noting struct {
	name, finish, after string
	changed             bool
}

func (n noting) Spec(*env.Env) Spec                   { return Spec{Name: n.name} }
func (noting) Files(*Context) ([]machine.File, error) { return nil, nil }
func (n noting) Finish(_ context.Context, c *Context) error {
	if n.finish != "" {
		c.Note(n.finish)
	}
	return nil
}
func (n noting) AfterApp(_ context.Context, c *Context) (bool, error) {
	if n.after != "" {
		c.Note(n.after)
	}
	return n.changed, nil
}

// TestLateNotesReachStates: notes from Finish and AfterApp steps reach the states
// the status shows; a service without one keeps its state as it was; AfterApp says
// whether any deferred step changed something.
func TestLateNotesReachStates(t *testing.T) {
	m, err := machine.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewContext(m, &env.Env{}, Facts{}, time.Time{})
	stack := []Service{noting{name: "a"}, noting{name: "b", finish: "CRL expires"}, noting{name: "c", after: "pdf-as is not running: no base", changed: true}}
	states, err := Configure(context.Background(), c, stack)
	if err != nil {
		t.Fatal(err)
	}
	if err := Finish(context.Background(), c, stack); err != nil {
		t.Fatal(err)
	}
	changed, err := AfterApp(context.Background(), c, stack)
	if err != nil || !changed {
		t.Errorf("AfterApp: changed %v, %v", changed, err)
	}
	states = c.WithNotes(states)
	if states[0].Note != "" || states[1].Note != "CRL expires" || states[2].Note != "pdf-as is not running: no base" || states[2].State != "configured" {
		t.Errorf("states: %+v", states)
	}
	if changed, _ := AfterApp(context.Background(), c, stack[:2]); changed {
		t.Error("AfterApp says changed with no deferred step that changed anything")
	}
}
