package main

import (
	"errors"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (store locked, key missing, log unreadable)
	exitUsage   = 2 // the command line or the configuration is wrong
)

// usageError marks an error in the command line or the configuration:
// exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// silentError carries an exit status for a failure the command has already
// reported in full (verify's summary, for example).
type silentError struct{ code int }

func (e silentError) Error() string { return "" }

func isSilent(err error) bool {
	var s silentError
	return errors.As(err, &s)
}

// ExitCode maps an error from Main.Run to the process exit status.
func ExitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var s silentError
	if errors.As(err, &s) {
		return s.code
	}
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	return exitFailure
}
