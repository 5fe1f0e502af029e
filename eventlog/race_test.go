//go:build race

package eventlog

// raceDetector: the tests run under the race detector.
const raceDetector = true
