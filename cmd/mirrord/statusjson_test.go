package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/mirrord/mirrord/internal/synth"
)

// "status --json" has the API's shape (the engine's status under
// "mirror") and one naming style: every object key snake_case, the last
// apply's duration in seconds. Asked of a running daemon, whose status
// has a last apply.
func TestStatusJSONIsSnakeCaseWithSeconds(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(5).Events(20))
	d := startChild(t, "run", "--eventlog", log, "--store", store)
	d.WaitLine(time.Minute, "caught up; following the log")
	r := mirrord(t, nil, "status", "--json", "--eventlog", log, "--store", store)
	if r.code != 0 {
		t.Fatalf("status --json: exit %d: %v", r.code, r.err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !snake.MatchString(k) {
					t.Errorf("key %q at %s is not snake_case", k, path)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		}
	}
	walk("$", doc)
	m, _ := doc["mirror"].(map[string]any)
	last, _ := m["last_apply"].(map[string]any)
	if _, ok := last["duration_seconds"].(float64); !ok || last["kind"] != "bulk" {
		t.Fatalf("mirror.last_apply = %v, want kind bulk and duration_seconds\n%s", last, r.stdout)
	}
	if doc["daemon"] != true {
		t.Fatalf("status did not ask the daemon:\n%s", r.stdout)
	}
	cp, _ := m["checkpoint"].(map[string]any)
	if cp["events"] != float64(20) {
		t.Fatalf("mirror.checkpoint.events = %v, want 20\n%s", cp["events"], r.stdout)
	}
}
