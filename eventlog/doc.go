// Package eventlog reads and writes the event log (docs/design.md, The
// event log): a UTF-8 file holding a stream of JSON values (not JSON
// Lines), each event written by the application as
// JSON.stringify(event, null, "\t") plus "\n".
//
// The Decoder streams a log, or its tail from a byte offset, and yields one
// Entry per value: a valid event (decoded id, compacted object, where its
// date, type and input are in it, modifiers, byte offsets and line), an
// invalid entry (offset, line, field and reason; it never stops the rest of
// the log), or, last, an incomplete tail when the input ends inside a
// value, which is how a writer caught mid-append looks and is not an error.
// Text that is not JSON is skipped up to the next line that starts with '{'
// (the application starts every event on one). A value that is JSON but
// larger than Options.MaxValueSize is skipped by its structure instead,
// nesting and strings tracked: it is one invalid entry up to its own end,
// nothing inside it is read as an event, and a value glued right after it
// is read. Should such a value turn out not to be JSON past the bound,
// reading resumes at the first line that starts with '{' at or after the
// error (the bytes before it are gone, and were JSON so far); an error
// within the bound resumes after the value's first byte, as for any text.
// The decoder holds at most one value in memory, bounded by
// Options.MaxValueSize.
//
// Decoding a file whole, or decoding its first part and then its tail from
// the End of the last entry, yields the same entries: that is what lets the
// mirror resume exactly where it stopped. When the first part ends inside
// a value, Decoder.Resume hands back where the scan stopped, and the
// decoder of the tail (Options.Resume) goes on from there rather than
// scanning the value again from its start.
//
// AppendFile, RewriteFile, Format and Encoder write events byte for byte as
// the application does (appends, and the in-place rewrite that deletes).
// Event is the decoded form for programs (generators, tests): it keeps
// unknown fields and key order, so decoding and re-encoding an event gives
// back the application's bytes.
package eventlog
