package codec

// Decoding JSON into Go values, on the scanner of json.go: the same
// grammar, the same errors, only the walk differs (values are built
// instead of bytes copied).
//
// Why not encoding/json: a fold decodes the data of every event it folds,
// and json.Decoder with UseNumber takes about 1.5 µs and 14 allocations
// for the 130 bytes of data of a benchmark event (reflection, a
// bytes.Reader, a scanner that calls a function per byte). This decoder
// reads each byte once and allocates only the values it returns
// (BenchmarkDecodeJSON). MergeJSON merges an object straight into a state
// without building the patch first (fold's BenchmarkMergeStep).

import "encoding/json"

// DecodeJSON decodes one JSON value (surrounding whitespace allowed) into
// what encoding/json returns with UseNumber for the same input: nil,
// bool, string, json.Number (numbers keep their text, as jq keeps
// integers exact), []any and map[string]any, the last of duplicate keys
// winning. It accepts exactly what AppendCompact accepts; errors are
// *SyntaxError. EncodeJSON is its inverse for the values it returns.
func DecodeJSON(b []byte) (any, error) {
	s := jsonScanner{src: b, noCopy: true}
	s.skipSpace()
	v, err := s.decodeValue()
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeValue decodes one value starting exactly at i.
func (s *jsonScanner) decodeValue() (any, error) {
	if s.i >= len(s.src) {
		return nil, s.unexpected("")
	}
	switch c := s.src[s.i]; {
	case c == '"':
		b, err := s.decodeString()
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case c == '{':
		return s.decodeObject()
	case c == '[':
		return s.decodeArray()
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		if err := s.number(); err != nil {
			return nil, err
		}
		return json.Number(s.src[start:s.i]), nil
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	}
	return nil, s.unexpected("")
}

// decodeString reads the string at i and returns its decoded content: a
// subslice of src when it has no escapes, else of dst (the scratch space).
// Either way it is only valid until the next read.
func (s *jsonScanner) decodeString() ([]byte, error) {
	start := s.i + 1
	escaped, err := s.str()
	if err != nil {
		return nil, err
	}
	body := s.src[start : s.i-1]
	if !escaped {
		return body, nil
	}
	s.dst = appendUnescaped(s.dst[:0], body)
	return s.dst, nil
}

func (s *jsonScanner) decodeObject() (any, error) {
	m := make(map[string]any)
	err := s.decodeMembers(func(key []byte) error {
		k := string(key) // now: key is only valid until the next read
		v, err := s.decodeValue()
		if err != nil {
			return err
		}
		m[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// decodeMembers reads an object starting at its '{'. For each member it
// reads the key and calls member with the key's decoded bytes (valid
// until the next read) and i at the value, which member must read.
func (s *jsonScanner) decodeMembers(member func(key []byte) error) error {
	if err := s.open(); err != nil {
		return err
	}
	s.skipSpace()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if s.i >= len(s.src) || s.src[s.i] != '"' {
			return s.unexpected(", expected object key")
		}
		key, err := s.decodeString()
		if err != nil {
			return err
		}
		s.skipSpace()
		if err := s.colon(); err != nil {
			return err
		}
		s.skipSpace()
		if err := member(key); err != nil {
			return err
		}
		s.skipSpace()
		more, err := s.objectNext()
		if err != nil {
			return err
		}
		if !more {
			s.depth--
			return nil
		}
		s.skipSpace()
	}
}

func (s *jsonScanner) decodeArray() (any, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	s.skipSpace()
	a := []any{}
	if s.i < len(s.src) && s.src[s.i] == ']' {
		s.i++
		s.depth--
		return a, nil
	}
	for {
		v, err := s.decodeValue()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		s.skipSpace()
		if s.i < len(s.src) {
			switch s.src[s.i] {
			case ',':
				s.i++
				s.skipSpace()
				continue
			case ']':
				s.i++
				s.depth--
				return a, nil
			}
		}
		return nil, s.unexpected(", expected ',' or ']'")
	}
}

// MergePatch applies patch to target as RFC 7396 (JSON Merge Patch)
// defines it, on decoded JSON values, and returns the result:
//
//	if patch is an object:
//	    if target is not an object: target = {}
//	    for each member name: value of patch:
//	        if value is null: remove name from target
//	        else: target[name] = MergePatch(target[name], value)
//	    return target
//	return patch
//
// Aliasing, so that a fold can patch one state per entity in place:
//
//   - patch is never modified.
//   - target's objects are modified in place: when target and patch are
//     both objects the result is target itself. Use target's old value
//     only if you encoded or copied it before.
//   - Every object of the result reached from its root through objects
//     only is target's or newly made, never patch's; so a later MergePatch
//     on the result never modifies patch. The result may share patch's
//     other values: its arrays (and all they contain) and its strings and
//     numbers, which MergePatch never modifies.
//   - target and patch must not share objects (MergePatch(x, x) modifies x).
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = make(map[string]any, len(p))
	}
	for name, v := range p {
		switch v := v.(type) {
		case nil:
			delete(t, name)
		case map[string]any:
			t[name] = MergePatch(t[name], v)
		default:
			t[name] = v
		}
	}
	return t
}

// MergeJSON returns MergePatch(target, DecodeJSON(patch)) without
// materialising the patch: object members are merged into target as they
// are read. Like MergePatch, it modifies target's objects in place; none
// of what it stores in target is shared with anything. On error (a
// *SyntaxError) target is unchanged.
//
// Streaming is correct only if no object it streams (the root, and objects
// reached from it through objects) has a key twice: the last one wins, but
// the earlier ones would already have changed target. Such data (and data
// with escaped keys, which might be duplicates in disguise) takes the slow
// path, DecodeJSON then MergePatch; uniqueKeys tells them apart in a first
// pass, which also checks the syntax, so a patch that streams is valid.
func MergeJSON(target any, patch []byte) (any, error) {
	if !uniqueKeys(patch) {
		p, err := DecodeJSON(patch)
		if err != nil {
			return nil, err
		}
		return MergePatch(target, p), nil
	}
	s := jsonScanner{src: patch, noCopy: true}
	s.skipSpace()
	v, err := s.merge(target)
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// merge is MergeJSON for the value at i: objects are merged member by
// member into target, anything else replaces it.
func (s *jsonScanner) merge(target any) (any, error) {
	if s.i >= len(s.src) || s.src[s.i] != '{' {
		return s.decodeValue()
	}
	obj, ok := target.(map[string]any)
	if !ok {
		obj = make(map[string]any)
	}
	err := s.decodeMembers(func(key []byte) error {
		if s.i < len(s.src) {
			switch s.src[s.i] {
			case 'n':
				if err := s.literal("null"); err != nil {
					return err
				}
				delete(obj, string(key))
				return nil
			case '{':
				if old, ok := obj[string(key)].(map[string]any); ok {
					_, err := s.merge(old) // in place
					return err
				}
				k := string(key) // now: key is only valid until the next read
				v, err := s.merge(nil)
				if err != nil {
					return err
				}
				obj[k] = v
				return nil
			}
		}
		k := string(key)
		v, err := s.decodeValue()
		if err != nil {
			return err
		}
		obj[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// uniqueKeys reports whether MergeJSON may stream patch: whether every
// object reached from the root through objects only has distinct keys
// without escapes, and the patch is valid JSON. A patch that is not an
// object streams as it is: merge only decodes it, and modifies nothing.
// Invalid JSON answers false, and DecodeJSON reports the error.
func uniqueKeys(patch []byte) bool {
	s := jsonScanner{src: patch, noCopy: true}
	s.skipSpace()
	if s.i >= len(s.src) || s.src[s.i] != '{' {
		return true
	}
	return s.uniqueObjectKeys() && s.end() == nil
}

// uniqueObjectKeys validates the object at i and those nested in it
// through members, checking their keys.
func (s *jsonScanner) uniqueObjectKeys() bool {
	if s.open() != nil {
		return false
	}
	// Keys seen so far, as spans of src: compared pairwise while there
	// are few (the usual case, no allocation), in a set beyond.
	var small [16][2]int
	keys := small[:0]
	var set map[string]struct{}
	s.skipSpace()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		start := s.i
		escaped, err := s.key()
		if err != nil || escaped {
			return false
		}
		key := s.src[start+1 : s.i-1]
		switch {
		case set != nil:
			if _, dup := set[string(key)]; dup {
				return false
			}
			set[string(key)] = struct{}{}
		default:
			for _, k := range keys {
				if string(s.src[k[0]:k[1]]) == string(key) {
					return false
				}
			}
			if len(keys) < len(small) {
				keys = append(keys, [2]int{start + 1, s.i - 1})
				break
			}
			set = make(map[string]struct{}, 2*len(keys))
			for _, k := range keys {
				set[string(s.src[k[0]:k[1]])] = struct{}{}
			}
			set[string(key)] = struct{}{}
		}
		s.skipSpace()
		if s.colon() != nil {
			return false
		}
		s.skipSpace()
		if s.i < len(s.src) && s.src[s.i] == '{' {
			if !s.uniqueObjectKeys() {
				return false
			}
		} else if s.value() != nil {
			return false
		}
		s.skipSpace()
		more, err := s.objectNext()
		if err != nil {
			return false
		}
		if !more {
			s.depth--
			return true
		}
		s.skipSpace()
	}
}
