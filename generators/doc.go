// Package generators runs in-process plugins that keep derived values
// ("generated" values) up to date from the mirrored events, modelled on
// event-sourcing projections.
//
// A generator is a Go type registered by name (Register, in the style of
// database/sql drivers) and enabled by configuration. Each has its own
// position in the mirror's change feed, stored under
// mirrord:generator:{name}. The Runner hands it the ids of the events that
// changed since that position (or asks for a rebuild from the whole mirror
// after a resync, a reset or when it is new), with a consistent snapshot of
// the mirror to read, and commits what it wrote together with its new
// position in one batch: a crash or an error never leaves values that
// disagree with the position.
//
// A generator writes only through its Scope, which addresses nothing but
// its values, generated:{name}:*, and (Scope.State) what it keeps for
// itself to stay incremental, mirrord:state:{name}:*: a reader of
// generated: sees values and nothing else. A generator that says which
// Version of its definition it is (Versioned) is rebuilt when its values
// were computed by another. An error or a panic in one generator is logged (with
// the event's id when there is one), shown in its Status and retried with
// capped exponential backoff; the mirror and the other generators keep
// going, each generator in its own goroutine. Change-feed entries are
// pruned once every enabled generator is past them.
//
// The runner reads the feed through package kv alone: it never imports the
// mirror engine; the command wires the engine's "applied" notification to
// Runner.Notify.
//
// Two generators are built in: summary (a value per month: count, counts
// by type, first and last date) and hashtags (for each #tag in an event's
// input, as the application that writes the log reads them, one key per
// tag and event). Each change costs them O(log n), whatever the size of
// the log, and no value grows with it.
package generators
