package mirror

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/mirrord/mirrord/internal/gitlog"
	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/prometheus/procfs"
)

// BenchmarkGitSpoolPeakRSS reads a blob of 16 MiB and one of 256 MiB from
// git into the spool, as git mode does for every new version of the log,
// and reports this process's peak resident memory during the reads
// (peak-RSS-MiB; the git child's is its own): the same for both sizes, a
// blob is streamed through a bounded buffer into a file, never held
// whole.
//
//	go test -run XXX -bench GitSpoolPeakRSS -benchtime 3x ./mirror
func BenchmarkGitSpoolPeakRSS(b *testing.B) {
	gittest.Need(b)
	for _, mib := range []int{16, 256} {
		b.Run(fmt.Sprintf("blob=%dMiB", mib), func(b *testing.B) {
			snap, src := bigBlobRepo(b, int64(mib)<<20)
			sp, err := newSpool(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer sp.close()
			resetPeakRSS(b)
			b.SetBytes(snap.Size)
			b.ResetTimer()
			for range b.N {
				// An empty spool each time: every byte is written.
				if err := sp.f.Truncate(0); err != nil {
					b.Fatal(err)
				}
				bl, err := src.Open(context.Background(), snap)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := sp.fill(context.Background(), bl, snap.Blob, snap.Size, snap.Size); err != nil {
					b.Fatal(err)
				}
				bl.Close()
			}
			b.StopTimer()
			b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MiB")
		})
	}
}

// bigBlobRepo makes a bare repository whose master holds data.json of
// size bytes (lines of synthetic text, written by git with fast
// compression) and returns the log's snapshot and a Source reading it
// (closed with the benchmark).
func bigBlobRepo(b *testing.B, size int64) (gitlog.Snapshot, *gitlog.Source) {
	b.Helper()
	dir := b.TempDir()
	content := filepath.Join(dir, "content")
	f, err := os.Create(content)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for n, i := int64(0), 0; n < size; i++ {
		k, _ := fmt.Fprintf(w, "{\"id\":\"%08d\",\"description\":\"line %d of a blob larger than any buffer\"}\n", i, i)
		n += int64(k)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	repo := gittest.BareRepo(b, filepath.Join(dir, "repo.git"))
	blob := gittest.Git(b, repo, "-c", "core.compression=1", "hash-object", "-w", "--", content)
	tree, err := gittest.Run(repo, []byte("100644 blob "+blob+"\tdata.json\n"), "mktree")
	if err != nil {
		b.Fatal(err)
	}
	commit := gittest.Git(b, repo, "commit-tree", tree, "-m", "big")
	gittest.Git(b, repo, "update-ref", "refs/heads/master", commit)
	os.Remove(content)
	path := filepath.Join(repo, "data.json")
	src, err := gitlog.NewSource(path, "master", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	snap, err := src.Stat(context.Background())
	if err != nil || snap.State != gitlog.Present {
		b.Fatalf("%+v, %v", snap, err)
	}
	return snap, src
}

// resetPeakRSS returns what the collector can and makes the current
// resident set the peak (Linux 4.0+: "5" to clear_refs).
func resetPeakRSS(b *testing.B) {
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak resident set: %v", err)
	}
}

// peakRSS is this process's peak resident set (VmHWM) in bytes.
func peakRSS(b *testing.B) int64 {
	p, err := procfs.Self()
	if err != nil {
		b.Fatal(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		b.Fatal(err)
	}
	return int64(st.VmHWM)
}
