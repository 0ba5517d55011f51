package testclock

import (
	"testing"
	"time"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	c := New()
	if !c.Now().Equal(Start) || !c.Now().Equal(c.Now()) {
		t.Fatalf("a new clock reads %v, want %v and no movement", c.Now(), Start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now().Sub(Start); got != 90*time.Second {
		t.Errorf("after Advance(90s): %v past Start", got)
	}
}
