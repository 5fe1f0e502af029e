// Package gogitbench measures go-git reading the repositories that
// gitlog's benchmarks build, for the comparison in docs/design.md ("On the
// git source").
// It is a module of its own so that mirrord does not depend on go-git:
// run it, after gitlog's benchmarks have built the repositories, with
//
//	cd internal/gitlog/gogitbench
//	GITLOG_BENCH_DIR=/var/tmp/gitlog-bench go test -run XXX -bench . -benchtime 3x
package gogitbench
