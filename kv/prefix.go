package kv

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix: the prefix with its last byte incremented, after dropping
// trailing 0xFF bytes. It returns nil (no upper bound) for an empty prefix
// or one made only of 0xFF bytes.
func PrefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xFF {
			end := make([]byte, i+1)
			copy(end, prefix)
			end[i]++
			return end
		}
	}
	return nil
}
