package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func noEnv(string) string { return "" }

func TestLoggerFormats(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		var b bytes.Buffer
		newLogger(&b, "json", levelVar("info"), noEnv).Info("hello", "events", 3)
		var rec map[string]any
		if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
			t.Fatalf("not JSON: %q", b.String())
		}
		if rec["msg"] != "hello" || rec["events"] != float64(3) || rec["time"] == nil {
			t.Fatalf("record %v", rec)
		}
	})
	t.Run("plain text off a terminal", func(t *testing.T) {
		var b bytes.Buffer
		newLogger(&b, "auto", levelVar("info"), noEnv).Info("hello", "events", 3)
		s := b.String()
		if strings.Contains(s, "\x1b[") {
			t.Fatalf("colours off a terminal: %q", s)
		}
		if !strings.Contains(s, "hello") || !strings.Contains(s, "events=3") || !strings.Contains(s, ":") {
			t.Fatalf("text record %q", s)
		}
	})
	t.Run("journald: no colours, no timestamp", func(t *testing.T) {
		var b bytes.Buffer
		env := func(k string) string {
			if k == "JOURNAL_STREAM" {
				return "8:12345"
			}
			return ""
		}
		newLogger(&b, "auto", levelVar("info"), env).Info("hello")
		s := b.String()
		if strings.Contains(s, "\x1b[") || !strings.HasPrefix(s, "INF hello") {
			t.Fatalf("journald record %q", s)
		}
	})
	t.Run("level filters", func(t *testing.T) {
		var b bytes.Buffer
		l := newLogger(&b, "text", levelVar("warn"), noEnv)
		l.Info("quiet")
		l.Warn("loud")
		if strings.Contains(b.String(), "quiet") || !strings.Contains(b.String(), "loud") {
			t.Fatalf("level warn: %q", b.String())
		}
	})
}

// JOURNAL_STREAM only counts when it names the stream we write to.
func TestUnderJournaldChecksTheStream(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	match := strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(st.Ino, 10)
	if !underJournald(f, match) {
		t.Fatalf("JOURNAL_STREAM %s naming the file not recognised", match)
	}
	if underJournald(f, "1:2") || underJournald(f, "garbage") || underJournald(f, "") {
		t.Fatal("JOURNAL_STREAM naming another stream recognised")
	}
}
