package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
)

// logSeed fixes the synthetic logs, so that every run measures the same
// bytes.
const logSeed = 2026

// synthLog returns the path of a synthetic log of n events in dir, written
// by the application's serializer from a fixed seed. A log written by an
// earlier run is reused: the name holds the seed and the count, and the
// file only gets its name once complete.
func synthLog(dir string, n int) (string, error) {
	return writeOnce(filepath.Join(dir, fmt.Sprintf("synth-%d-%d.json", logSeed, n)), func(w io.Writer) error {
		enc := eventlog.NewEncoder(w)
		g := synth.New(logSeed)
		for range n {
			if err := enc.Encode(g.Event()); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeOnce returns path, written by write (buffered) unless an earlier
// run wrote it already: the file only gets its name once complete, so a
// run that stopped half-way leaves nothing to be taken for it.
func writeOnce(path string, write func(io.Writer) error) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := write(w); err != nil {
		f.Close()
		return "", err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// copyFile copies a log, so that a step that rewrites it leaves the
// cached one alone. (Streamed: the 1M-event log is 680 MB.)
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
