package microsnap

import (
	"bytes"
	"fmt"
	"math"
	"unsafe"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// UnmarshalJSONFrom reads one handle object. It is spelled out member by
// member over the json package's tokenizer (jsontext), which checks the
// syntax, the escapes, the UTF-8 and that no name repeats, instead of being
// left to the package's reflection: a listing holds thousands of handles,
// and reflection took about three times as long, enough for List to miss
// "≤ 3× the Rust list" (docs/BENCHMARKS.md). It is also stricter than
// reflection: every member must be present, null only where the field is a
// pointer, and an integer must be an integer in range. An unknown member is
// skipped, or refused under json.RejectUnknownMembers (the golden tests).
func (h *handleJSON) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	return h.decode(dec, new(stringPool))
}

// decode is UnmarshalJSONFrom with the strings made by pool, which List
// shares across the handles of a listing.
func (h *handleJSON) decode(dec *jsontext.Decoder, pool *stringPool) error {
	if kind := dec.PeekKind(); kind != '{' {
		return fmt.Errorf("handle: expected an object, found %v", kind)
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	var v handleJSON
	var seen uint32
	next := 0
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		m := handleMember(name, next)
		next = m + 1
		if m < 0 {
			if reject, _ := json.GetOption(dec.Options(), json.RejectUnknownMembers); reject {
				return fmt.Errorf("handle: unknown member %s", name)
			}
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<m) != 0 { // List lets the tokenizer allow repeats (handleListResult)
			return fmt.Errorf("handle: duplicate member %q", handleMembers[m])
		}
		seen |= 1 << m
		if err := v.read(m, dec, pool); err != nil {
			return fmt.Errorf("handle member %q: %w", handleMembers[m], err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for m, name := range handleMembers {
		if seen&(1<<m) == 0 {
			return fmt.Errorf("handle: missing member %q", name)
		}
	}
	*h = v
	return nil
}

// handleMembers are the handle's members (docs/abi.md), in the order of
// handleJSON's fields; a test keeps them equal to the fields' json tags.
var handleMembers = [...]string{
	"digest", "name", "parent_digest", "image_ref", "image_manifest_digest", "format",
	"fstype", "size_bytes", "path", "created_at", "created_at_unix_nanos", "labels", "child_count",
	"artifact_format",
}

// quotedMembers are handleMembers as the library writes them, quoted.
var quotedMembers = func() (q [len(handleMembers)]string) {
	for m, name := range handleMembers {
		q[m] = `"` + name + `"`
	}
	return q
}()

// handleMember is the index in handleMembers of a member name as the
// tokenizer returns it (quoted, maybe with escapes), or -1. The library
// writes the members in order, so the one expected next is tried first.
func handleMember(quoted jsontext.Value, next int) int {
	if next < len(quotedMembers) && string(quoted) == quotedMembers[next] {
		return next
	}
	name := []byte(quoted[1 : len(quoted)-1])
	if bytes.IndexByte(name, '\\') >= 0 {
		var err error
		if name, err = jsontext.AppendUnquote(nil, quoted); err != nil {
			return -1
		}
	}
	for m, n := range handleMembers {
		if string(name) == n {
			return m
		}
	}
	return -1
}

// read reads the value of member m (an index in handleMembers) into v.
func (v *handleJSON) read(m int, dec *jsontext.Decoder, pool *stringPool) error {
	if m == 11 { // labels: an object, read member by member
		return v.Labels.read(dec, pool)
	}
	value, err := dec.ReadValue()
	if err != nil {
		return err
	}
	switch m {
	case 0:
		v.Digest, err = pool.str(value, -1)
	case 1:
		v.Name, err = pool.nullableStr(value)
	case 2:
		v.ParentDigest, err = pool.nullableStr(value)
	case 3:
		v.ImageRef, err = pool.str(value, slotImageRef)
	case 4:
		v.ImageManifestDigest, err = pool.str(value, slotImageManifestDigest)
	case 5:
		v.Format, err = pool.str(value, slotFormat)
	case 6:
		v.Fstype, err = pool.str(value, slotFstype)
	case 7:
		v.SizeBytes = optional[uint64]{}
		if value.Kind() != 'n' {
			v.SizeBytes.value, err = uint64Of(value)
			v.SizeBytes.set = true
		}
	case 8:
		v.Path, err = pool.str(value, -1)
	case 9:
		v.CreatedAt, err = pool.str(value, slotCreatedAt)
	case 10:
		v.CreatedAtUnixNanos, err = int64Of(value)
	case 12:
		v.ChildCount, err = uint64Of(value)
	case 13:
		v.ArtifactFormat, err = pool.str(value, slotArtifactFormat)
	}
	return err
}

// labels is the handle's labels object as the key, value pairs the
// library sent, keys unique. A map
// for each of a listing's handles would be most of its memory, and the
// accessor copies the labels into a new map anyway.
type labels struct {
	pairs []string // key, value, key, value, ...
}

func (l *labels) read(dec *jsontext.Decoder, pool *stringPool) error {
	if kind := dec.PeekKind(); kind != '{' {
		return fmt.Errorf("expected an object, found %v", kind)
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	l.pairs = nil
	var keys map[string]bool // only once a key is out of order; see below
	for i := 0; dec.PeekKind() != '}'; i++ {
		key, err := dec.ReadValue()
		if err != nil {
			return err
		}
		k, err := pool.str(key, slotLabelKeys+i)
		if err != nil {
			return err
		}
		// A repeated key is an error. The library sends the keys sorted, so
		// uniqueness is a comparison with the previous key; only keys out of
		// order need a set.
		if n := len(l.pairs); keys == nil && n > 0 && k <= l.pairs[n-2] {
			keys = make(map[string]bool, n/2+1)
			for j := 0; j < n; j += 2 {
				keys[l.pairs[j]] = true
			}
		}
		if keys != nil {
			if keys[k] {
				return fmt.Errorf("duplicate label %q", k)
			}
			keys[k] = true
		}
		value, err := dec.ReadValue()
		if err != nil {
			return err
		}
		v, err := pool.str(value, -1)
		if err != nil {
			return fmt.Errorf("label %q: %w", k, err)
		}
		l.pairs = append(l.pairs, k, v)
	}
	_, err := dec.ReadToken()
	return err
}

// UnmarshalJSONFrom reads labels alone (the golden tests' coverage walk).
func (l *labels) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	return l.read(dec, new(stringPool))
}

// MarshalJSONTo writes the labels as the library does, an object (the
// tests build listings with it).
func (l labels) MarshalJSONTo(enc *jsontext.Encoder) error {
	if err := enc.WriteToken(jsontext.BeginObject); err != nil {
		return err
	}
	for _, s := range l.pairs {
		if err := enc.WriteToken(jsontext.String(s)); err != nil {
			return err
		}
	}
	return enc.WriteToken(jsontext.EndObject)
}

// stringPool makes the strings of the handles of one listing. It packs
// their bytes into shared 4 KiB blocks instead of allocating each one (a
// listing of 10,000 has some 60,000 strings, and allocating and later
// collecting each was a large part of its decode), and it shares a value
// that listings repeat (image, format, fstype, artifact format, label keys) with the one
// last read into the same slot when they are equal. A block is never
// written again once a string points into it; the cost is that a handle
// kept alone keeps its block (a few neighbours' strings) alive.
type stringPool struct {
	block  []byte
	recent [slotLabelKeys + 8]string
}

// The reuse slots: the handle members that repeat, then the first label
// keys by position.
const (
	slotImageRef = iota
	slotImageManifestDigest
	slotFormat
	slotFstype
	slotCreatedAt
	slotArtifactFormat
	slotLabelKeys
)

const poolBlock = 4 << 10

// str is the content of a string value (its syntax, escapes and UTF-8
// checked by the tokenizer), shared with the last one read into slot when
// equal (slot -1, or past the slots: a value that does not repeat).
func (p *stringPool) str(value jsontext.Value, slot int) (string, error) {
	if value.Kind() != '"' {
		return "", fmt.Errorf("expected a string, found %v", value.Kind())
	}
	content := []byte(value[1 : len(value)-1])
	if bytes.IndexByte(content, '\\') >= 0 {
		var err error
		if content, err = jsontext.AppendUnquote(nil, value); err != nil {
			return "", err
		}
	}
	if slot < 0 || slot >= len(p.recent) {
		return p.keep(content), nil
	}
	if string(content) != p.recent[slot] {
		p.recent[slot] = p.keep(content)
	}
	return p.recent[slot], nil
}

func (p *stringPool) nullableStr(value jsontext.Value) (optional[string], error) {
	if value.Kind() == 'n' {
		return optional[string]{}, nil
	}
	s, err := p.str(value, -1)
	return optional[string]{s, true}, err
}

// optional is a member that may be null: a value with a presence flag
// rather than a pointer, which would be one more allocation for each of a
// listing's handles. The accessors make the pointers.
type optional[T any] struct {
	value T
	set   bool
}

// ptr returns a pointer to a copy of the value, or nil for null.
func (o optional[T]) ptr() *T {
	if !o.set {
		return nil
	}
	v := o.value
	return &v
}

// nullable marks the type for the golden tests' check that null appears
// only where a field may hold it.
func (optional[T]) nullable() {}

// MarshalJSONTo writes the value, or null (the tests build listings with it).
func (o optional[T]) MarshalJSONTo(enc *jsontext.Encoder) error {
	if !o.set {
		return enc.WriteToken(jsontext.Null)
	}
	return json.MarshalEncode(enc, o.value)
}

// keep returns a string holding a copy of b, placed in the current block.
func (p *stringPool) keep(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > cap(p.block)-len(p.block) {
		p.block = make([]byte, 0, max(poolBlock, len(b)))
	}
	start := len(p.block)
	p.block = append(p.block, b...)
	return unsafe.String(&p.block[start], len(b))
}

func uint64Of(value jsontext.Value) (uint64, error) {
	if value.Kind() != '0' {
		return 0, fmt.Errorf("expected an integer, found %v", value.Kind())
	}
	var n uint64
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("expected a non-negative integer, found %s", value)
		}
		if n > (math.MaxUint64-uint64(c-'0'))/10 {
			return 0, fmt.Errorf("integer %s out of range", value)
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// int64Of is uint64Of for a signed integer.
func int64Of(value jsontext.Value) (int64, error) {
	neg := len(value) > 0 && value[0] == '-'
	digits := value
	if neg {
		digits = value[1:]
	}
	if len(digits) == 0 || value.Kind() != '0' {
		return 0, fmt.Errorf("expected an integer, found %s", value)
	}
	n, err := uint64Of(digits)
	switch {
	case err != nil:
		return 0, fmt.Errorf("expected an integer, found %s", value)
	case !neg && n <= math.MaxInt64:
		return int64(n), nil
	case neg && n <= 1<<63:
		return int64(-n), nil // two's complement: -(1<<63) is math.MinInt64
	}
	return 0, fmt.Errorf("integer %s out of range", value)
}
