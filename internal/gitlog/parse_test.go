package gitlog

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/mirrord/mirrord/internal/gittest"
)

const (
	sha1A   = "0123456789abcdef0123456789abcdef01234567"
	sha1B   = "89abcdef0123456789abcdef0123456789abcdef"
	sha256A = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseGitFile(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"gitdir: /r/.git/worktrees/w\n", "/r/.git/worktrees/w", true},
		{"gitdir: ../.git/modules/sub\r\n", "../.git/modules/sub", true},
		{"gitdir: with space \n", "with space ", true},
		{"gitdir: x", "x", true},
		{"gitdir:x\n", "", false},
		{"gitdir: \n", "", false},
		{"gitdir: a\nb\n", "", false},
		{"", "", false},
		{"GITDIR: x\n", "", false},
	}
	for _, c := range cases {
		got, err := parseGitFile([]byte(c.in))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseGitFile(%q) = %q, %v", c.in, got, err)
		}
	}
}

func TestParseRefValue(t *testing.T) {
	cases := []struct {
		in         string
		id, target string
		ok         bool
	}{
		{sha1A + "\n", sha1A, "", true},
		{sha1A, sha1A, "", true},
		{sha256A + "\n", sha256A, "", true},
		{sha1A + " trailing\n", sha1A, "", true},
		{"ref: refs/heads/master\n", "", "refs/heads/master", true},
		{"ref:refs/heads/master", "", "refs/heads/master", true},
		{"ref: \trefs/heads/x \n", "", "refs/heads/x", true},
		{"ref: refs/heads/../x\n", "", "", false},
		{"ref: master\n", "", "", false},
		{strings.ToUpper(sha1A) + "\n", "", "", false},
		{sha1A[:39] + "\n", "", "", false},
		{sha1A + "0\n", "", "", false},
		{sha1A + "x\n", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		id, target, err := parseRefValue([]byte(c.in))
		if (err == nil) != c.ok || string(id) != c.id || target != c.target {
			t.Errorf("parseRefValue(%q) = %q, %q, %v", c.in, id, target, err)
		}
	}
}

func TestFindPackedRef(t *testing.T) {
	file := "# pack-refs with: peeled fully-peeled sorted \n" +
		sha1A + " refs/heads/master\n" +
		sha1B + " refs/tags/v1\n" +
		"^" + sha1A + "\n" +
		sha1B + " refs/heads/feature/x\n"
	cases := []struct {
		file, name, id string
		found          bool
		err            string
	}{
		{file, "refs/heads/master", sha1A, true, ""},
		{file, "refs/tags/v1", sha1B, true, ""},
		{file, "refs/heads/feature/x", sha1B, true, ""},
		{file, "refs/heads/feature", "", false, ""},
		{file, "refs/heads/nope", "", false, ""},
		{"", "refs/heads/master", "", false, ""},
		{sha1A + " refs/heads/master\n", "refs/heads/master", sha1A, true, ""}, // no header
		{file + sha1A + " refs/heads/cut", "refs/heads/zzz", "", false, "line 6: no line end"},
		{"# header\n" + sha1A + "refs/heads/x\n", "refs/heads/y", "", false, "line 2"},
		{"# header\n# again\n", "refs/heads/y", "", false, "line 2"},
		{"^" + sha1A + "x\n", "refs/heads/y", "", false, "line 1: a peeled line"},
		{sha1A + " \n", "refs/heads/y", "", false, "line 1"},
		{strings.Repeat("a", 5000) + "\n", "refs/heads/y", "", false, "longer than"},
	}
	for _, c := range cases {
		id, found, err := findPackedRef(strings.NewReader(c.file), c.name)
		if string(id) != c.id || found != c.found || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("findPackedRef(%q, %s) = %q, %v, %v; want %q, %v, %q", c.file, c.name, id, found, err, c.id, c.found, c.err)
		}
	}
}

func TestParseHeader(t *testing.T) {
	cases := []struct {
		line, rev string
		want      header
		ok        bool
	}{
		{sha1A + " blob 12", sha1A, header{ID: sha1A, Type: "blob", Size: 12}, true},
		{sha1A + " commit 0", "x:y", header{ID: sha1A, Type: "commit"}, true},
		{sha256A + " tree 70", "x", header{ID: sha256A, Type: "tree", Size: 70}, true},
		{"abc:my data.json missing", "abc:my data.json", header{Missing: true}, true},
		{"abc ambiguous", "abc", header{}, false},
		{sha1A + " blob -1", "x", header{}, false},
		{sha1A + " blob +1", "x", header{}, false},
		{sha1A + " blob", "x", header{}, false},
		{sha1A + " thing 1", "x", header{}, false},
		{sha1A + "  blob 1", "x", header{}, false},
		{"other missing", "x", header{}, false},
		{"fatal: oops", "x", header{}, false},
	}
	for _, c := range cases {
		got, err := parseHeader([]byte(c.line), c.rev)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseHeader(%q, %q) = %+v, %v", c.line, c.rev, got, err)
		}
	}
}

// refNameCases are names for RefName and git check-ref-format to judge
// alike.
var refNameCases = []string{
	"master", "refs/heads/master", "HEAD", "feature/x", "refs/tags/v1.0",
	"refs/heads/a..b", "refs/heads/.hidden", "refs/heads/x.lock", "refs/heads/x/", "refs/heads//x",
	"refs/heads/x.", "refs/heads/a@{b", "refs/heads/@", "refs/heads/a b", "refs/heads/a~1", "refs/heads/a^",
	"refs/heads/a:b", "refs/heads/a?", "refs/heads/a*", "refs/heads/a[", "refs/heads/a\\b", "refs/heads/\x01",
	"refs/heads/é", "refs/heads/a@b", "../../etc/passwd", "refs/../x", "",
}

// RefName accepts exactly the names git check-ref-format accepts (for a
// short name, as a branch: git check-ref-format --branch's rules plus
// refs/heads/).
func TestRefNameAgreesWithGit(t *testing.T) {
	gittest.Need(t)
	for _, name := range refNameCases {
		full, err := RefName(name)
		want := name
		if name != "HEAD" && !strings.HasPrefix(name, "refs/") {
			want = "refs/heads/" + name
		}
		gitOK := want == "HEAD" || exec.Command("git", "check-ref-format", want).Run() == nil
		if (err == nil) != gitOK || err == nil && full != want {
			t.Errorf("RefName(%q) = %q, %v; git check-ref-format %q: %v", name, full, err, want, gitOK)
		}
	}
}

func FuzzParseGitFile(f *testing.F) {
	for _, s := range []string{"gitdir: /a/b\n", "gitdir: x\r\n", "gitdir:\n", "gitdir: a\nb"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseGitFile(b)
		if err != nil {
			return
		}
		if p == "" || strings.ContainsAny(p, "\r\n\x00") || !bytes.HasPrefix(b, []byte("gitdir: "+p)) {
			t.Fatalf("parseGitFile(%q) = %q", b, p)
		}
		if again, err := parseGitFile([]byte("gitdir: " + p + "\n")); err != nil || again != p {
			t.Fatalf("round trip of %q: %q, %v", p, again, err)
		}
	})
}

func FuzzParseRefValue(f *testing.F) {
	for _, s := range []string{sha1A + "\n", sha256A, "ref: refs/heads/master\n", "ref:HEAD", sha1A + " x", "ref: refs/x..y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, target, err := parseRefValue(b)
		if err != nil {
			return
		}
		if (id == "") == (target == "") {
			t.Fatalf("parseRefValue(%q) = %q, %q", b, id, target)
		}
		if target != "" && checkRefFormat(target) != nil {
			t.Fatalf("parseRefValue(%q): bad target %q accepted", b, target)
		}
		formatted := string(id) + "\n"
		if target != "" {
			formatted = "ref: " + target + "\n"
		}
		id2, target2, err := parseRefValue([]byte(formatted))
		if err != nil || id2 != id || target2 != target {
			t.Fatalf("round trip of %q: %q, %q, %v", formatted, id2, target2, err)
		}
	})
}

// packedModel is findPackedRef written plainly: the lines in order, the
// first may be a comment, "^ID" lines are peeled values, any other must
// be "ID NAME"; the first for name wins; an ill-formed line (or one too
// long for the reader's buffer, or the last without its line end) met
// before it is an error.
func packedModel(b []byte, name string) (ID, bool, bool) {
	lines := bytes.SplitAfter(b, []byte("\n"))
	for n, l := range lines {
		if len(l) == 0 {
			continue
		}
		if len(l) >= 4096 || l[len(l)-1] != '\n' {
			return "", false, false
		}
		l = l[:len(l)-1]
		if n == 0 && bytes.HasPrefix(l, []byte("#")) {
			continue
		}
		if bytes.HasPrefix(l, []byte("^")) {
			if _, rest, ok := parseHexID(l[1:]); !ok || len(rest) > 0 {
				return "", false, false
			}
			continue
		}
		sp := bytes.IndexByte(l, ' ')
		if sp < 0 || sp+1 == len(l) {
			return "", false, false
		}
		id, rest, ok := parseHexID(l[:sp])
		if !ok || len(rest) > 0 {
			return "", false, false
		}
		if string(l[sp+1:]) == name {
			return id, true, true
		}
	}
	return "", false, true
}

func FuzzFindPackedRef(f *testing.F) {
	f.Add([]byte("# pack-refs with: peeled \n"+sha1A+" refs/heads/master\n^"+sha1B+"\n"), "refs/heads/master")
	f.Add([]byte(sha1A+" refs/heads/a\n"+sha1B+" refs/heads/b\n"), "refs/heads/b")
	f.Add([]byte(sha1A+" refs/heads/a"), "refs/heads/a")
	f.Add([]byte(sha1A+" refs/heads/a b\n"), "refs/heads/a b")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		id, found, err := findPackedRef(bytes.NewReader(b), name)
		wantID, wantFound, wantOK := packedModel(b, name)
		if id != wantID || found != wantFound || (err == nil) != wantOK {
			t.Fatalf("findPackedRef(%q, %q) = %q, %v, %v; the model: %q, %v, ok %v", b, name, id, found, err, wantID, wantFound, wantOK)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(sha1A+" blob 12"), sha1A)
	f.Add([]byte("x:y missing"), "x:y")
	f.Add([]byte(sha256A+" tree 0"), "t")
	f.Fuzz(func(t *testing.T, line []byte, rev string) {
		h, err := parseHeader(line, rev)
		switch {
		case err != nil:
			return
		case h.Missing:
			if string(line) != rev+" missing" {
				t.Fatalf("%q missing for %q", line, rev)
			}
		default:
			if h.Size < 0 || string(line) != string(h.ID)+" "+h.Type+" "+strconv.FormatInt(h.Size, 10) {
				t.Fatalf("parseHeader(%q) = %+v", line, h)
			}
		}
	})
}

func FuzzRefName(f *testing.F) {
	for _, s := range refNameCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		full, err := RefName(name)
		if err != nil {
			return
		}
		if checkRefFormat(full) != nil || strings.Contains(full, "..") || strings.HasPrefix(full, "/") {
			t.Fatalf("RefName(%q) = %q", name, full)
		}
	})
}
