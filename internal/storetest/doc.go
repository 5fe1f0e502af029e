// Package storetest holds what the tests of mirror and the mirrord command
// need alike to handle a store directory from outside, as another program
// or a damaged disk would: fingerprint its files, spoil them, and write
// keys into it. It is imported by tests only.
package storetest
