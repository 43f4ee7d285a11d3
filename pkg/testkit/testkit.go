// Package testkit holds the small helpers tests across the module share: a settable clock, a
// log buffer, the committed fuzz corpora, the events/ fixtures and the tools `make test`
// installs. It imports only the standard library and the Lambda event types, so that tests of
// the lowest packages (token, secrets) can use it without building the system; pkg/testworld
// is the system.
package testkit

import (
	"bytes"
	"strings"
	"sync"
	"time"
)

// Clock is a settable clock, safe for concurrent use: the code under test reads it from its
// own goroutines while the test moves it. The zero Clock stands at the zero time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now tells the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Buffer collects what concurrent writers write (log lines, metrics) while the test reads
// it. The zero Buffer is empty and ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines returns what was written so far as lines, without their newlines: one a record for
// the JSON logs and metrics the functions write. An empty buffer has no lines.
func (b *Buffer) Lines() []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
