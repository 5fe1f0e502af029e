package kv

import (
	"bytes"
	"testing"
)

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("event:"), []byte("event;")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte("a\xff\xff"), []byte("b")},
		{[]byte("\xff\xff"), nil},
		{nil, nil},
	} {
		if got := PrefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("PrefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The naive bound of the original module, prefix+"\xFF", is below
	// keys whose next byte is 0xFF... and below every multi-byte UTF-8
	// sequence's continuation; the successor is above all of them.
	end := string(PrefixEnd([]byte("event:")))
	for _, k := range []string{"event:я", "event:😀", "event:\xff\xff"} {
		if k >= end {
			t.Errorf("%q is not below PrefixEnd(event:)", k)
		}
	}
}
