package main

import (
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/mattn/go-runewidth"
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

// writeTable writes rows under the columns' titles, padded with spaces, fitting width when
// width > 0: shrinking columns lose what is needed (cutEnd columns first, then cutMiddle
// ones, each in the order given), and their cells are cut with "…" where they are too long.
// When that is not enough, droppable columns are left out; their titles are returned.
func writeTable(w io.Writer, width int, cols []column, rows [][]string) (dropped []string, err error) {
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = runewidth.StringWidth(c.title)
	}
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], runewidth.StringWidth(cell))
		}
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
	var b strings.Builder
	line := func(cells []string) error {
		b.Reset()
		for i, cell := range cells {
			if !keep[i] {
				continue
			}
			cell = fitCell(cell, widths[i], cols[i].shrink)
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", widths[i]-runewidth.StringWidth(cell)+columnGap))
		}
		_, err := io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
		return err
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	if err := line(titles); err != nil {
		return dropped, err
	}
	for _, r := range rows {
		if err := line(r); err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

func fitCell(s string, width int, how truncation) string {
	if how == keepWhole || runewidth.StringWidth(s) <= width {
		return s
	}
	if how == cutEnd {
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
	runes := []rune(s)
	tailWidth := (width - 1) / 2
	headWidth := width - 1 - tailWidth
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

// wrapWords joins words with spaces into lines of at most width columns (a word longer than
// that gets a line of its own); continued lines end in " \" and the next starts with indent,
// so the result pastes into a shell as one command.
func wrapWords(words []string, width int, indent string) string {
	var lines []string
	cur := ""
	for _, w := range words {
		switch {
		case cur == "":
			cur = w
		case runewidth.StringWidth(cur)+1+runewidth.StringWidth(w)+2 > width:
			lines = append(lines, cur+" \\")
			cur = indent + w
		default:
			cur += " " + w
		}
	}
	return strings.Join(append(lines, cur), "\n")
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
