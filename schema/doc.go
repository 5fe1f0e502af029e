// Package schema is mirrord's key schema: the shapes of every key the
// daemon writes (event:, modifier:, generated:, mirrord:…), the escaping of
// their segments, and the change feed that the mirror writes and the
// generators read.
//
// Keys are strings made of colon-separated segments. Inside a segment '%'
// becomes "%25", ':' becomes "%3A" and bytes below 0x20 become "%XX", so
// the mapping from ids to keys is injective: without it, event "a:b" with
// modifier "c" and event "a" with modifier "b:c" would share a key. Every
// key is built and parsed here (EventKey, ModifierKey, GeneratedKey,
// ParseKey, and the Append forms for hot paths); no other package formats
// a key by hand.
//
// The package stores nothing itself: the change feed is read and pruned
// through a kv.Reader and a kv.DB.
package schema
