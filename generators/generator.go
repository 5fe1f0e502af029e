package generators

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
)

// Generator computes derived values from the mirrored events. Update is
// called with the events that changed since its last successful run, each
// with what it was and what it is (or, when in.Rebuild is set, with every
// event, out starting empty), and writes through out, which can only
// address the generator's own keys: its values, generated:{name}:*, and
// its state, mirrord:state:{name}:*. What it writes is committed with its
// new position in the change feed: either both or neither.
//
// A run takes back what each event's before-image contributed and adds
// what its new version does; after a failure or a crash the same changes
// are handed over again, against the state of the last commit. Update is
// called from one goroutine at a time. in and out are valid only until
// Update returns: a Scope kept for later reads what that run knew, not
// the store.
type Generator interface {
	Update(ctx context.Context, in *Input, out *Scope) error
}

// Versioned is implemented by a generator whose definition of its values
// can change between releases (a new value layout, a different reading of
// the events). Its position records the Version its values were computed
// with; when that differs from the generator's own, at the next start, it
// is rebuilt from the whole mirror. A generator without a Version method
// is at version 0.
type Versioned interface {
	Version() int
}

func versionOf(g Generator) int {
	if v, ok := g.(Versioned); ok {
		return v.Version()
	}
	return 0
}

// EventError is an error a generator met on one event; the runner logs
// and reports its id.
type EventError struct {
	ID  string
	Err error
}

func (e *EventError) Error() string { return fmt.Sprintf("event %q: %v", e.ID, e.Err) }
func (e *EventError) Unwrap() error { return e.Err }

// WithEvent wraps err with the id of the event it concerns (unless it
// already names one).
func WithEvent(id string, err error) error {
	var ee *EventError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &EventError{ID: id, Err: err}
}

var (
	regMu    sync.Mutex
	registry = map[string]func() Generator{}
)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Register makes a generator available under name, in the style of
// database/sql drivers: call it from an init function. It panics on an
// invalid or duplicate name, which is a programming error.
func Register(name string, factory func() Generator) {
	regMu.Lock()
	defer regMu.Unlock()
	if !validName.MatchString(name) {
		panic(fmt.Sprintf("generators: invalid name %q (lower-case letters, digits, '-' and '_')", name))
	}
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("generators: %q registered twice", name))
	}
	if factory == nil {
		panic(fmt.Sprintf("generators: nil factory for %q", name))
	}
	registry[name] = factory
}

// Names returns the registered generators, sorted.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookup(name string) (func() Generator, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	f, ok := registry[name]
	return f, ok
}

// registeredVersion is the Version of the generator registered as name;
// ok is false when there is none.
func registeredVersion(name string) (v int, ok bool) {
	f, ok := lookup(name)
	if !ok {
		return 0, false
	}
	return versionOf(f()), true
}

// ErrUnknown: a configured generator is not registered.
var ErrUnknown = errors.New("unknown generator")

// CheckNames returns an error naming the first name that is not
// registered.
func CheckNames(names []string) error {
	for _, n := range names {
		if _, ok := lookup(n); !ok {
			return fmt.Errorf("%w %q (registered: %v)", ErrUnknown, n, Names())
		}
	}
	return nil
}
