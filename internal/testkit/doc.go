// Package testkit holds what the tests of several packages share, so that
// each exists once: a wait for a condition (Eventually), a logger that
// discards (QuietLogger), and a child process whose stderr a test reads
// line by line (Proc) or whose whole run it collects (Run).
//
// It is imported only by _test.go files. Nothing in it sleeps in the
// hope that something happened: a wait polls a condition the test can
// see, or blocks on a channel closed when the awaited thing occurs, and
// every wait is bounded.
package testkit
