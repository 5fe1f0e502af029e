package kv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/faultfs"
	"github.com/mirrord/mirrord/internal/testkit"
	"go.uber.org/goleak"
)

// Storage faults at the kv level, through Pebble's own vfs (errorfs over
// the real file system). A failure Pebble cannot go on from (its WAL, its
// manifest, a memtable flush) ends the process with one line (see
// Options.OnFatal), so those tests run the store in a child process (the
// test binary again, see runChild) and check how it ended and what a
// restart finds. Failures Pebble handles stay errors of the call.

var errInjected = errors.New("injected I/O error")

// onFiles restricts a fault to the files whose base name match says.
func onFiles(match func(base string) bool, kinds func(errorfs.OpKind) bool, err error) func(errorfs.Op) error {
	return func(op errorfs.Op) error {
		if kinds(op.Kind) && match(filepath.Base(op.Path)) {
			return err
		}
		return nil
	}
}

func isWAL(base string) bool      { return strings.HasSuffix(base, ".log") }
func isManifest(base string) bool { return strings.HasPrefix(base, "MANIFEST-") }

// isTable is an sstable Pebble writes (a flush's), not one of an ingest
// (those are written in bulk-tmp, under their own names).
func isTable(base string) bool {
	return strings.HasSuffix(base, ".sst") && !strings.HasPrefix(base, "ingest-")
}

func isWrite(k errorfs.OpKind) bool  { return k == errorfs.OpFileWrite || k == errorfs.OpFileWriteAt }
func isCreate(k errorfs.OpKind) bool { return k == errorfs.OpCreate || k == errorfs.OpReuseForWrite }

// childFaults are the faults a child can meet, by name.
var childFaults = map[string]func(errorfs.Op) error{
	"none":         func(errorfs.Op) error { return nil },
	"wal-write":    onFiles(isWAL, isWrite, errInjected),
	"wal-sync":     onFiles(isWAL, faultfs.IsSyncOp, errInjected),
	"wal-create":   onFiles(isWAL, isCreate, errInjected),
	"manifest":     onFiles(isManifest, isWrite, errInjected),
	"flush":        onFiles(isTable, isCreate, &fs.PathError{Op: "open", Path: "table", Err: syscall.ENOSPC}),
	"diskfull":     faultfs.DiskFull,
	"wal-and-sync": onFiles(isWAL, func(k errorfs.OpKind) bool { return isWrite(k) || faultfs.IsSyncOp(k) }, errInjected),
}

// childValue is the value of every batch's key: 1 KiB.
var childValue = strings.Repeat("v", 1000)

// putBatch writes batch i: its key and "last" = i, atomically.
func putBatch(db *DB, i int) error {
	return db.Batch([]Op{PutOp(fmt.Sprintf("k:%06d", i), childValue), PutOp("last", i)})
}

// childBatches writes batches, 10 before the fault and then until the
// fault ends the process, printing the number of each acknowledged one.
func childBatches(c childConfig, sfs *switchFS) {
	db, err := Open(c.store, &Options{FS: sfs, Sync: c.sync, MemTableSize: 1 << 20, Logger: childLogger()})
	if err != nil {
		childFailed(err)
	}
	const before, most = 10, 20000
	for i := 0; i < before+most; i++ {
		if i == before {
			sfs.on.Store(true)
		}
		if err := putBatch(db, i); err != nil {
			childFailed(err)
		}
		fmt.Println(i)
		// Without Sync the fault is met by Pebble's WAL flusher, a
		// goroutine of its own: let it run.
		runtime.Gosched()
	}
	os.Exit(3)
}

// A failure Pebble cannot go on from, met while writing batches, ends the
// process with one line naming the store and the cause, never a panic or
// a hang; what is on disk reopens as a prefix of the batches (never a
// torn one) holding, with Sync, every acknowledged batch.
func TestWriteFaultEndsTheProcessAndTheFilesStayAPrefix(t *testing.T) {
	for _, tc := range []struct {
		name, fault string
		sync        bool
		cause       string
	}{
		// Without Sync a failed WAL write surfaces when Pebble's WAL
		// writer next writes a block, behind the commits.
		{"WAL write fails", "wal-write", false, "injected I/O error"},
		{"WAL write fails, synced writes", "wal-write", true, "injected I/O error"},
		{"WAL sync fails, synced writes", "wal-sync", true, "injected I/O error"},
		// Pebble panics with its mutex released when it cannot create the
		// next WAL: the runtime's "unlock of unlocked mutex" before.
		{"WAL rotation fails", "wal-create", false, "injected I/O error"},
		{"manifest write fails", "manifest", false, "injected I/O error"},
		// Pebble retries a failed flush at once and without end.
		{"memtable flush fails", "flush", false, "no space left on device"},
		{"disk full", "diskfull", false, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			env := []string{"KVTEST_FAULT=" + tc.fault}
			if tc.sync {
				env = append(env, "KVTEST_SYNC=1")
			}
			r := runChild(t, "batches", store, env...)
			r.wantFatal(t, store, tc.cause)
			acked := r.last() + 1
			t.Logf("after %d batches: %s", acked, strings.TrimSpace(r.Stderr))
			if acked < 10 {
				t.Fatalf("the child acknowledged %d batches, fewer than it wrote before the fault", acked)
			}
			db, err := Open(store, &Options{Logger: testkit.QuietLogger()})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			// At most the acknowledged batches and the one in flight;
			// with Sync, at least every acknowledged one. Without Sync an
			// acknowledged batch may still have been in Pebble's WAL
			// buffer.
			n := checkPrefix(t, db, acked+1)
			if tc.sync && n < acked {
				t.Fatalf("with Sync, the restart lost acknowledged batches: %d of %d", n, acked)
			}
			// And it works again, from where it was.
			if err := putBatch(db, n); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkPrefix checks that the store holds batches 0..n-1 of putBatch and
// none after, n <= max, and returns n.
func checkPrefix(t *testing.T, db *DB, max int) int {
	t.Helper()
	keys, err := db.Keys("k:")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if k != fmt.Sprintf("k:%06d", i) {
			t.Fatalf("the store holds %q at position %d: not a prefix of the batches", k, i)
		}
	}
	var last int
	found, err := db.Get("last", &last)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 && (!found || last != len(keys)-1) || len(keys) == 0 && found || len(keys) > max {
		t.Fatalf("%d batches stored (at most %d) but last = %d (found %v): a torn batch", len(keys), max, last, found)
	}
	return len(keys)
}

// childConcurrent writes from four goroutines, through Batch, Put and
// WriteBatch, until the fault ends the process; each prints what it had
// acknowledged as "w i".
func childConcurrent(c childConfig, sfs *switchFS) {
	db, err := Open(c.store, &Options{FS: sfs, Logger: childLogger()})
	if err != nil {
		childFailed(err)
	}
	const writers = 4
	var started, done sync.WaitGroup
	started.Add(writers)
	done.Add(writers)
	for w := range writers {
		go func() {
			defer done.Done()
			started.Done()
			val := strings.Repeat("v", 500)
			for i := 0; i < 20000; i++ {
				key := fmt.Sprintf("w%d:%06d", w, i)
				var err error
				switch i % 3 {
				case 0:
					err = db.Batch([]Op{PutOp(key, val)})
				case 1:
					err = db.Put(key, val)
				default:
					wb := db.NewWriteBatch()
					wb.Put(key, val)
					err = wb.Commit()
				}
				if err != nil {
					childFailed(err)
				}
				runtime.Gosched() // let Pebble's WAL flusher meet the fault
			}
		}()
	}
	started.Wait()
	sfs.on.Store(true)
	done.Wait()
	os.Exit(3)
}

// Writes from several goroutines when the WAL fails: the process ends
// with one line (before, about one run in ten crashed the runtime with
// "sync: unlock of unlocked mutex", unwinding through Pebble), and each
// writer's keys on disk are a prefix of what it wrote.
func TestConcurrentWritesMeetAFault(t *testing.T) {
	for round := range 3 {
		store := filepath.Join(t.TempDir(), "store")
		r := runChild(t, "concurrent", store, "KVTEST_FAULT=wal-and-sync")
		r.wantFatal(t, store, "injected I/O error")
		db, err := Open(store, &Options{Logger: testkit.QuietLogger()})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		for w := range 4 {
			keys, err := db.Keys(fmt.Sprintf("w%d:", w))
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range keys {
				if want := fmt.Sprintf("w%d:%06d", w, i); k != want {
					t.Fatalf("round %d: writer %d's keys are not a prefix of its writes: %q at %d", round, w, k, i)
				}
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// childFatalf opens the store and reports a fatal error as Pebble does
// (a broken invariant, say), through the Logger kv gives it.
func childFatalf(c childConfig, _ *switchFS) {
	db, err := Open(c.store, &Options{Logger: childLogger()})
	if err != nil {
		childFailed(err)
	}
	db.popts.Logger.Fatalf("pebble: invariant violated: %v\n(a second line)", errInjected)
	fmt.Fprintln(os.Stderr, "Fatalf returned")
	os.Exit(3)
}

// Pebble's Fatalf never returns: the store's fatal path ends the process
// with one line, the first of Pebble's message.
func TestPebbleFatalfEndsTheProcess(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	r := runChild(t, "fatalf", store, "KVTEST_FAULT=none")
	r.wantFatal(t, store, "PEBBLE (store "+store+"): "+ErrFailed.Error()+": pebble: invariant violated: injected I/O error")
	db, err := Open(store, &Options{Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// childOpenWrite opens the store, writes a key and closes it, with a full
// disk from the c.after+1st write operation on. An error from kv is
// printed ("error: ..."), and the child exits 0.
func childOpenWrite(c childConfig, sfs *switchFS) {
	sfs.on.Store(true)
	if err := openWriteClose(c.store, sfs); err != nil {
		fmt.Printf("error: enospc=%v locked=%v %v\n", errors.Is(err, syscall.ENOSPC), errors.Is(err, ErrLocked), err)
	}
}

func openWriteClose(store string, fs vfs.FS) error {
	db, err := Open(store, &Options{FS: fs, Logger: childLogger()})
	if err != nil {
		return err
	}
	err = db.Put("new", 1)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// A disk that fills up at any step of opening a store (a new one, or one
// holding data), writing to it and closing it: each ends in an error that
// says so, or the store's one-line fatal exit; never a panic, a hang,
// "locked" or "corrupt"; and once there is room again the store opens
// with its data intact.
func TestDiskFullAtEveryStepOfOpen(t *testing.T) {
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("existing=%v", existing), func(t *testing.T) {
			seed := func() string {
				store := filepath.Join(t.TempDir(), "store")
				if existing {
					db, err := Open(store, &Options{Logger: testkit.QuietLogger()})
					if err != nil {
						t.Fatal(err)
					}
					if err := db.Put("kept", "yes"); err != nil {
						t.Fatal(err)
					}
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
				}
				return store
			}
			// Count the operations a full disk fails in one
			// open-write-close.
			counting := newSwitchFS(vfs.Default, faultfs.DiskFull, 1<<30)
			counting.on.Store(true)
			if err := openWriteClose(seed(), counting); err != nil {
				t.Fatal(err)
			}
			n := int(counting.seen.Load())
			if n < 5 {
				t.Fatalf("only %d write operations counted", n)
			}
			fatal := 0
			for k := range n {
				store := seed()
				r := runChild(t, "openwrite", store, "KVTEST_FAULT=diskfull", fmt.Sprintf("KVTEST_AFTER=%d", k))
				switch {
				case r.Code == 1:
					r.wantFatal(t, store, "no space left on device")
					fatal++
				case r.Code != 0 || r.Stderr != "":
					t.Fatalf("disk full at write %d of %d: exit %d:\n%s", k+1, n, r.Code, r.Stderr)
				case r.Stdout != "" && !strings.HasPrefix(r.Stdout, "error: enospc=true locked=false") ||
					strings.Contains(r.Stdout, "corrupt") || strings.Contains(r.Stdout, "is locked"):
					t.Fatalf("disk full at write %d of %d: %s", k+1, n, r.Stdout)
				}
				db, err := Open(store, &Options{Logger: testkit.QuietLogger()})
				if err != nil {
					t.Fatalf("disk full at write %d of %d, then room again: %v", k+1, n, err)
				}
				var v string
				if found, err := db.Get("kept", &v); err != nil || existing && (!found || v != "yes") {
					t.Fatalf("disk full at write %d: the data is gone (%v %v)", k+1, found, err)
				}
				if err := db.Put("new", 1); err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%d of %d steps ended the process", fatal, n)
		})
	}
}

// A second Open of a store in use fails on the lock before it touches
// anything: the temporary files of a bulk load in progress stay.
func TestSecondOpenLeavesALoadInProgressAlone(t *testing.T) {
	mem := vfs.NewMem()
	db, err := Open("/store", &Options{FS: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tmp := mem.PathJoin("/store", "bulk-tmp")
	if err := mem.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := mem.Create(mem.PathJoin(tmp, "ingest-1.sst"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open("/store", &Options{FS: mem}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	if _, err := mem.Stat(mem.PathJoin(tmp, "ingest-1.sst")); err != nil {
		t.Fatalf("a refused Open removed the running load's files: %v", err)
	}
}

// A store directory that cannot be written is a clear error that says so:
// not "locked" (the lock file cannot even be created) and not "corrupt".
func TestOpenOfAnUnwritableStore(t *testing.T) {
	t.Run("read-only file system", func(t *testing.T) {
		dir := keptStore(t)
		for _, fresh := range []bool{false, true} {
			d := dir
			if fresh {
				d = filepath.Join(t.TempDir(), "new")
			}
			erofs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(faultfs.ReadOnly))
			_, err := Open(d, &Options{FS: erofs, Logger: testkit.QuietLogger()})
			if !errors.Is(err, ErrInitialization) || !errors.Is(err, syscall.EROFS) || errors.Is(err, ErrLocked) ||
				strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), d) {
				t.Fatalf("Open on a read-only file system (fresh %v): %v", fresh, err)
			}
		}
		checkKept(t, dir)
	})
	t.Run("directory mode 0500", func(t *testing.T) {
		dir := keptStore(t)
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
		if probe := filepath.Join(dir, "probe"); os.WriteFile(probe, nil, 0o644) == nil {
			os.Remove(probe)
			t.Skip("chmod does not stop this user writing (root): TestOpenOfAnUnwritableStore/read-only_file_system covers it")
		}
		_, err := Open(dir, &Options{Logger: testkit.QuietLogger()})
		if !errors.Is(err, ErrInitialization) || !errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrLocked) ||
			strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("Open of a read-only directory: %v", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		checkKept(t, dir)
	})
}

// keptStore makes a closed store on disk holding the key checkKept looks
// for.
func keptStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	db, err := Open(dir, &Options{Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put("kept", 1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func checkKept(t *testing.T, dir string) {
	t.Helper()
	db, err := Open(dir, &Options{Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatalf("the store does not open once writable again: %v", err)
	}
	defer db.Close()
	if found, err := db.Get("kept", nil); err != nil || !found {
		t.Fatalf("the store lost its data: %v %v", found, err)
	}
}

// A failed Open leaves nothing behind: no goroutine (goleak), no lock and
// no claim on the store in this process, so that Open succeeds once the
// cause is gone.
func TestFailedOpenLeavesNothingBehind(t *testing.T) {
	optionsFull := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if base := filepath.Base(op.Path); strings.HasPrefix(base, "OPTIONS-") || strings.HasSuffix(base, ".dbtmp") {
			return faultfs.DiskFull(op)
		}
		return nil
	}))
	for _, tc := range []struct {
		name  string
		fs    vfs.FS
		spoil func(t *testing.T, store string) (repair func())
		want  error
	}{
		{"OPTIONS cannot be written", optionsFull, nil, syscall.ENOSPC},
		{"manifest truncated", nil, func(t *testing.T, store string) func() {
			names, _ := filepath.Glob(filepath.Join(store, "MANIFEST-*"))
			if len(names) != 1 {
				t.Fatalf("manifests: %q", names)
			}
			good, err := os.ReadFile(names[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(names[0], good[:len(good)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := os.WriteFile(names[0], good, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, ErrCorrupt},
		{"not a store", nil, func(t *testing.T, store string) func() {
			notes := filepath.Join(store, "notes.txt")
			if err := os.WriteFile(notes, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"LOCK", "CURRENT"} {
				_ = os.Remove(filepath.Join(store, n))
			}
			entries, _ := os.ReadDir(store)
			var moved []string
			for _, e := range entries {
				if e.Name() != "notes.txt" {
					moved = append(moved, e.Name())
					if err := os.Rename(filepath.Join(store, e.Name()), filepath.Join(store, "..", e.Name())); err != nil {
						t.Fatal(err)
					}
				}
			}
			return func() {
				os.Remove(notes)
				for _, n := range moved {
					if err := os.Rename(filepath.Join(store, "..", n), filepath.Join(store, n)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}, ErrNotStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := keptStore(t)
			repair := func() {}
			if tc.spoil != nil {
				repair = tc.spoil(t, store)
			}
			_, err := Open(store, &Options{FS: tc.fs, Logger: testkit.QuietLogger()})
			if !errors.Is(err, ErrInitialization) || !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			goleak.VerifyNone(t)
			repair()
			checkKept(t, store)
		})
	}
}

// A failure Pebble handles stays an error of the call that met it: an
// ingest whose sstables cannot be linked into the store fails, and the
// store goes on (and ingests once the fault is gone).
func TestIngestLinkFailureIsAnError(t *testing.T) {
	sfs := newSwitchFS(vfs.NewMem(), func(op errorfs.Op) error {
		if op.Kind == errorfs.OpLink {
			return &os.LinkError{Op: "link", Old: op.Path, New: op.Path, Err: syscall.EACCES} // no copy instead
		}
		return nil
	}, 0)
	db, err := Open("/store", &Options{FS: sfs, Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustPut(t, db, "m:old", 1)
	ingest := func() error {
		in := db.NewIngest("m:", PrefixEnd([]byte("m:")))
		f := in.File()
		for _, k := range []string{"m:1", "m:2"} {
			if err := f.Add([]byte(k), []byte(`"v"`)); err != nil {
				t.Fatal(err)
			}
		}
		return in.Commit(t.Context())
	}
	sfs.on.Store(true)
	if err := ingest(); !errors.Is(err, ErrQuery) || !errors.Is(err, syscall.EACCES) {
		t.Fatalf("an ingest that cannot link its files: %v", err)
	}
	if got, _ := db.Keys("m:"); !slices.Equal(got, []string{"m:old"}) {
		t.Fatalf("a failed ingest changed the store: %q", got)
	}
	sfs.on.Store(false)
	mustPut(t, db, "after", 1)
	if err := ingest(); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Keys("m:"); !slices.Equal(got, []string{"m:1", "m:2"}) {
		t.Fatalf("after the ingest: %q", got)
	}
}
