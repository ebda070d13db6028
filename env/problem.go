package env

import (
	"fmt"
	"strings"
)

// Position is where something is in a file; Line and Col count from 1, 0 means unknown.
type Position struct {
	File string
	Line int
	Col  int
}

func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

func (p Position) before(q Position) bool {
	return p.Line < q.Line || p.Line == q.Line && p.Col < q.Col
}

// Error is one problem that makes env.yml unusable.
type Error struct {
	Position
	Msg string
}

func (e *Error) Error() string { return e.Position.String() + ": " + e.Msg }

// Warning is a problem that does not stop the appliance (a key that does nothing, a
// deprecated spelling, a test-only value).
type Warning struct {
	Position
	Msg string
}

func (w Warning) String() string { return w.Position.String() + ": warning: " + w.Msg }

// ErrorList is every error found in one file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}
