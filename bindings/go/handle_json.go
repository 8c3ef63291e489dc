package microsnap

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// The snapshot handle is the one result that comes in bulk: listing 10,000
// snapshots is about 5 MB of JSON, and encoding/json (a validating pass over
// the whole text, then a reflective one) took several times as long to read
// it as the library took to produce it. So the handle object, and the
// snapshot_list envelope around it, have this decoder, written for exactly
// that shape. It is strict where encoding/json is lenient, because the
// library's output is fully specified (docs/abi.md): every handle member
// must be present exactly once with its JSON type (null only where the
// field is nullable), integers must be integers in range, strings must be
// valid UTF-8 with valid escapes. Members it does not know are skipped
// (after checking they are well-formed), as encoding/json would.

// handleList is snapshot_list's result, {"snapshots": [handle...]},
// decoded straight into the handles List returns.
type handleList struct {
	home    *Home
	handles []*SnapshotHandle
}

func (l *handleList) decodeRaw(body []byte) error {
	s := jsonScanner{b: body}
	seen := false
	err := s.object(func(key []byte) error {
		if string(key) != "snapshots" {
			return s.skipValue(0)
		}
		if seen {
			return s.fail(`duplicate member "snapshots"`)
		}
		seen = true
		return s.array(func() error {
			h := &SnapshotHandle{home: l.home}
			l.handles = append(l.handles, h)
			return s.handle(&h.h)
		})
	})
	if err == nil && !seen {
		err = s.fail(`missing member "snapshots"`)
	}
	if err == nil {
		err = s.end()
	}
	return err
}

// UnmarshalJSON decodes one handle object with the same rules, so Get and
// Import (which go through encoding/json) read handles as List does.
func (h *handleJSON) UnmarshalJSON(b []byte) error {
	s := jsonScanner{b: b}
	var v handleJSON
	if err := s.handle(&v); err != nil {
		return err
	}
	if err := s.end(); err != nil {
		return err
	}
	*h = v
	return nil
}

// handleMembers are the handle's members in the order the library writes
// them (docs/abi.md); a member's index is also its bit in handle's seen set.
var handleMembers = []string{
	"digest", "name", "parent_digest", "image_ref", "image_manifest_digest", "format",
	"fstype", "size_bytes", "path", "created_at", "created_at_unix_nanos", "labels", "child_count",
}

const (
	mDigest = iota
	mName
	mParentDigest
	mImageRef
	mImageManifestDigest
	mFormat
	mFstype
	mSizeBytes
	mPath
	mCreatedAt
	mCreatedAtUnixNanos
	mLabels
	mChildCount
)

func (s *jsonScanner) handle(h *handleJSON) error {
	var seen uint32
	err := s.members(handleMembers, func(m int, key []byte) error {
		var err error
		switch m {
		case mDigest:
			h.Digest, err = s.str()
		case mName:
			h.Name, err = s.nullableStr()
		case mParentDigest:
			h.ParentDigest, err = s.nullableStr()
		case mImageRef:
			h.ImageRef, err = s.reusedStr(slotImageRef)
		case mImageManifestDigest:
			h.ImageManifestDigest, err = s.reusedStr(slotImageManifestDigest)
		case mFormat:
			h.Format, err = s.reusedStr(slotFormat)
		case mFstype:
			h.Fstype, err = s.reusedStr(slotFstype)
		case mSizeBytes:
			h.SizeBytes = optional[uint64]{}
			if !s.null() {
				var n uint64
				n, err = s.uint64()
				h.SizeBytes = some(n)
			}
		case mPath:
			h.Path, err = s.str()
		case mCreatedAt:
			err = s.skipStr()
		case mCreatedAtUnixNanos:
			h.CreatedAtUnixNanos, err = s.int64()
		case mLabels:
			h.Labels, err = s.labels()
		case mChildCount:
			h.ChildCount, err = s.uint64()
		default:
			return s.skipValue(0)
		}
		if err != nil {
			return fmt.Errorf("handle member %q: %w", key, err)
		}
		if seen&(1<<m) != 0 {
			return s.fail("handle: duplicate member %q", key)
		}
		seen |= 1 << m
		return nil
	})
	if err != nil {
		return err
	}
	for m, name := range handleMembers {
		if seen&(1<<m) == 0 {
			return s.fail("handle: missing member %q", name)
		}
	}
	return nil
}

// labels reads a {"key": "value", ...} object as key, value pairs; a
// repeated key is an error. The library sends keys sorted, so uniqueness is
// a comparison with the previous key; only keys out of order need a set.
func (s *jsonScanner) labels() ([]string, error) {
	var pairs []string
	var keys map[string]bool
	err := s.object(func(key []byte) error {
		n := len(pairs)
		if keys == nil && n > 0 && string(key) <= pairs[n-2] {
			keys = make(map[string]bool, n/2+1)
			for i := 0; i < n; i += 2 {
				keys[pairs[i]] = true
			}
		}
		if keys != nil && keys[string(key)] {
			return s.fail("duplicate label %q", key)
		}
		k := s.reuse(slotLabelKeys+n/2, key)
		v, err := s.str()
		if err != nil {
			return err
		}
		if keys != nil {
			keys[k] = true
		}
		pairs = append(pairs, k, v)
		return nil
	})
	return pairs, err
}

// reuse returns b as a string, sharing the previous value read into the
// same slot when it is equal: in a listing most handles carry the same
// image, format, fstype and label keys, and one copy of each is enough.
func (s *jsonScanner) reuse(slot int, b []byte) string {
	if slot < len(s.recent) {
		if string(b) == s.recent[slot] {
			return s.recent[slot]
		}
		s.recent[slot] = s.keep(b)
		return s.recent[slot]
	}
	return s.keep(b)
}

// The reuse slots: four handle members, then the first label keys by position.
const (
	slotImageRef = iota
	slotImageManifestDigest
	slotFormat
	slotFstype
	slotLabelKeys
)

// reusedStr is str for a value that listings repeat.
func (s *jsonScanner) reusedStr(slot int) (string, error) {
	if s.peek() != '"' {
		return "", s.fail("expected a string, found %s", s.found())
	}
	b, err := s.stringBytes()
	if err != nil {
		return "", err
	}
	return s.reuse(slot, b), nil
}

// jsonScanner reads JSON text (RFC 8259) from b, position i.
type jsonScanner struct {
	b      []byte
	i      int
	recent [slotLabelKeys + 8]string // see reuse
	arena  []byte                    // see keep
}

// maxDepth bounds the nesting of skipped values, so hostile input cannot
// recurse without limit.
const maxDepth = 64

type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("at byte %d: %s", e.offset, e.msg) }

func (s *jsonScanner) fail(format string, args ...any) error {
	return &syntaxError{s.i, fmt.Sprintf(format, args...)}
}

// found describes the next byte for an error message.
func (s *jsonScanner) found() string {
	if s.i >= len(s.b) {
		return "end of input"
	}
	return fmt.Sprintf("%q", s.b[s.i])
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.fail("expected %q, found %s", c, s.found())
	}
	s.i++
	return nil
}

// end checks that only whitespace follows the value.
func (s *jsonScanner) end() error {
	if s.peek() != 0 || s.i != len(s.b) {
		return s.fail("unexpected %s after the value", s.found())
	}
	return nil
}

// object reads an object, calling member for each key with the scanner at
// its value; member must consume the value. The key slice is only valid
// during the call.
func (s *jsonScanner) object(member func(key []byte) error) error {
	return s.members(nil, func(_ int, key []byte) error { return member(key) })
}

// members is object for an object whose member names come from names,
// usually in that order (the library writes its structs' fields in
// declaration order): each name is first compared with the one expected
// next, and only scanned as a general string when it is not that one.
// member gets the name's index in names, or -1 for a name not in it.
func (s *jsonScanner) members(names []string, member func(m int, key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	next := 0
	for {
		if s.peek() != '"' {
			return s.fail("expected a member name, found %s", s.found())
		}
		m, key := -1, []byte(nil)
		if next < len(names) && s.quoted(names[next]) {
			m = next
			key = s.b[s.i+1 : s.i+1+len(names[m])]
			s.i += len(names[m]) + 2
		} else {
			var err error
			if key, err = s.stringBytes(); err != nil {
				return err
			}
			for j, name := range names {
				if string(key) == name {
					m = j
					break
				}
			}
		}
		if m >= 0 {
			next = m + 1
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := member(m, key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or '}' in object, found %s", s.found())
		}
	}
}

// quoted reports whether the text at s.i is name in quotes. Member names
// hold no character that needs an escape, so equal raw text is the same
// string and needs no decoding.
func (s *jsonScanner) quoted(name string) bool {
	end := s.i + 1 + len(name)
	return end < len(s.b) && s.b[end] == '"' && string(s.b[s.i+1:end]) == name
}

// array reads an array, calling elem with the scanner at each element;
// elem must consume it.
func (s *jsonScanner) array(elem func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or ']' in array, found %s", s.found())
		}
	}
}

// null consumes a null literal if one is next.
func (s *jsonScanner) null() bool {
	if s.peek() == 'n' && s.literal("null") == nil {
		return true
	}
	return false
}

func (s *jsonScanner) literal(word string) error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.fail("invalid literal, expected %s", word)
	}
	s.i += len(word)
	return nil
}

func (s *jsonScanner) str() (string, error) {
	if s.peek() != '"' {
		return "", s.fail("expected a string, found %s", s.found())
	}
	b, err := s.stringBytes()
	if err != nil {
		return "", err
	}
	return s.keep(b), nil
}

// arenaChunk is the size of the blocks keep copies strings into.
const arenaChunk = 4 << 10

// keep returns a string holding a copy of b. The copies are packed into
// shared 4 KiB blocks rather than allocated one by one: a listing of 10,000
// handles has some 50,000 such strings, and allocating (and later
// collecting) each was a fifth of its decode. A block is never written
// again once a string points into it; the cost is that a handle kept alone
// keeps its block (a few neighbours' strings) alive.
func (s *jsonScanner) keep(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > cap(s.arena)-len(s.arena) {
		s.arena = make([]byte, 0, max(arenaChunk, len(b)))
	}
	start := len(s.arena)
	s.arena = append(s.arena, b...)
	return unsafe.String(&s.arena[start], len(b))
}

// skipStr checks that a string is next and steps over it.
func (s *jsonScanner) skipStr() error {
	if s.peek() != '"' {
		return s.fail("expected a string, found %s", s.found())
	}
	_, err := s.stringBytes()
	return err
}

func (s *jsonScanner) nullableStr() (optional[string], error) {
	if s.null() {
		return optional[string]{}, nil
	}
	v, err := s.str()
	return some(v), err
}

// stringBytes reads a string (the scanner is at its opening quote) and
// returns its content: a view into b when it has no escapes, a new slice
// otherwise. Either way the caller copies it before keeping it.
func (s *jsonScanner) stringBytes() ([]byte, error) {
	b, start := s.b, s.i+1 // past the opening quote
	i := start
	for {
		// Locals, not s.b and s.i: this loop is most of a listing's decode.
		for i+8 <= len(b) && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i == len(b) {
			s.i = i
			return nil, s.fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], nil
		case c == '\\':
			s.i = i
			return s.escapedString(start)
		case c < 0x20:
			s.i = i
			return nil, s.fail("control character %q in string", c)
		case c < utf8.RuneSelf:
			i++
		default:
			s.i = i
			if err := s.utf8Rune(); err != nil {
				return nil, err
			}
			i = s.i
		}
	}
}

// plain8 reports whether the eight bytes in x are all ASCII that a string
// holds as is (not a control character, '"' or '\\'), so stringBytes can
// step over them at once. Word-at-a-time tests from "Bit Twiddling Hacks":
// each term is non-zero exactly when some byte is < 0x20, equals '"',
// equals '\\', or has its high bit set.
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	control := (x - ones*0x20) & ^x & highs
	return control|hasZero(x^(ones*'"'))|hasZero(x^(ones*'\\'))|x&highs == 0
}

// utf8Rune steps over one multi-byte UTF-8 sequence, refusing an invalid one.
func (s *jsonScanner) utf8Rune() error {
	r, size := utf8.DecodeRune(s.b[s.i:])
	if r == utf8.RuneError && size <= 1 {
		return s.fail("invalid UTF-8 in string")
	}
	s.i += size
	return nil
}

// escapedString finishes a string that has an escape at s.i, decoding into
// a new slice.
func (s *jsonScanner) escapedString(start int) ([]byte, error) {
	out := make([]byte, 0, 2*(s.i-start)+16)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return out, nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, s.fail("unterminated escape")
			}
			e := s.b[s.i+1]
			s.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, err := s.unicodeEscape()
				if err != nil {
					return nil, err
				}
				out = utf8.AppendRune(out, r)
			default:
				s.i--
				return nil, s.fail("invalid escape \\%c", e)
			}
		case c < 0x20:
			return nil, s.fail("control character %q in string", c)
		case c < utf8.RuneSelf:
			out = append(out, c)
			s.i++
		default:
			at := s.i
			if err := s.utf8Rune(); err != nil {
				return nil, err
			}
			out = append(out, s.b[at:s.i]...)
		}
	}
	return nil, s.fail("unterminated string")
}

// unicodeEscape reads the XXXX of a \uXXXX escape (the scanner is past the
// u), and a following low surrogate escape if XXXX is a high one. A lone
// surrogate is an error: it is not a character.
func (s *jsonScanner) unicodeEscape() (rune, error) {
	r, err := s.hex4()
	if err != nil {
		return 0, err
	}
	if !utf16.IsSurrogate(r) {
		return r, nil
	}
	if r >= 0xDC00 || len(s.b)-s.i < 2 || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
		return 0, s.fail("lone UTF-16 surrogate \\u%04X", r)
	}
	s.i += 2
	lo, err := s.hex4()
	if err != nil {
		return 0, err
	}
	pair := utf16.DecodeRune(r, lo)
	if pair == utf8.RuneError {
		return 0, s.fail("invalid UTF-16 surrogate pair \\u%04X\\u%04X", r, lo)
	}
	return pair, nil
}

func (s *jsonScanner) hex4() (rune, error) {
	if len(s.b)-s.i < 4 {
		return 0, s.fail("truncated \\u escape")
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, s.fail("invalid \\u escape")
		}
		r = r<<4 | rune(c)
	}
	s.i += 4
	return r, nil
}

// digits reads the integer part of a number: 0, or a non-zero digit and
// more digits. It returns the digits and refuses a fraction or exponent,
// which no integer field may have.
func (s *jsonScanner) digits() ([]byte, error) {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	d := s.b[start:s.i]
	switch {
	case len(d) == 0:
		s.i = start
		return nil, s.fail("expected an integer, found %s", s.found())
	case len(d) > 1 && d[0] == '0':
		return nil, s.fail("leading zero in a number")
	case s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E'):
		return nil, s.fail("expected an integer, found a fraction or exponent")
	}
	return d, nil
}

// magnitude is the value of decimal digits d, or false past math.MaxUint64.
func magnitude(d []byte) (uint64, bool) {
	var n uint64
	for _, c := range d {
		if n > (math.MaxUint64-uint64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func (s *jsonScanner) uint64() (uint64, error) {
	s.peek()
	d, err := s.digits()
	if err != nil {
		return 0, err
	}
	n, ok := magnitude(d)
	if !ok {
		return 0, s.fail("integer %s out of range", d)
	}
	return n, nil
}

func (s *jsonScanner) int64() (int64, error) {
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	d, err := s.digits()
	if err != nil {
		return 0, err
	}
	n, ok := magnitude(d)
	switch {
	case ok && !neg && n <= math.MaxInt64:
		return int64(n), nil
	case ok && neg && n <= 1<<63:
		return int64(-n), nil // two's complement: -(1<<63) is math.MinInt64
	}
	return 0, s.fail("integer %s out of range", d)
}

// skipValue steps over any well-formed value (a member this decoder does
// not know), refusing malformed text as the typed readers do.
func (s *jsonScanner) skipValue(depth int) error {
	if depth >= maxDepth {
		return s.fail("nesting deeper than %d", maxDepth)
	}
	switch s.peek() {
	case '"':
		_, err := s.stringBytes()
		return err
	case '{':
		return s.object(func([]byte) error { return s.skipValue(depth + 1) })
	case '[':
		return s.array(func() error { return s.skipValue(depth + 1) })
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.number()
}

// number steps over a JSON number of any form.
func (s *jsonScanner) number() error {
	if s.peek() == '-' {
		s.i++
	}
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	switch {
	case s.i == start:
		return s.fail("expected a value, found %s", s.found())
	case s.i-start > 1 && s.b[start] == '0':
		return s.fail("leading zero in a number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if err := s.moreDigits(); err != nil {
			return err
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if err := s.moreDigits(); err != nil {
			return err
		}
	}
	return nil
}

// moreDigits reads the one or more digits a fraction or exponent needs.
func (s *jsonScanner) moreDigits() error {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == start {
		return s.fail("expected a digit, found %s", s.found())
	}
	return nil
}
