// Package testclock is the clock tests move by hand: code under test takes a `Now func()
// time.Time` and tests pass (*Clock).Now.
package testclock

import (
	"sync"
	"testing/synctest"
	"time"
)

// Start is where New clocks begin: a fixed instant, so that stored times are predictable.
var Start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// Clock is a clock that moves only when told. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock at Start.
func New() *Clock { return &Clock{now: Start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Advance moves the fake clock of a testing/synctest bubble on by d (to the instant it names,
// nothing runs in real time) and returns once every goroutine of the bubble is durably
// blocked again, so what the timers set off has run. Call it from the bubble's root goroutine.
func Advance(d time.Duration) {
	<-time.After(d) // in a bubble, time jumps as soon as everything else is blocked
	synctest.Wait()
}

// AdvanceTo is Advance to the instant at.
func AdvanceTo(at time.Time) { Advance(time.Until(at)) }
