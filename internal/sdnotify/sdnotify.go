// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): datagrams such as "READY=1", "STATUS=..." and
// "WATCHDOG=1" sent to the unix socket named by $NOTIFY_SOCKET. Without
// that variable (not started by systemd, or Type= is not notify) every
// call is a no-op, so callers never need to ask.
package sdnotify

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to one socket.
type Notifier struct {
	addr *net.UnixAddr
}

// New reads $NOTIFY_SOCKET through getenv. An abstract socket ("@name")
// is supported.
func New(getenv func(string) string) *Notifier {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return &Notifier{}
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends one notification, lines separated by '\n'
// ("READY=1\nSTATUS=caught up").
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// Ready says the service is up (after its initial work).
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1\nSTATUS=" + status)
}

// Status sets the one-line status systemctl shows.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + status) }

// Watchdog pings the watchdog.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// ExtendTimeout asks systemd to wait d more, from now, for the service to
// finish starting (or stopping): sent while a long first load progresses,
// so that a start that is moving is not killed by TimeoutStartSec, while
// one that stops moving still is.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	return n.Send("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// Stopping says the service is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Reloading says the service is reloading its configuration; send Ready
// when done. The monotonic timestamp lets Type=notify-reload match them.
func (n *Notifier) Reloading(now time.Duration) error {
	return n.Send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(now.Microseconds(), 10))
}

// WatchdogInterval returns how often the watchdog must be pinged: half of
// $WATCHDOG_USEC (when $WATCHDOG_PID, if set, is pid), and whether the
// watchdog is on.
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, bool) {
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond / 2, true
}
