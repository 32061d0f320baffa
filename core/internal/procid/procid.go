// Package procid identifies processes well enough to prove, on the same
// host, that the writer of a lock or temporary file is dead, so that its
// leftovers can be cleaned up at once instead of after an expiry.
//
// An [Identity] is the pid plus what makes the pid unique over time: the
// process start time (Linux /proc/<pid>/stat field 22, in clock ticks since
// boot), the kernel boot id and the pid namespace, and the host name. A
// process is provably dead only when all of these say so on this host; any
// doubt (another host, another boot, another pid namespace, missing
// fields, an OS without /proc) means "maybe alive", which callers treat as
// the upstream rules would.
package procid

import (
	"os"
	"strconv"
	"sync"
)

// Identity is what a process records about itself in the files it leaves
// behind. Zero fields are unknown.
type Identity struct {
	PID int `json:"pid,omitempty"`
	// Start is the process start time as the kernel reports it (Linux:
	// /proc/<pid>/stat field 22, clock ticks since boot).
	Start string `json:"procStart,omitempty"`
	// BootID is the kernel's boot id (/proc/sys/kernel/random/boot_id).
	BootID string `json:"bootId,omitempty"`
	// PIDNS names the pid namespace (the inode of /proc/self/ns/pid), so
	// that two containers sharing a disk never judge each other's pids.
	PIDNS string `json:"pidNs,omitempty"`
	// Host is the host name.
	Host string `json:"host,omitempty"`
}

var (
	selfOnce sync.Once
	self     Identity
)

// Self returns the identity of the running process, computed once.
func Self() Identity {
	selfOnce.Do(func() {
		self = Identity{PID: os.Getpid(), Start: startTime(os.Getpid()), BootID: bootID(), PIDNS: pidNamespace()}
		self.Host, _ = os.Hostname()
	})
	return self
}

// Dead reports whether the process that wrote id is provably gone: it ran
// on this host, in this boot and pid namespace, and no process with its
// pid and start time exists now. It never reports the caller itself dead.
func Dead(id Identity) bool {
	me := Self()
	if id.PID <= 0 || id.Host == "" || id.Host != me.Host {
		return false
	}
	if id.BootID == "" || id.BootID != me.BootID || id.PIDNS == "" || id.PIDNS != me.PIDNS || id.Start == "" {
		return false
	}
	if id.PID == me.PID {
		return id.Start != me.Start
	}
	now := startTime(id.PID)
	if now == "" {
		return !exists(id.PID)
	}
	return now != id.Start
}

// String formats id for messages: "pid 123 on host h".
func (id Identity) String() string {
	if id.PID == 0 {
		return "an unknown process"
	}
	s := "pid " + strconv.Itoa(id.PID)
	if id.Host != "" {
		s += " on host " + id.Host
	}
	return s
}
