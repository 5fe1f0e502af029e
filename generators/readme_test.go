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
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(ex)
	begin := strings.Index(s, "// BEGIN README EXAMPLE\n")
	end := strings.Index(s, "// END README EXAMPLE")
	if begin < 0 || end < 0 {
		t.Fatal("example markers missing")
	}
	block := strings.Trim(s[begin+len("// BEGIN README EXAMPLE\n"):end], "\n")
	if !strings.Contains(string(readme), "```go\n"+block+"\n```") {
		t.Fatal("README.md's generator example (\"Writing a generator\") differs from the block between the markers in generators/example_test.go")
	}
}
