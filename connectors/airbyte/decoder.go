package airbyte

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLineBytes bounds one line of connector output. Airbyte's own
// platform accepts records up to 100 MB; a line past the bound is an error
// rather than unbounded memory.
const DefaultMaxLineBytes = 256 << 20

// Line is one line of a connector's standard output (or of an imported file).
type Line struct {
	Number int // 1-based
	// Message is the decoded message, nil for a line that is not one.
	Message *Message
	// Text is a line that is not JSON at all (connectors print plain log
	// lines on stdout too); empty lines are skipped, never returned.
	Text string
	// Invalid explains why a line that looks like JSON ('{' first) is not a
	// valid message. Text holds the line then.
	Invalid error
}

// Decoder reads Airbyte messages one per line as they stream in. Lines of any
// length up to MaxLineBytes are read whole.
type Decoder struct {
	r            *bufio.Reader
	line         int
	MaxLineBytes int // default DefaultMaxLineBytes
}

// NewDecoder reads messages from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10), MaxLineBytes: DefaultMaxLineBytes}
}

// Next returns the next non-empty line, or io.EOF after the last one. An
// error other than io.EOF is an I/O failure or a line over MaxLineBytes.
func (d *Decoder) Next() (Line, error) {
	for {
		raw, err := d.readLine()
		if err != nil && (err != io.EOF || len(raw) == 0) {
			return Line{}, err
		}
		d.line++
		trimmed := bytes.TrimSpace(raw)
		if len(trimmed) == 0 {
			if err == io.EOF {
				return Line{}, io.EOF
			}
			continue
		}
		l := Line{Number: d.line}
		if trimmed[0] != '{' {
			l.Text = string(trimmed)
			return l, nil
		}
		m, perr := ParseMessage(trimmed)
		if perr != nil {
			l.Text, l.Invalid = string(trimmed), perr
			return l, nil
		}
		l.Message = &m
		return l, nil
	}
}

// readLine returns one line without its newline, however long, up to the
// bound. At the end of input it returns the last line with io.EOF.
func (d *Decoder) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(buf)+len(chunk) > d.maxLine() {
			// Drain the rest of the line so the next call starts on a line boundary.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = d.r.ReadSlice('\n')
			}
			d.line++
			return nil, fmt.Errorf("line %d is longer than %d bytes", d.line, d.maxLine())
		}
		switch {
		case err == nil:
			if buf == nil {
				return bytes.TrimRight(chunk, "\r\n"), nil // chunk is valid until the next read: the caller copies what it keeps
			}
			return bytes.TrimRight(append(buf, chunk...), "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			buf = append(buf, chunk...)
		case err == io.EOF:
			return append(buf, chunk...), io.EOF
		default:
			return nil, err
		}
	}
}

// Line is the number of the last line read.
func (d *Decoder) Line() int { return d.line }

func (d *Decoder) maxLine() int {
	if d.MaxLineBytes <= 0 {
		return DefaultMaxLineBytes
	}
	return d.MaxLineBytes
}
