// Package api is the running daemon's local interface: HTTP over a unix
// socket (owner-only by default), through which "mirrord get", "keys",
// "dump", "status", "verify" and "generators" reach the store while the
// daemon holds its lock, plus /healthz and Prometheus /metrics (which an
// optional TCP listener may also serve, alone).
//
// Endpoints:
//
//	GET  /v1/get?key=K                     the stored value (404 when absent)
//	GET  /v1/keys?prefix=P&after=A&limit=N  JSON lines: "key"
//	GET  /v1/dump?prefix=P&after=A&limit=N  JSON lines: {"key":…,"value":…}
//	GET  /v1/status                        engine, generators, health
//	POST /v1/verify                        compare the store with the log
//	GET  /v1/generators                    generator statuses
//	POST /v1/generators/rebuild?name=G     reset one generator, wait for it
//	GET  /healthz                          200, or 503 with the reason
//	GET  /metrics                          Prometheus text format
//
// Every JSON answer names its fields in snake_case; a duration is a
// number of seconds in a field ending in _seconds, a time is RFC 3339.
// /v1/status is {"version", "store", "mirror": the engine's status,
// "generators": [...], "healthy", "health"}; "mirrord status --json"
// prints the same shape, with "daemon" (whether a daemon answered) in
// place of "version" and "healthy".
//
// Keys and dump stream from one snapshot and never build a range in
// memory; "after" (the last key of a page, exclusive) and "limit" page
// through large ranges.
package api
