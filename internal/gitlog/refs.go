package gitlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ID is a git object name in hexadecimal: 40 digits (SHA-1) or 64
// (SHA-256).
type ID string

// parseHexID returns the object name at the start of b and the rest of b:
// a run of lowercase hex digits of a hash's length.
func parseHexID(b []byte) (ID, []byte, bool) {
	n := 0
	for n < len(b) && (b[n] >= '0' && b[n] <= '9' || b[n] >= 'a' && b[n] <= 'f') {
		n++
	}
	if n != 40 && n != 64 {
		return "", b, false
	}
	return ID(b[:n]), b[n:], true
}

// ErrReftable is returned for a repository whose refs are kept in a
// reftable rather than in files, which this package does not read.
var ErrReftable = errors.New("gitlog: refs in a reftable are not supported")

// maxSymrefDepth bounds a chain of symbolic refs, as git's does.
const maxSymrefDepth = 5

// RefName returns the full name of ref as this package reads it: "HEAD"
// and names starting with "refs/" as they are, any other name as a
// branch ("master" is "refs/heads/master"; unlike git rev-parse, a tag of
// the same name does not shadow it). A name git would refuse
// (git check-ref-format) is an error.
func RefName(ref string) (string, error) {
	full := ref
	if ref != "HEAD" && !strings.HasPrefix(ref, "refs/") {
		full = "refs/heads/" + ref
	}
	if err := checkRefFormat(full); err != nil {
		return "", fmt.Errorf("ref %q: %w", ref, err)
	}
	return full, nil
}

// checkRefFormat applies git check-ref-format's rules to a full ref
// name; "HEAD" is the one name outside refs/ that it allows.
func checkRefFormat(name string) error {
	if name == "HEAD" {
		return nil
	}
	if !strings.HasPrefix(name, "refs/") {
		return errors.New("not HEAD and not under refs/")
	}
	if strings.HasSuffix(name, ".") {
		return errors.New("ends with a dot")
	}
	if strings.Contains(name, "..") || strings.Contains(name, "@{") {
		return errors.New(`has ".." or "@{"`)
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return fmt.Errorf("has the character %q", c)
		}
	}
	for _, comp := range strings.Split(name, "/") {
		switch {
		case comp == "":
			return errors.New("has an empty component")
		case comp[0] == '.':
			return errors.New("has a component starting with a dot")
		case strings.HasSuffix(comp, ".lock"):
			return errors.New(`has a component ending with ".lock"`)
		}
	}
	return nil
}

// perWorktree reports whether a ref lives in a worktree's own git
// directory rather than in the common one.
func perWorktree(name string) bool {
	return name == "HEAD" || strings.HasPrefix(name, "refs/bisect/") ||
		strings.HasPrefix(name, "refs/worktree/") || strings.HasPrefix(name, "refs/rewritten/")
}

// refDir is the directory that holds name's loose ref.
func refDir(loc Location, name string) string {
	if perWorktree(name) {
		return loc.GitDir
	}
	return loc.CommonDir
}

// refResolution is where a ref led.
type refResolution struct {
	// Chain is the names followed: the one asked for, then each symbolic
	// ref's target; the last holds the value.
	Chain []string
	// ID is the object the last name holds; "" when it does not exist
	// (a missing ref, or a symbolic ref to a missing one: an unborn
	// branch).
	ID ID
}

// resolveRef follows name (a full ref name) through symbolic refs to an
// object name, reading loose refs before packed-refs as git's files
// backend does. A missing ref is no error: its ID is "".
func resolveRef(loc Location, name string) (refResolution, error) {
	var res refResolution
	// A repository keeping its refs in a reftable (git 2.45's
	// extensions.refStorage) has none in files: reading them would find
	// every ref missing.
	if st, err := os.Stat(filepath.Join(loc.CommonDir, "reftable")); err == nil && st.IsDir() {
		return refResolution{Chain: []string{name}}, fmt.Errorf("%s: %w", loc.CommonDir, ErrReftable)
	}
	for {
		res.Chain = append(res.Chain, name)
		if len(res.Chain) > maxSymrefDepth+1 {
			return res, fmt.Errorf("ref %s: symbolic refs nest deeper than %d: %s", res.Chain[0], maxSymrefDepth, strings.Join(res.Chain, " -> "))
		}
		id, target, ok, err := readLooseRef(loc, name)
		if err != nil {
			return res, err
		}
		if !ok && !perWorktree(name) {
			id, ok, err = readPackedRef(loc, name)
			if err != nil {
				return res, err
			}
		}
		switch {
		case !ok:
			return res, nil
		case target == "":
			res.ID = id
			return res, nil
		}
		name = target
	}
}

// readLooseRef reads name's loose ref file, if there is one: its object
// name, or the target of a symbolic ref.
func readLooseRef(loc Location, name string) (id ID, target string, ok bool, err error) {
	path := filepath.Join(refDir(loc, name), filepath.FromSlash(name))
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR):
		// No loose ref (a directory of that name holds deeper refs).
		return "", "", false, nil
	case err != nil:
		return "", "", false, err
	}
	id, target, err = parseRefValue(b)
	if err != nil {
		return "", "", false, fmt.Errorf("%s: %w", path, err)
	}
	return id, target, true, nil
}

// parseRefValue reads a loose ref file's content, as git does: "ref:"
// and a ref name for a symbolic ref, else an object name followed by
// nothing or white space.
func parseRefValue(b []byte) (id ID, target string, err error) {
	if rest, ok := bytes.CutPrefix(b, []byte("ref:")); ok {
		target = string(bytes.TrimSpace(rest))
		if err := checkRefFormat(target); err != nil {
			return "", "", fmt.Errorf("symbolic ref to %q: %w", target, err)
		}
		return "", target, nil
	}
	id, rest, ok := parseHexID(b)
	if !ok || len(rest) > 0 && !isSpace(rest[0]) {
		return "", "", fmt.Errorf("not an object name nor a symbolic ref: %q", clip(b))
	}
	return id, "", nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// readPackedRef looks name up in the common directory's packed-refs.
func readPackedRef(loc Location, name string) (ID, bool, error) {
	path := filepath.Join(loc.CommonDir, "packed-refs")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	id, ok, err := findPackedRef(f, name)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", path, err)
	}
	return id, ok, nil
}

// findPackedRef scans a packed-refs file for name. The file is a header
// line "# pack-refs with: TRAITS", then a line "ID NAME" per ref, each
// annotated tag's followed by "^ID", its peeled value. The scan stops at
// name's line; an ill-formed line before it is an error with its number.
func findPackedRef(r io.Reader, name string) (ID, bool, error) {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: no ref name is that long.
			return "", false, fmt.Errorf("line %d: longer than %d bytes", n, br.Size())
		}
		if err == io.EOF && len(line) == 0 {
			return "", false, nil
		}
		if err == io.EOF {
			return "", false, fmt.Errorf("line %d: no line end", n)
		}
		if err != nil {
			return "", false, err
		}
		line = line[:len(line)-1]
		switch {
		case n == 1 && len(line) > 0 && line[0] == '#':
			continue
		case len(line) > 0 && line[0] == '^':
			if _, rest, ok := parseHexID(line[1:]); !ok || len(rest) > 0 {
				return "", false, fmt.Errorf("line %d: a peeled line that is not ^ID: %q", n, clip(line))
			}
			continue
		}
		id, rest, ok := parseHexID(line)
		if !ok || len(rest) < 2 || rest[0] != ' ' {
			return "", false, fmt.Errorf("line %d: not \"ID NAME\": %q", n, clip(line))
		}
		if string(rest[1:]) == name {
			return id, true, nil
		}
	}
}
