package main

import (
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// levelVar returns a level variable set to level (validated by
// loadConfig), which a reload can change.
func levelVar(level string) *slog.LevelVar {
	var v slog.LevelVar
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	v.Set(lv)
	return &v
}

// newLogger builds the process logger:
//
//   - json: one JSON object per line, for log shippers;
//   - under journald (JOURNAL_STREAM names our stderr): plain text without
//     colours or timestamps, since journald adds its own;
//   - on a terminal: tint's coloured text;
//   - otherwise (a pipe, a file) or with "text": plain text with times.
func newLogger(w io.Writer, format string, lv slog.Leveler, getenv func(string) string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv}))
	}
	opts := &tint.Options{Level: lv, TimeFormat: time.DateTime + ".000", NoColor: true}
	switch {
	case underJournald(w, getenv("JOURNAL_STREAM")):
		opts.ReplaceAttr = dropTime
	case format == "auto" && isTerminal(w):
		opts.NoColor = false
		opts.TimeFormat = time.TimeOnly
	}
	return slog.New(tint.NewTextHandler(w, opts))
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// underJournald reports whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM holds "device:inode" of that stream. When w is
// not a file the variable alone decides (tests, wrappers).
func underJournald(w io.Writer, journalStream string) bool {
	if journalStream == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return true
	}
	devStr, inoStr, found := strings.Cut(journalStream, ":")
	dev, err1 := strconv.ParseUint(devStr, 10, 64)
	ino, err2 := strconv.ParseUint(inoStr, 10, 64)
	if !found || err1 != nil || err2 != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}
