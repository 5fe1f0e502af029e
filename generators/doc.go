// Package generators runs in-process plugins that keep derived values
// ("generated" values) up to date from the mirrored events, modelled on
// event-sourcing projections.
//
// A generator is a Go type registered by name (Register, in the style of
// database/sql drivers) and enabled by configuration. Each has its own
// position in the mirror's change feed, stored under
// mirrord:generator:{name}. The Runner hands it each event that changed
// since that position as (id, before, after): the event as it stood at
// the position, from the before-images the feed records, and as it stands
// now (Input.Changes; Input.FieldChanges reads only the date, type and
// input, several times faster). It commits what the generator wrote
// together with the new position in one batch: a crash or an error never
// leaves values that disagree with the position.
//
// A generator that is new, was reset, whose Version changed (Versioned) or
// whose position precedes a resync is rebuilt from the whole mirror
// instead. Rebuilds stream: the generators due at the same time share one
// scan of a snapshot, each event parsed once for all of them; what each
// writes goes to sorted runs on disk past a memory budget, then to
// sstables put in place with its position in one atomic ingest. A bulk
// load (a first load, a resync) can feed the built-in generators as it
// writes (LoadFeed): their state then goes into the load's own ingest.
//
// A generator writes only through its Scope, which addresses nothing but
// its values, generated:{name}:*, and (Scope.State) what it keeps for
// itself to stay incremental, mirrord:state:{name}:*: a reader of
// generated: sees values and nothing else. An error or a panic in one
// generator is logged (with the event's id when there is one), shown in
// its Status and retried with capped exponential backoff; the mirror and
// the other generators keep going, each generator in its own goroutine.
// Change-feed entries are pruned once every enabled generator is past
// them.
//
// The runner reads the feed through package kv alone: it never imports the
// mirror engine; the command wires the engine's "applied" notification to
// Runner.Notify, and a load's feed to Runner.LoadFeed.
//
// Two generators are built in: summary (a value per month: count, counts
// by type, first and last date) and hashtags (for each #tag in an event's
// input, as the application that writes the log reads them, one key per
// tag and event). Each change costs them O(log n), whatever the size of
// the log, and no value grows with it.
package generators
