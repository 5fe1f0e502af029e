// Package gitlog reads a file as committed at a git ref, for mirrord's
// git source: the application whose log mirrord follows never edits the
// data.json of its work tree; each transaction commits in a temporary
// clone and pushes into the repository, so the log it reads is
// "master:data.json" of that repository.
//
// The package finds the repository that holds a path as git does (a .git
// directory, the .git file of a linked worktree or submodule, a bare
// repository), resolves refs itself (loose refs, packed-refs, symbolic
// refs, per-worktree refs), asks a long-lived "git cat-file --batch-check"
// child for the commit and the file's blob, and streams the blob from a
// "git cat-file blob" child without ever holding it whole (a blob of up
// to 2 MiB is read whole by a long-lived "git cat-file --batch" child
// instead: a process start costs as much as reading it). It says which
// directories to watch for the ref's moves and which file events concern
// them.
//
// Nothing here writes to the repository: no lock file, no index, no
// object; refs and objects are only read, so that mirrord can run as a
// user with read access alone. A repository, ref or file that does not
// exist yet is a state (see [State]), not an error: the caller waits for
// it.
//
// docs/design.md ("On the git source") records why the git binary was
// chosen over a pure-Go git library, with the figures measured.
package gitlog
