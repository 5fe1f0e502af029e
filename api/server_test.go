package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %q: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %q: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestGet(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 10})
	ctx := testCtx(t, 10*time.Second)
	ev := f.events[3]

	v, found, err := f.client.Get(ctx, schema.EventKey(ev.ID))
	if err != nil || !found {
		t.Fatalf("Get event: found %v, err %v", found, err)
	}
	want, _ := json.Marshal(ev)
	if !jsonEqual(t, v, want) {
		t.Errorf("Get event = %s, want %s", v, want)
	}
	var stored json.RawMessage
	if _, err := f.db.Get(schema.EventKey(ev.ID), &stored); err != nil || !bytes.Equal(stored, v) {
		t.Errorf("Get returned %s, the store holds %s (%v)", v, stored, err)
	}

	if len(ev.Modifiers) == 0 {
		ev = f.events[slices.IndexFunc(f.events, func(e *eventlog.Event) bool { return len(e.Modifiers) > 0 })]
	}
	m := ev.Modifiers[0]
	v, found, err = f.client.Get(ctx, schema.ModifierKey(ev.ID, m.Name))
	if err != nil || !found {
		t.Fatalf("Get modifier: found %v, err %v", found, err)
	}
	if wantMod, _ := json.Marshal(map[string]string{"value": m.Value}); !jsonEqual(t, v, wantMod) {
		t.Errorf("Get modifier = %s, want %s", v, wantMod)
	}

	v, found, err = f.client.Get(ctx, schema.EventKey("no-such-event"))
	if err != nil || found || v != nil {
		t.Errorf("Get of a missing key: %q, found %v, err %v; want nothing, false, nil", v, found, err)
	}

	// Without a key: a bad request, whose message comes back as the error.
	if _, _, err := f.client.Get(ctx, ""); err == nil || !strings.Contains(err.Error(), "key is required") {
		t.Errorf("Get(\"\") error = %v, want the server's message about the missing key", err)
	}
	code, body := httpDo(t, f.sock, "GET", "/v1/get")
	if code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
		t.Errorf("GET /v1/get without key: %d %q, want 400 with an error body", code, body)
	}
	code, body = httpDo(t, f.sock, "GET", "/v1/get?key="+url.QueryEscape("event:nope"))
	if code != http.StatusNotFound || !strings.Contains(body, `event:nope`) {
		t.Errorf("GET of a missing key: %d %q, want 404 naming the key", code, body)
	}
	// Keys with characters that need escaping in a URL.
	if err := f.db.Put(schema.GeneratedKey("t", "a b&c=d?#é:%"), map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	v, found, err = f.client.Get(ctx, schema.GeneratedKey("t", "a b&c=d?#é:%"))
	if err != nil || !found || string(v) != `{"n":1}` {
		t.Errorf("Get of an awkward key: %s, %v, %v", v, found, err)
	}
	// Only GET.
	if code, _ := httpDo(t, f.sock, "POST", "/v1/get?key=x"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/get: %d, want 405", code)
	}
}

// storeKeys lists the keys and values under prefix straight from the store.
func storeKeys(t *testing.T, db *kv.DB, prefix string) ([]string, map[string]json.RawMessage) {
	t.Helper()
	var keys []string
	vals := map[string]json.RawMessage{}
	err := db.Scan(prefix, func(k string, v json.RawMessage) error {
		keys = append(keys, k)
		vals[k] = append(json.RawMessage(nil), v...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, vals
}

func TestStreamKeysAndDump(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 30, generators: []string{"summary", "hashtags"}})
	for _, prefix := range []string{"", schema.PrefixEvent, schema.PrefixModifier, schema.PrefixGenerated, "generated:summary:", "event:" + f.events[0].ID[:1], "nothing-here:"} {
		wantKeys, wantVals := storeKeys(t, f.db, prefix)
		if prefix == schema.PrefixEvent && len(wantKeys) != 30 {
			t.Fatalf("store holds %d events, want 30", len(wantKeys))
		}

		got, err := streamLines(t, f.client, false, prefix)
		if err != nil {
			t.Fatalf("keys %q: %v", prefix, err)
		}
		var keys []string
		for _, l := range got {
			if !strings.HasSuffix(l, "\n") || strings.Count(l, "\n") != 1 {
				t.Fatalf("keys %q: line %q is not one newline-terminated line", prefix, l)
			}
			var k string
			if err := json.Unmarshal([]byte(l), &k); err != nil {
				t.Fatalf("keys %q: line %q is not a JSON string: %v", prefix, l, err)
			}
			keys = append(keys, k)
		}
		if !slices.Equal(keys, wantKeys) {
			t.Errorf("keys %q: got %d keys, want %d (the store's, in order)\n got %q\nwant %q", prefix, len(keys), len(wantKeys), keys, wantKeys)
		}

		got, err = streamLines(t, f.client, true, prefix)
		if err != nil {
			t.Fatalf("dump %q: %v", prefix, err)
		}
		var dumped []string
		for _, l := range got {
			var d dumpLine
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("dump %q: line %q is not {key, value}: %v", prefix, l, err)
			}
			if !strings.HasPrefix(d.Key, prefix) {
				t.Errorf("dump %q: key %q outside the prefix", prefix, d.Key)
			}
			if !bytes.Equal(d.Value, wantVals[d.Key]) {
				t.Errorf("dump %q: %s = %s, the store holds %s", prefix, d.Key, d.Value, wantVals[d.Key])
			}
			if want := string(api.AppendLine(nil, d.Key, wantVals[d.Key], true)); l != want {
				t.Errorf("dump %q: line %q, want %q (AppendLine)", prefix, l, want)
			}
			dumped = append(dumped, d.Key)
		}
		if !slices.Equal(dumped, wantKeys) {
			t.Errorf("dump %q: got %d keys, want %d", prefix, len(dumped), len(wantKeys))
		}
	}
}

// page fetches one page of /v1/keys or /v1/dump and returns the keys.
func page(t *testing.T, sock, endpoint, prefix, after string, limit int) []string {
	t.Helper()
	q := url.Values{"prefix": {prefix}, "after": {after}, "limit": {fmt.Sprint(limit)}}
	code, body := httpDo(t, sock, "GET", endpoint+"?"+q.Encode())
	if code != http.StatusOK {
		t.Fatalf("%s?%s: %d %s", endpoint, q.Encode(), code, body)
	}
	var keys []string
	for _, l := range lines(t, body) {
		if endpoint == "/v1/dump" {
			var d dumpLine
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				t.Fatalf("dump line %q: %v", l, err)
			}
			keys = append(keys, d.Key)
		} else {
			var k string
			if err := json.Unmarshal([]byte(l), &k); err != nil {
				t.Fatalf("keys line %q: %v", l, err)
			}
			keys = append(keys, k)
		}
	}
	return keys
}

func TestPaging(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 23})
	for _, endpoint := range []string{"/v1/keys", "/v1/dump"} {
		for _, prefix := range []string{schema.PrefixEvent, schema.PrefixModifier, ""} {
			whole, _ := storeKeys(t, f.db, prefix)
			for _, limit := range []int{1, 4, 7, len(whole), len(whole) + 5} {
				var all []string
				after := ""
				for pages := 0; ; pages++ {
					if pages > len(whole)+2 {
						t.Fatalf("%s %q limit %d: paging does not end", endpoint, prefix, limit)
					}
					keys := page(t, f.sock, endpoint, prefix, after, limit)
					if len(keys) > limit {
						t.Fatalf("%s %q: a page of %d keys with limit %d", endpoint, prefix, len(keys), limit)
					}
					if len(keys) > 0 && after != "" && keys[0] <= after {
						t.Fatalf("%s %q: page after %q starts at %q: after is exclusive", endpoint, prefix, after, keys[0])
					}
					all = append(all, keys...)
					if len(keys) < limit {
						break
					}
					after = keys[len(keys)-1]
				}
				if !slices.Equal(all, whole) {
					t.Errorf("%s %q limit %d: pages give %d keys, the whole range %d", endpoint, prefix, limit, len(all), len(whole))
				}
			}
		}
	}

	events, _ := storeKeys(t, f.db, schema.PrefixEvent)
	// after a key that is not stored: the page starts at the next one.
	between := events[4] + "\x00"
	if got := page(t, f.sock, "/v1/keys", schema.PrefixEvent, between, 2); !slices.Equal(got, events[5:7]) {
		t.Errorf("page after %q = %q, want %q", between, got, events[5:7])
	}
	// after before the prefix: the whole range; after past it: nothing.
	if got := page(t, f.sock, "/v1/keys", schema.PrefixEvent, "a", 0); !slices.Equal(got, events) {
		t.Errorf("after before the prefix: %d keys, want %d", len(got), len(events))
	}
	for _, after := range []string{"event;", "f", events[len(events)-1], "event:\U0010FFFF"} {
		if got := page(t, f.sock, "/v1/keys", schema.PrefixEvent, after, 0); len(got) != 0 {
			t.Errorf("after %q (past the range): %q, want nothing", after, got)
		}
	}
	// limit 0 means everything.
	if got := page(t, f.sock, "/v1/dump", schema.PrefixEvent, "", 0); !slices.Equal(got, events) {
		t.Errorf("limit 0: %d keys, want %d", len(got), len(events))
	}
	for _, bad := range []string{"-1", "x", "1.5"} {
		code, body := httpDo(t, f.sock, "GET", "/v1/keys?limit="+bad)
		if code != http.StatusBadRequest || !strings.Contains(body, "limit") {
			t.Errorf("limit=%s: %d %q, want 400 about the limit", bad, code, body)
		}
	}
}

// putMany writes n keys under prefix with values of about size bytes.
func putMany(t *testing.T, db *kv.DB, prefix string, n, size int) {
	t.Helper()
	pad := strings.Repeat("x", size)
	for start := 0; start < n; start += 5000 {
		var ops []kv.Op
		for i := start; i < min(n, start+5000); i++ {
			ops = append(ops, kv.PutOp(fmt.Sprintf("%s%06d", prefix, i), map[string]any{"i": i, "pad": pad}))
		}
		if err := db.Batch(ops); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStreamLarge(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 1})
	const n = 20000
	putMany(t, f.db, "generated:bulk:", n, 20)
	for _, values := range []bool{false, true} {
		count := 0
		prev := ""
		err := f.client.Stream(testCtx(t, 20*time.Second), values, "generated:bulk:", func(line []byte) error {
			var k string
			if values {
				var d dumpLine
				if err := json.Unmarshal(line, &d); err != nil {
					return err
				}
				k = d.Key
			} else if err := json.Unmarshal(line, &k); err != nil {
				return err
			}
			if want := fmt.Sprintf("generated:bulk:%06d", count); k != want {
				return fmt.Errorf("line %d is %q, want %q", count, k, want)
			}
			if k <= prev {
				return fmt.Errorf("%q after %q: not in order", k, prev)
			}
			prev = k
			count++
			return nil
		})
		if err != nil || count != n {
			t.Fatalf("stream (values %v): %d lines, err %v; want %d", values, count, err, n)
		}
	}
}

// serverStreaming reports whether a goroutine is inside the stream handler.
func serverStreaming() bool {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Contains(buf, []byte("api.(*Server).stream"))
}

// A client that stops reading early: the server is mid-scan (it streams,
// it did not build the range first), and once the client hangs up the
// handler ends, and the server and the store close promptly.
func TestStreamClientGoesAway(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 1})
	putMany(t, f.db, "generated:bulk:", 20000, 200) // ~4.5 MB of dump: far more than socket buffers hold
	hc, closeIdle := unixHTTPClient(f.sock)
	defer closeIdle()
	for _, endpoint := range []string{"/v1/dump", "/v1/keys"} {
		req, _ := http.NewRequestWithContext(testCtx(t, 10*time.Second), "GET", "http://mirrord"+endpoint+"?prefix=generated:bulk:", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != -1 {
			t.Errorf("%s: Content-Length %d: the response was built whole, not streamed", endpoint, resp.ContentLength)
		}
		got, err := readLines(resp.Body, 3)
		if err != nil || len(got) != 3 {
			t.Fatalf("%s: reading 3 lines: %q, %v", endpoint, got, err)
		}
		if endpoint == "/v1/dump" && !serverStreaming() {
			// 4.5 MB cannot all be in flight: the handler must still be at it.
			t.Errorf("%s: with 3 lines read of 20000, no handler is streaming", endpoint)
		}
		resp.Body.Close() // hang up mid-stream
		closeIdle()
		testkit.Eventually(t, endpoint+": the handler ends after the client hangs up", func() error {
			if serverStreaming() {
				return errors.New("a handler is still in stream")
			}
			return nil
		})
	}
	// And the store closes without waiting on a stuck scan.
	done := make(chan error, 1)
	go func() { done <- f.db.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("closing the store: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the store did not close within 5s after the client went away")
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 12, generators: []string{"summary"}})
	st, err := f.client.Status(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "test" || st.Store != storePath {
		t.Errorf("version %q store %q", st.Version, st.Store)
	}
	if st.Mirror.Path != f.logPath {
		t.Errorf("mirror path %q, want %q", st.Mirror.Path, f.logPath)
	}
	cp := st.Mirror.Checkpoint
	if cp == nil || cp.Events != 12 || cp.Modifiers != int64(modifiers(f.events)) || cp.Offset != f.logSize() {
		t.Fatalf("checkpoint %+v, want 12 events, %d modifiers, offset %d", cp, modifiers(f.events), f.logSize())
	}
	if st.Mirror.LogSize != f.logSize() || st.Mirror.Lag != 0 {
		t.Errorf("log size %d lag %d", st.Mirror.LogSize, st.Mirror.Lag)
	}
	if !st.Healthy || st.Health != "caught up" {
		t.Errorf("health %v %q, want true \"caught up\"", st.Healthy, st.Health)
	}
	if len(st.Generators) != 1 || st.Generators[0].Name != "summary" || st.Generators[0].Position != cp.Seq || st.Generators[0].Lag != 0 {
		t.Errorf("generators %+v, want summary at position %d", st.Generators, cp.Seq)
	}
	// The engine's status, as it stands, is what is served.
	want := f.eng.Status()
	if st.Mirror.Checkpoint.Offset != want.Checkpoint.Offset || st.Mirror.LastApply.Kind != want.LastApply.Kind {
		t.Errorf("served %+v, engine says %+v", st.Mirror, want)
	}

	// Without a runner: an empty list, not null.
	f2 := newFixture(t, fixtureOptions{events: 1})
	code, body := httpDo(t, f2.sock, "GET", "/v1/status")
	if code != 200 || !strings.Contains(body, `"generators":[]`) {
		t.Errorf("status without generators: %d %s", code, body)
	}
	gs, err := f2.client.Generators(testCtx(t, 5*time.Second))
	if err != nil || gs == nil || len(gs) != 0 {
		t.Errorf("Generators without a runner: %#v, %v; want an empty list", gs, err)
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 20})
	ctx := testCtx(t, 20*time.Second)
	rep, err := f.client.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != 20 || rep.Modifiers != modifiers(f.events) || rep.Covered != f.logSize() || rep.LogSize != f.logSize() {
		t.Fatalf("after sync: %+v (%s)", rep, rep.Summary())
	}

	// The log grows and the daemon has not caught up yet: what it has
	// mirrored still verifies, and the report says how much it covered.
	covered := f.logSize()
	f.appendEvents(5)
	rep, err = f.client.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != 20 || rep.Covered != covered || rep.LogSize != f.logSize() || rep.Covered >= rep.LogSize {
		t.Fatalf("log ahead of the checkpoint: %+v, want OK, 20 events, covered %d < log %d", rep, covered, f.logSize())
	}
	f.sync()
	if rep, err = f.client.Verify(ctx); err != nil || !rep.OK() || rep.Events != 25 || rep.Covered != f.logSize() {
		t.Fatalf("after catching up: %+v, %v", rep, err)
	}

	// Damage the store behind the engine's back.
	gone := f.events[2].ID
	var changed string
	for _, ev := range f.events {
		if len(ev.Modifiers) > 0 && ev.ID != gone {
			changed = schema.ModifierKey(ev.ID, ev.Modifiers[0].Name)
			break
		}
	}
	extra := schema.EventKey("zzz-not-in-the-log")
	err = f.db.Batch([]kv.Op{
		kv.DelOp(schema.EventKey(gone)),
		kv.PutOp(changed, map[string]string{"value": "tampered"}),
		kv.PutOp(extra, map[string]string{"id": "zzz-not-in-the-log"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = f.client.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatalf("a damaged store verifies: %+v", rep)
	}
	if !slices.Contains(rep.MissingKeys, schema.EventKey(gone)) || !slices.Contains(rep.DifferKeys, changed) || !slices.Contains(rep.ExtraKeys, extra) {
		t.Errorf("report %+v; want missing %s, differing %s, extra %s", rep, schema.EventKey(gone), changed, extra)
	}
	if rep.Missing != 1 || rep.Differ != 1 || rep.Extra != 1 {
		t.Errorf("missing %d differ %d extra %d, want 1 each", rep.Missing, rep.Differ, rep.Extra)
	}
	if code, _ := httpDo(t, f.sock, "GET", "/v1/verify"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/verify: %d, want 405 (it is a POST)", code)
	}
}

func TestVerifyLogMissing(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 3})
	if err := os.Remove(f.logPath); err != nil {
		t.Fatal(err)
	}
	_, err := f.client.Verify(testCtx(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "event log") {
		t.Fatalf("Verify without a log: %v, want an error about the event log", err)
	}
}

func TestGenerators(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 15, generators: []string{"hashtags", "summary"}})
	gs, err := f.client.Generators(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	seq := f.eng.Checkpoint().Seq
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
		if g.Position != seq || g.Lag != 0 || g.State != "idle" || g.LastError != "" {
			t.Errorf("generator %+v, want idle at %d", g, seq)
		}
	}
	if !slices.Equal(names, []string{"hashtags", "summary"}) {
		t.Errorf("generators %q", names)
	}
	if !slices.EqualFunc(gs, f.runner.Statuses(), func(a, b generators.Status) bool { return a.Name == b.Name && a.Position == b.Position }) {
		t.Errorf("served %+v, runner says %+v", gs, f.runner.Statuses())
	}

	// Behind by one apply: the lag shows.
	f.appendEvents(2)
	if err := f.eng.Sync(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	gs, err = f.client.Generators(testCtx(t, 10*time.Second))
	if err != nil || len(gs) != 2 || gs[0].Lag != 1 || gs[0].Position != seq {
		t.Errorf("after an apply the generators have not seen: %+v, %v; want lag 1 at %d", gs, err, seq)
	}
}

func TestRebuild(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 40, generators: []string{"summary"}, runRunner: true})
	ctx := testCtx(t, 15*time.Second)
	before, vals := storeKeys(t, f.db, "generated:summary:")
	if len(before) == 0 {
		t.Fatal("summary wrote nothing")
	}
	// Lose one generated value behind the generator's back: only a
	// rebuild brings it back.
	var lost string
	for _, k := range before {
		if !strings.HasPrefix(k, "generated:summary:.") {
			lost = k
			break
		}
	}
	if err := f.db.Del(lost); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	st, err := f.client.Rebuild(ctx, "summary")
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if st.Name != "summary" || st.State != "idle" || st.LastError != "" || st.LastRun.Before(started) {
		t.Errorf("status after the rebuild %+v; want summary, idle, run since %v", st, started)
	}
	if pending, err := f.runner.RebuildPending("summary"); err != nil || pending {
		t.Errorf("after Rebuild returned, the rebuild is still pending (%v)", err)
	}
	after, vals2 := storeKeys(t, f.db, "generated:summary:")
	if !slices.Equal(after, before) {
		t.Errorf("after the rebuild %d keys, before %d", len(after), len(before))
	}
	if !bytes.Equal(vals2[lost], vals[lost]) {
		t.Errorf("the rebuild did not restore %s: %s, want %s", lost, vals2[lost], vals[lost])
	}

	for _, name := range []string{"hashtags", "no-such-generator", ""} {
		_, err := f.client.Rebuild(ctx, name)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) || !strings.Contains(err.Error(), "not enabled") {
			t.Errorf("Rebuild(%q): %v, want an error saying it is not enabled", name, err)
		}
	}
	code, body := httpDo(t, f.sock, "POST", "/v1/generators/rebuild?name=nope")
	if code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Errorf("rebuild of an unknown generator: %d %s, want 404 with an error body", code, body)
	}
	if code, _ := httpDo(t, f.sock, "GET", "/v1/generators/rebuild?name=summary"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET rebuild: %d, want 405", code)
	}
}

func TestRebuildWithoutRunner(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 2})
	_, err := f.client.Rebuild(testCtx(t, 5*time.Second), "summary")
	if err == nil || !strings.Contains(err.Error(), "no generator runs") {
		t.Errorf("Rebuild without a runner: %v", err)
	}
	code, _ := httpDo(t, f.sock, "POST", "/v1/generators/rebuild?name=summary")
	if code != http.StatusConflict {
		t.Errorf("rebuild without a runner: %d, want 409", code)
	}
}

// Rebuild waits for the rebuild; a wait that runs out is a timeout, with
// the generator named.
func TestRebuildTimesOut(t *testing.T) {
	// The runner's loop does not run: nothing will do the rebuild.
	f := newFixture(t, fixtureOptions{events: 3, generators: []string{"summary"}})
	code, body := httpDo(t, f.sock, "POST", "/v1/generators/rebuild?name=summary&wait=50ms")
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "summary") {
		t.Errorf("rebuild nobody performs: %d %s, want 504 naming the generator", code, body)
	}
	// The request is recorded: the next run rebuilds.
	if pending, _ := f.runner.RebuildPending("summary"); !pending {
		t.Error("the rebuild asked for is not pending")
	}
}

// A Server built with only the store and the engine: the documented
// defaults (a one-minute stall timeout, no generators), served here
// through httptest.
func TestServerDefaults(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 4})
	srv := api.NewServer(api.Config{DB: f.db, Engine: f.eng})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(testCtx(t, 5*time.Second), "GET", ts.URL+path, nil)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/v1/generators"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("generators without a runner: %d %q", code, body)
	}
	// Behind, for longer than a tiny timeout would allow: still catching up.
	f.appendEvents(1)
	for range 3 {
		if code, body := get("/healthz"); code != 200 || body != "catching up\n" {
			t.Fatalf("default stall timeout: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, body := get("/v1/get?key=" + url.QueryEscape(schema.EventKey(f.events[0].ID)))
	if code != 200 || !strings.Contains(body, f.events[0].ID) {
		t.Errorf("get through httptest: %d %.80q", code, body)
	}
}
