package rewrite

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Layer names in specs.
//
//	classifier.0          the module classifier.0 in every state_dict of the checkpoint
//	model/classifier.0    ... only in the state_dict at key "model" (keys joined by "/")
//	/classifier.0         ... only in the checkpoint's top-level state_dict
//	.                     the weight at the root of a state_dict ("weight", "bias"), as in
//	                      a bare nn.Linear(...).state_dict()
//	head/.  tail/fc/.     the root weight of the dict at key "head", at keys "tail", "fc"
//
// '*' matches any run of characters within one name. A backslash takes the next character
// literally (\* \/ \= \\ \. and a space), and \xHH stands for the byte HH, so that any key
// can be written: "odd keys/a\*b" is module "a*b" in the dict at key "odd keys".

// layerName is a parsed spec name: the patterns of the dict path (nil: any state_dict) and
// of the module. A pattern is a list of literal runs separated by '*' wildcards.
type layerName struct {
	qualified bool
	dict      []pattern
	module    pattern
}

type pattern []string // literal parts; a '*' sits between each two

func (p pattern) isGlob() bool { return len(p) > 1 }

// literal is the name a pattern without wildcards stands for.
func (p pattern) literal() string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

func (p pattern) match(name string) bool {
	if len(p) == 1 {
		return p[0] == name
	}
	if !strings.HasPrefix(name, p[0]) {
		return false
	}
	name = name[len(p[0]):]
	last := p[len(p)-1]
	for _, part := range p[1 : len(p)-1] {
		i := strings.Index(name, part)
		if i < 0 {
			return false
		}
		name = name[i+len(part):]
	}
	return len(name) >= len(last) && strings.HasSuffix(name, last)
}

// parseLayerName reads a spec's name as written.
func parseLayerName(s string) (layerName, error) {
	var parts []pattern
	cur := pattern{""}
	literalDot := false // the module was written "\." rather than "."
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return layerName{}, fmt.Errorf("name ends in a lone backslash")
			}
			i++
			switch s[i] {
			case 'x':
				if i+3 > len(s) {
					return layerName{}, fmt.Errorf(`\x needs two hex digits`)
				}
				b, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return layerName{}, fmt.Errorf(`\x needs two hex digits`)
				}
				cur[len(cur)-1] += string([]byte{byte(b)})
				i += 2
			case '.':
				cur[len(cur)-1] += "."
				literalDot = true
			default:
				cur[len(cur)-1] += s[i : i+1]
			}
		case '*':
			cur = append(cur, "")
		case '/':
			parts = append(parts, cur)
			cur = pattern{""}
			literalDot = false
		default:
			cur[len(cur)-1] += s[i : i+1]
		}
	}
	parts = append(parts, cur)
	n := layerName{module: parts[len(parts)-1]}
	if len(n.module) == 1 && n.module[0] == "" {
		return layerName{}, fmt.Errorf("empty module name (write . for the weight at a dict's root)")
	}
	if len(n.module) == 1 && n.module[0] == "." && !literalDot {
		n.module = pattern{""} // the dict's root
	}
	if len(parts) > 1 {
		n.qualified = true
		n.dict = parts[:len(parts)-1]
		if len(n.dict) == 1 && len(n.dict[0]) == 1 && n.dict[0][0] == "" {
			n.dict = nil // "/name": the top-level dict
		}
	}
	return n, nil
}

// matches reports whether the module of a state_dict at dict is selected.
func (n layerName) matches(dict checkpoint.Path, module string) bool {
	if !n.module.match(module) {
		return false
	}
	if !n.qualified {
		return true
	}
	if len(dict) != len(n.dict) {
		return false
	}
	for i, p := range n.dict {
		if !p.match(dict[i]) {
			return false
		}
	}
	return true
}

func (n layerName) isGlob() bool {
	if n.module.isGlob() {
		return true
	}
	for _, p := range n.dict {
		if p.isGlob() {
			return true
		}
	}
	return false
}

// LayerSpecName writes the spec name that selects module in the state_dict at dict and
// nowhere else: qualified by the dict's path, with every character that means something in
// a spec escaped.
func LayerSpecName(dict checkpoint.Path, module string) string {
	var b strings.Builder
	if len(dict) == 0 {
		b.WriteByte('/')
	}
	for _, k := range dict {
		b.WriteString(escapeName(k))
		b.WriteByte('/')
	}
	b.WriteString(moduleName(module))
	return b.String()
}

// plainName reports whether escapeName leaves s as it is: printable ASCII holding none of
// the characters a spec name gives a meaning to, and no space at either end.
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '\\' || c == '*' || c == '/' || c == '=' {
			return false
		}
	}
	return s == "" || s[0] != ' ' && s[len(s)-1] != ' '
}

// moduleName is a module name as a spec writes it unqualified: "." for the root.
func moduleName(module string) string {
	switch module {
	case "":
		return "."
	case ".":
		return `\.`
	}
	return escapeName(module)
}

// escapeName escapes what a spec name gives a meaning to, and bytes that are not
// printable text.
func escapeName(s string) string {
	if plainName(s) {
		return s // nearly every name: no copy
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\' || r == '*' || r == '/' || r == '=':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == ' ' && (i == 0 || i+size == len(s)):
			b.WriteString(`\ `) // kept from trimming
		case !unicode.IsPrint(r) && r != ' ':
			for _, c := range []byte(s[i : i+size]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
