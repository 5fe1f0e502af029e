package kv

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// scheduler grants Pebble's compactions up to the number the store allows
// without permission, as Pebble's own ConcurrencyLimitScheduler does, but
// without its 100 ms ticker. That ticker woke a daemon that had nothing to
// do ten times a second: most of its idle CPU (0.135 CPU-seconds a minute
// measured, against a target of 0.05). The ticker catches a rise in the
// allowed count while compactions run; here a waiting compaction is
// granted when a running one ends, when a flush reports a change, and
// whenever Pebble asks: enough for a store that mostly sits idle.
type scheduler struct {
	db      pebble.DBForCompaction
	poke    chan struct{} // a flush changed what is allowed: grant on the granter goroutine
	stop    chan struct{}
	done    chan struct{}
	started sync.Once

	mu           sync.Mutex
	running      int
	unregistered bool
	granting     bool
	grantingDone *sync.Cond
}

var _ pebble.CompactionScheduler = (*scheduler)(nil)

func newScheduler() *scheduler {
	s := &scheduler{poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.grantingDone = sync.NewCond(&s.mu)
	return s
}

func (s *scheduler) Register(_ int, db pebble.DBForCompaction) { s.db = db }

// startGranter starts, on the first poke, the goroutine that grants on
// behalf of Pebble's callers that hold its mutex. (Not in Register: a
// store that never flushes needs none. Pebble never unregisters from a
// failed Open: kv does.)
func (s *scheduler) startGranter() {
	s.started.Do(func() {
		go func() {
			defer close(s.done)
			for {
				select {
				case <-s.poke:
					s.grant()
				case <-s.stop:
					return
				}
			}
		}()
	})
}

// Unregister stops the granter and waits until no grant is in progress;
// none happens after.
func (s *scheduler) Unregister() {
	s.started.Do(func() { close(s.done) }) // never started: nothing to wait for
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered = true
	for s.granting {
		s.grantingDone.Wait()
	}
}

func (s *scheduler) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unregistered || s.db.GetAllowedWithoutPermission() <= s.running {
		return false, nil
	}
	s.running++
	return true, s
}

// UpdateGetAllowedWithoutPermission is called with Pebble's own mutex
// held: the grant, which takes it, happens on the granter goroutine.
func (s *scheduler) UpdateGetAllowedWithoutPermission() {
	s.startGranter()
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// The grant handle.
func (s *scheduler) Started()                                          {}
func (s *scheduler) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (s *scheduler) CumulativeStats(pebble.CompactionGrantHandleStats) {}

func (s *scheduler) Done() {
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
	s.grant()
}

// grant hands waiting compactions their turn, as many as allowed. Pebble's
// methods are called without s.mu held (its mutexes come first), except
// GetAllowedWithoutPermission, which Pebble allows under it.
func (s *scheduler) grant() {
	s.mu.Lock()
	for s.granting {
		s.grantingDone.Wait()
	}
	if s.unregistered {
		s.mu.Unlock()
		return
	}
	n := s.db.GetAllowedWithoutPermission() - s.running
	if n <= 0 {
		s.mu.Unlock()
		return
	}
	s.granting = true
	s.mu.Unlock()
	for ; n > 0; n-- {
		if waiting, _ := s.db.GetWaitingCompaction(); !waiting {
			break
		}
		s.mu.Lock()
		s.running++ // before Schedule: the compaction may end (Done) before it returns
		s.mu.Unlock()
		if !s.db.Schedule(s) {
			s.mu.Lock()
			s.running--
			s.mu.Unlock()
			break
		}
	}
	s.mu.Lock()
	s.granting = false
	s.grantingDone.Broadcast()
	s.mu.Unlock()
}
