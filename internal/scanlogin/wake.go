package scanlogin

import "sync"

// The waits on this node, by ticket: a step taken here wakes them at once,
// instead of at their next read of storage. Process-wide, since a ticket
// outlives a config reload; a ticket's entry goes once nobody waits on it.
var waits struct {
	sync.Mutex
	m map[string]*waitEntry
}

type waitEntry struct {
	changed chan struct{} // closed by wake
	n       int           // the waits holding it
}

// watch returns a channel that is closed at the ticket's next step on this
// node, and the func to call once no longer watching.
func watch(ticket string) (changed <-chan struct{}, release func()) {
	waits.Lock()
	defer waits.Unlock()
	if waits.m == nil {
		waits.m = map[string]*waitEntry{}
	}
	e := waits.m[ticket]
	if e == nil {
		e = &waitEntry{changed: make(chan struct{})}
		waits.m[ticket] = e
	}
	e.n++
	return e.changed, func() {
		waits.Lock()
		defer waits.Unlock()
		if e.n--; e.n == 0 && waits.m[ticket] == e {
			delete(waits.m, ticket)
		}
	}
}

// wake wakes the waits on the ticket.
func wake(ticket string) {
	waits.Lock()
	defer waits.Unlock()
	if e := waits.m[ticket]; e != nil {
		close(e.changed)
		delete(waits.m, ticket)
	}
}

// watched is how many tickets are watched now (for tests: none may leak).
func watched() int {
	waits.Lock()
	defer waits.Unlock()
	return len(waits.m)
}
