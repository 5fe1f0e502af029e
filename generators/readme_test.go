package generators

import (
	"os"
	"strings"
	"testing"
)

// The README's "Writing a generator" example is the code that
// Example_writingAGenerator compiles and runs, word for word.
func TestReadmeExampleIsTheTestedOne(t *testing.T) {
	ex, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme := readReadme(t)
	s := string(ex)
	begin := strings.Index(s, "// BEGIN README EXAMPLE\n")
	end := strings.Index(s, "// END README EXAMPLE")
	if begin < 0 || end < 0 {
		t.Fatal("example markers missing")
	}
	block := strings.Trim(s[begin+len("// BEGIN README EXAMPLE\n"):end], "\n")
	if !strings.Contains(readme, "```go\n"+block+"\n```") {
		t.Fatal("README.md's generator example (\"Writing a generator\") differs from the block between the markers in generators/example_test.go")
	}
}

// The README documents what the built-in generators store and how
// hashtags finds tags, in the words the code follows.
func TestReadmeDocumentsTheGenerators(t *testing.T) {
	readme := readReadme(t)
	for _, c := range []struct{ text, why string }{
		{"`/#(\\w+(?:-\\w+)*)/g`", "the application's expression for hashtags"},
		{"`generated:hashtags:{tag}:{id}`", "hashtags' layout: one key per tag and event"},
		{"`mirrord:state:{name}:`", "where a generator's private state lives"},
		{"`in.Changes`", "the (id, before, after) form the example uses"},
	} {
		if !strings.Contains(readme, c.text) {
			t.Errorf("README.md does not say %s (%s)", c.text, c.why)
		}
	}
	for _, stale := range []string{"case-insensitive, stored lower-case", "generated:summary:.event%3A{id}"} {
		if strings.Contains(readme, stale) {
			t.Errorf("README.md still says %q, which is no longer true", stale)
		}
	}
}

func readReadme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
