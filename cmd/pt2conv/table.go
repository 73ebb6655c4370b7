package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
	"github.com/pt2conv/pt2conv/checkpoint"
	"golang.org/x/term"
)

// outputWidth is the number of columns text written to w should fit in: $COLUMNS when set
// (so scripts and tests can ask for a width), else the terminal's width when w is one, else
// 0, meaning no limit (a pipe or a file gets whole lines).
func outputWidth(w io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if c, ok := w.(*writeCounter); ok {
		w = c.w
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if n, _, err := term.GetSize(int(f.Fd())); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// A column of a table. Cells are plain text already escaped for the terminal.
type column struct {
	title string
	// shrink says how the column gives way when the table is wider than the limit:
	// keepWhole never, cutMiddle keeps both ends of the text (paths, whose ends are what
	// differ), cutEnd keeps its start (prose).
	shrink truncation
	// min is the narrowest a shrinking column gets.
	min int
	// drop, when above 0, lets the column be left out when the table cannot fit otherwise;
	// columns go in increasing drop order.
	drop int
}

type truncation int

const (
	keepWhole truncation = iota
	cutMiddle
	cutEnd
)

const columnGap = 2

// writeTable writes rows under the columns' titles (see writeRows).
func writeTable(w io.Writer, width int, cols []column, rows [][]string) (dropped []string, err error) {
	return writeRows(w, width, cols, stringRows(rows))
}

// stringRows is a rowSource of rows already made, cells taken as they are.
func stringRows(rows [][]string) rowSource {
	return func(r *tableRow) error {
		for _, cells := range rows {
			for _, c := range cells {
				r.raw(c)
			}
			if err := r.done(); err != nil {
				return err
			}
		}
		return nil
	}
}

// rowSource produces a table's rows: it fills r with each row's cells in turn and calls
// r.done after each. A table is sized in one pass and written in another, so rowSource runs
// twice and must give the same rows both times; no row is kept in between.
type rowSource func(r *tableRow) error

// tableRow is the row a rowSource is filling: its cells, text escaped for the terminal, end
// to end in one buffer that every row reuses.
type tableRow struct {
	buf  []byte
	ends []int
	emit func(*tableRow) error
}

// endCell closes the cell written at the end of buf since the last one.
func (r *tableRow) endCell() *tableRow {
	r.ends = append(r.ends, len(r.buf))
	return r
}

// raw adds a cell of text that needs no escaping.
func (r *tableRow) raw(s string) *tableRow {
	r.buf = append(r.buf, s...)
	return r.endCell()
}

// float adds a cell of a number as %.3g writes it.
func (r *tableRow) float(v float64) *tableRow {
	r.buf = strconv.AppendFloat(r.buf, v, 'g', 3, 64)
	return r.endCell()
}

// text adds a cell of text from a file, escaped (escapeText).
func (r *tableRow) text(s string) *tableRow {
	r.buf = appendEscaped(r.buf, s)
	return r.endCell()
}

// path adds a cell of a path from a file, joined with "/" and escaped. Escaping each key
// on its own is escaping the joined path: "/" is never part of a multi-byte rune.
func (r *tableRow) path(p checkpoint.Path) *tableRow {
	for i, k := range p {
		if i > 0 {
			r.buf = append(r.buf, '/')
		}
		r.buf = appendEscaped(r.buf, k)
	}
	return r.endCell()
}

func (r *tableRow) int(n int64) *tableRow {
	r.buf = strconv.AppendInt(r.buf, n, 10)
	return r.endCell()
}

// dims adds a cell of sizes as dims writes them.
func (r *tableRow) dims(d []int64) *tableRow {
	r.buf = appendDims(r.buf, d)
	return r.endCell()
}

// bytes adds a cell of a size as humanBytes writes it.
func (r *tableRow) bytes(n int64) *tableRow {
	r.buf = appendHumanBytes(r.buf, n)
	return r.endCell()
}

// done hands the row over and empties it for the next.
func (r *tableRow) done() error {
	err := r.emit(r)
	r.buf, r.ends = r.buf[:0], r.ends[:0]
	return err
}

func (r *tableRow) cells() int { return len(r.ends) }

func (r *tableRow) cell(i int) []byte {
	start := 0
	if i > 0 {
		start = r.ends[i-1]
	}
	return r.buf[start:r.ends[i]]
}

// cellWidth is runewidth.StringWidth of a cell, without a copy for the printable ASCII
// nearly every cell is.
func cellWidth(b []byte) int {
	if printableASCII(b) {
		return len(b)
	}
	return runewidth.StringWidth(string(b))
}

// writeRows writes the rows under the columns' titles, padded with spaces, fitting width
// when width > 0: shrinking columns lose what is needed (cutEnd columns first, then
// cutMiddle ones, each in the order given), and their cells are cut with "…" where they are
// too long. When that is not enough, droppable columns are left out; their titles are
// returned. Only the column widths are kept between the two passes over the rows.
func writeRows(w io.Writer, width int, cols []column, rows rowSource) (dropped []string, err error) {
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = runewidth.StringWidth(c.title)
	}
	measure := &tableRow{emit: func(r *tableRow) error {
		for i := range r.cells() {
			widths[i] = max(widths[i], cellWidth(r.cell(i)))
		}
		return nil
	}}
	if err := rows(measure); err != nil {
		return nil, err
	}
	keep := make([]bool, len(cols))
	for i := range keep {
		keep[i] = true
	}
	if width > 0 {
		least := make([]int, len(cols)) // each column at its narrowest
		for i, c := range cols {
			least[i] = widths[i]
			if c.shrink != keepWhole {
				least[i] = min(widths[i], max(c.min, runewidth.StringWidth(c.title), 1))
			}
		}
		narrowest := func() int {
			n := -columnGap
			for i := range cols {
				if keep[i] {
					n += least[i] + columnGap
				}
			}
			return n
		}
		for narrowest() > width {
			next := -1
			for i, c := range cols {
				if keep[i] && c.drop > 0 && (next < 0 || c.drop < cols[next].drop) {
					next = i
				}
			}
			if next < 0 {
				break
			}
			keep[next] = false
			dropped = append(dropped, cols[next].title)
		}
		total := -columnGap
		for i, n := range widths {
			if keep[i] {
				total += n + columnGap
			}
		}
		// Prose gives way first, then paths.
		for _, how := range []truncation{cutEnd, cutMiddle} {
			for i, c := range cols {
				if total <= width || !keep[i] || c.shrink != how {
					continue
				}
				if cut := min(total-width, widths[i]-least[i]); cut > 0 {
					widths[i] -= cut
					total -= cut
				}
			}
		}
	}
	var line []byte
	write := &tableRow{emit: func(r *tableRow) error {
		line = line[:0]
		for i := range r.cells() {
			if !keep[i] {
				continue
			}
			cell, cw := r.cell(i), 0
			if cw = cellWidth(cell); cw > widths[i] && cols[i].shrink != keepWhole {
				fitted := fitCell(string(cell), widths[i], cols[i].shrink)
				line, cw = append(line, fitted...), runewidth.StringWidth(fitted)
			} else {
				line = append(line, cell...)
			}
			for range widths[i] - cw + columnGap {
				line = append(line, ' ')
			}
		}
		line = append(bytes.TrimRight(line, " "), '\n')
		_, err := w.Write(line)
		return err
	}}
	for _, c := range cols {
		write.raw(c.title)
	}
	if err := write.done(); err != nil {
		return dropped, err
	}
	return dropped, rows(write)
}

// writeAligned writes the titles and rows as text/tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
// writes them with a tab after each cell but the last: every column but the last padded to
// its widest cell, counted in runes, and two spaces. Unlike a tabwriter it holds no row:
// the rows are measured in one pass and written in another.
func writeAligned(w io.Writer, titles []string, rows rowSource) error {
	widths := make([]int, len(titles))
	for i, t := range titles {
		widths[i] = utf8.RuneCountInString(t)
	}
	measure := &tableRow{emit: func(r *tableRow) error {
		for i := range r.cells() {
			widths[i] = max(widths[i], utf8.RuneCount(r.cell(i)))
		}
		return nil
	}}
	if err := rows(measure); err != nil {
		return err
	}
	var line []byte
	write := &tableRow{emit: func(r *tableRow) error {
		line = line[:0]
		for i := range r.cells() {
			cell := r.cell(i)
			line = append(line, cell...)
			if i < r.cells()-1 {
				for range widths[i] - utf8.RuneCount(cell) + columnGap {
					line = append(line, ' ')
				}
			}
		}
		_, err := w.Write(append(line, '\n'))
		return err
	}}
	for _, t := range titles {
		write.raw(t)
	}
	if err := write.done(); err != nil {
		return err
	}
	return rows(write)
}

func fitCell(s string, width int, how truncation) string {
	if how == keepWhole || runewidth.StringWidth(s) <= width {
		return s
	}
	if how == cutEnd {
		if tail := runewidth.StringWidth("…"); printableASCII(s) && width >= tail {
			return s[:width-tail] + "…" // what runewidth.Truncate gives, without its rune by rune pass
		}
		return runewidth.Truncate(s, width, "…")
	}
	return truncateMiddle(s, width)
}

// truncateMiddle shortens s to width columns by replacing its middle with "…":
// "encoder.layers.encoder_layer_11.mlp.0.weight" at 30 is "encoder.layers.e…mlp.0.weight".
func truncateMiddle(s string, width int) string {
	if runewidth.StringWidth(s) <= width {
		return s
	}
	if width <= 1 {
		return runewidth.Truncate(s, width, "")
	}
	tailWidth := (width - 1) / 2
	headWidth := width - 1 - tailWidth
	if printableASCII(s) { // a column per byte
		return s[:headWidth] + "…" + s[len(s)-tailWidth:]
	}
	runes := []rune(s)
	var head, tail []rune
	used := 0
	for _, r := range runes {
		rw := runewidth.RuneWidth(r)
		if used+rw > headWidth {
			break
		}
		head = append(head, r)
		used += rw
	}
	used = 0
	for i := len(runes) - 1; i >= 0; i-- {
		rw := runewidth.RuneWidth(runes[i])
		if used+rw > tailWidth {
			break
		}
		tail = append([]rune{runes[i]}, tail...)
		used += rw
	}
	return string(head) + "…" + string(tail)
}

// wordWrapper writes words separated by spaces in lines of at most width columns (a word
// longer than that gets a line of its own); continued lines end in " \\" and the next starts
// with indent, so the result pastes into a shell as one command. Only the line being filled
// is held.
type wordWrapper struct {
	w      io.Writer
	width  int
	indent string
	line   []byte
	cols   int // the line's width
	err    error
}

// word adds a word: a, or a and b joined by a space when b is not "".
func (ww *wordWrapper) word(a, b string) {
	cols := runewidth.StringWidth(a)
	if b != "" {
		cols += 1 + runewidth.StringWidth(b)
	}
	switch {
	case len(ww.line) == 0:
	case ww.cols+1+cols+2 > ww.width:
		ww.line = append(ww.line, " \\\n"...)
		if _, err := ww.w.Write(ww.line); err != nil && ww.err == nil {
			ww.err = err
		}
		ww.line, ww.cols = append(ww.line[:0], ww.indent...), runewidth.StringWidth(ww.indent)
	default:
		ww.line, ww.cols = append(ww.line, ' '), ww.cols+1
	}
	ww.line = append(ww.line, a...)
	if b != "" {
		ww.line = append(append(ww.line, ' '), b...)
	}
	ww.cols += cols
}

// end writes the last line, without a newline.
func (ww *wordWrapper) end() error {
	if _, err := ww.w.Write(ww.line); err != nil && ww.err == nil {
		ww.err = err
	}
	return ww.err
}

// wrapText fills prose into lines of at most width columns (no limit when width <= 0 keeps
// the limit at commandWidth, so paragraphs stay readable in a pipe too).
func wrapText(text string, width int) string {
	if width <= 0 || width > commandWidth {
		width = commandWidth
	}
	var lines []string
	cur := ""
	for _, w := range strings.Fields(text) {
		if cur != "" && runewidth.StringWidth(cur)+1+runewidth.StringWidth(w) > width {
			lines = append(lines, cur)
			cur = w
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	return strings.Join(append(lines, cur), "\n")
}
