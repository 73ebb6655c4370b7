package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// escapeText makes text taken from a file safe for a terminal: control characters, invalid
// UTF-8 and other non-printable runes are written as Go escapes (\x1b, \a, \x00, \u200b), as
// %q would. Printable text, quotes, backslashes and non-ASCII letters stay as they are. JSON
// output does not use it: encoding/json escapes on its own.
func escapeText(s string) string {
	if printableASCII(s) {
		return s // nearly every name: no copy (tables list 100,000 of them)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r) // '\x1b'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// appendEscaped appends escapeText(s) to b.
func appendEscaped(b []byte, s string) []byte {
	if printableASCII(s) {
		return append(b, s...)
	}
	return append(b, escapeText(s)...)
}

func printableASCII[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// shellQuote quotes a --layer argument for pasting into a POSIX shell when it holds
// anything a shell would interpret.
func shellQuote(s string) string {
	safe := true
	for _, r := range s {
		if !(r >= 0x80 && unicode.IsLetter(r) || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/=:+,@%^", r)) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
