package services

import (
	"context"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// noting notes in its Finish step, as pdf-as does when its image cannot be built.
type noting struct{ name, note string }

func (n noting) Spec(*env.Env) Spec                   { return Spec{Name: n.name} }
func (noting) Files(*Context) ([]machine.File, error) { return nil, nil }
func (n noting) Finish(_ context.Context, c *Context) error {
	if n.note != "" {
		c.Note(n.note)
	}
	return nil
}

// TestFinishNotesReachStates: a note from a Finish step reaches the states the
// status shows; a service without one keeps its state as it was.
func TestFinishNotesReachStates(t *testing.T) {
	m, err := machine.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewContext(m, &env.Env{}, Facts{}, time.Time{})
	stack := []Service{noting{name: "a"}, noting{name: "b", note: "pdf-as is not running: no base"}}
	states, err := Configure(context.Background(), c, stack)
	if err != nil {
		t.Fatal(err)
	}
	if err := Finish(context.Background(), c, stack); err != nil {
		t.Fatal(err)
	}
	states = c.WithNotes(states)
	if states[0].Note != "" || states[1].Note != "pdf-as is not running: no base" || states[1].State != "configured" {
		t.Errorf("states: %+v", states)
	}
}
