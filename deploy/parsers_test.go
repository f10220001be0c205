package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// unitEntry is one Key=Value line of a systemd unit file.
type unitEntry struct {
	Section, Key, Value string
	Line                int
}

// parseUnit reads a systemd unit file: [Section] headers, Key=Value lines,
// comments starting with # or ;, and lines continued with a trailing
// backslash (joined with a space, as systemd does).
func parseUnit(text string) ([]unitEntry, error) {
	var (
		entries []unitEntry
		section string
		pending *unitEntry // an entry whose value continues on the next line
	)
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if pending != nil {
			if strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
				continue // systemd skips comments inside a continued value
			}
			more, cont := strings.CutSuffix(line, `\`)
			pending.Value += " " + strings.TrimSpace(more)
			if !cont {
				entries = append(entries, *pending)
				pending = nil
			}
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "["):
			name, ok := strings.CutSuffix(line, "]")
			name = strings.TrimPrefix(name, "[")
			if !ok || name == "" || strings.ContainsAny(name, "[]") {
				return nil, fmt.Errorf("line %d: %q is not a [Section] header", i+1, line)
			}
			section = name
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsFunc(key, unicode.IsSpace) {
			return nil, fmt.Errorf("line %d: %q is neither a [Section], a comment nor Key=Value", i+1, line)
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: %s= comes before any [Section] header", i+1, key)
		}
		e := unitEntry{Section: section, Key: key, Value: strings.TrimSpace(value), Line: i + 1}
		if v, cont := strings.CutSuffix(e.Value, `\`); cont {
			e.Value = strings.TrimSpace(v)
			pending = &e
			continue
		}
		entries = append(entries, e)
	}
	if pending != nil {
		// A backslash on the last line continues into nothing; systemd
		// takes the value as it is.
		entries = append(entries, *pending)
	}
	return entries, nil
}

// unitValues returns the values of every Key= line of section, in order.
func unitValues(entries []unitEntry, section, key string) []string {
	var values []string
	for _, e := range entries {
		if e.Section == section && e.Key == key {
			values = append(values, e.Value)
		}
	}
	return values
}

// instruction is one Dockerfile instruction.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, COPY, ...
	Args string // everything after the instruction, continuation lines joined with a space
	Line int    // the line it starts on
}

// parseDockerfile reads a Dockerfile with the default escape character:
// comment lines (also inside continued instructions) are skipped, and a
// trailing backslash continues an instruction on the next line.
func parseDockerfile(text string) ([]instruction, error) {
	var (
		out     []instruction
		pending *instruction
	)
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") {
			// Parser directives can only come before the first instruction.
			if len(out) == 0 && pending == nil {
				if d, ok := strings.CutPrefix(line, "#"); ok && strings.HasPrefix(strings.ToLower(strings.TrimSpace(d)), "escape=") {
					return nil, fmt.Errorf("line %d: an escape directive is not supported here; the examples use the default backslash", i+1)
				}
			}
			continue
		}
		if line == "" {
			continue // also inside a continuation, as Docker allows
		}
		body, cont := strings.CutSuffix(line, `\`)
		body = strings.TrimSpace(body)
		if pending != nil {
			pending.Args = strings.TrimSpace(pending.Args + " " + body)
		} else {
			cmd, args, _ := strings.Cut(body, " ")
			if cmd == "" || strings.ContainsFunc(cmd, func(r rune) bool { return !unicode.IsLetter(r) }) {
				return nil, fmt.Errorf("line %d: %q is not a Dockerfile instruction", i+1, cmd)
			}
			pending = &instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: i + 1}
		}
		if !cont {
			out = append(out, *pending)
			pending = nil
		}
	}
	if pending != nil {
		out = append(out, *pending)
	}
	return out, nil
}

// dockerFlags splits the leading --name=value options off an instruction's
// arguments (COPY --from=build, HEALTHCHECK --interval=30s).
func dockerFlags(args string) (flags map[string]string, rest string) {
	flags = map[string]string{}
	rest = strings.TrimSpace(args)
	for strings.HasPrefix(rest, "--") {
		word, after, _ := strings.Cut(rest, " ")
		name, value, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
		flags[name] = value
		rest = strings.TrimSpace(after)
	}
	return flags, rest
}

// execForm decodes the JSON array form of CMD, ENTRYPOINT and HEALTHCHECK
// CMD (["cloudcloud", "serve"]); ok is false for the shell form.
func execForm(args string) (argv []string, ok bool) {
	args = strings.TrimSpace(args)
	if !strings.HasPrefix(args, "[") {
		return nil, false
	}
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		return nil, false
	}
	return argv, true
}

// nginxDirective is one directive of an nginx configuration, with its
// block's directives when it has one (server { ... }).
type nginxDirective struct {
	Name     string
	Args     []string
	HasBlock bool
	Block    []*nginxDirective
	Line     int
}

// nginxToken is a word or one of ; { } with the line it is on.
type nginxToken struct {
	text   string
	quoted bool // a quoted word is never one of ; { }
	line   int
}

// tokenizeNginx splits an nginx configuration into words and the
// punctuation ; { }, dropping comments and unquoting "..." and '...'.
func tokenizeNginx(text string) ([]nginxToken, error) {
	var tokens []nginxToken
	line := 1
	rs := []rune(text)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == '\n':
			line++
			i++
		case unicode.IsSpace(r):
			i++
		case r == '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case r == ';' || r == '{' || r == '}':
			tokens = append(tokens, nginxToken{text: string(r), line: line})
			i++
		case r == '"' || r == '\'':
			start := line
			var b strings.Builder
			i++
			for {
				if i >= len(rs) {
					return nil, fmt.Errorf("line %d: the quote %c is never closed", start, r)
				}
				c := rs[i]
				if c == r {
					i++
					break
				}
				if c == '\\' && i+1 < len(rs) {
					// nginx keeps the backslash except before a quote or another backslash.
					if next := rs[i+1]; next == r || next == '\\' {
						c = next
						i++
					}
				}
				if c == '\n' {
					line++
				}
				b.WriteRune(c)
				i++
			}
			tokens = append(tokens, nginxToken{text: b.String(), quoted: true, line: start})
		default:
			var b strings.Builder
			for i < len(rs) {
				c := rs[i]
				if unicode.IsSpace(c) || c == ';' || c == '{' || c == '}' {
					break
				}
				// ${name} is a variable inside a word; its braces do not open a block.
				if c == '$' && i+1 < len(rs) && rs[i+1] == '{' {
					end := i + 2
					for end < len(rs) && rs[end] != '}' {
						end++
					}
					if end == len(rs) {
						return nil, fmt.Errorf("line %d: the variable ${ is never closed with }", line)
					}
					b.WriteString(string(rs[i : end+1]))
					i = end + 1
					continue
				}
				b.WriteRune(c)
				i++
			}
			tokens = append(tokens, nginxToken{text: b.String(), line: line})
		}
	}
	return tokens, nil
}

// parseNginx reads an nginx configuration into its directives. It checks
// the structure (every directive ends with ; or a block, braces balance),
// not what the directives mean: that is nginx -t's job.
func parseNginx(text string) ([]*nginxDirective, error) {
	tokens, err := tokenizeNginx(text)
	if err != nil {
		return nil, err
	}
	top := &nginxDirective{HasBlock: true}
	stack := []*nginxDirective{top}
	var words []nginxToken
	for _, t := range tokens {
		punct := !t.quoted && (t.text == ";" || t.text == "{" || t.text == "}")
		if !punct {
			words = append(words, t)
			continue
		}
		parent := stack[len(stack)-1]
		switch t.text {
		case ";", "{":
			if len(words) == 0 {
				return nil, fmt.Errorf("line %d: unexpected %q with no directive before it", t.line, t.text)
			}
			d := &nginxDirective{Name: words[0].text, Line: words[0].line}
			for _, w := range words[1:] {
				d.Args = append(d.Args, w.text)
			}
			parent.Block = append(parent.Block, d)
			words = nil
			if t.text == "{" {
				d.HasBlock = true
				stack = append(stack, d)
			}
		case "}":
			if len(words) > 0 {
				return nil, fmt.Errorf("line %d: directive %q is missing its closing ;", words[0].line, words[0].text)
			}
			if len(stack) == 1 {
				return nil, fmt.Errorf("line %d: unexpected } with no block open", t.line)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(words) > 0 {
		return nil, fmt.Errorf("line %d: directive %q is missing its closing ;", words[0].line, words[0].text)
	}
	if len(stack) > 1 {
		open := stack[len(stack)-1]
		return nil, fmt.Errorf("line %d: the block of %q is never closed with }", open.Line, open.Name)
	}
	return top.Block, nil
}

// nginxChildren returns the directives called name directly inside ds.
func nginxChildren(ds []*nginxDirective, name string) []*nginxDirective {
	var out []*nginxDirective
	for _, d := range ds {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// nginxDuration reads an nginx time value: "60", "90s", "1h", "1m30s",
// "500ms". A number without a unit is seconds.
func nginxDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		d      time.Duration
	}{ // "ms" before "m" so that the longer suffix wins
		{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour},
		{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"M", 30 * 24 * time.Hour}, {"y", 365 * 24 * time.Hour},
	}
	rest := strings.ReplaceAll(s, " ", "")
	if rest == "" {
		return 0, errors.New("empty time value; write e.g. 60s or 1h")
	}
	var total time.Duration
	for rest != "" {
		digits := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if digits == 0 {
			return 0, fmt.Errorf("time value %q: expected a number at %q", s, rest)
		}
		if digits < 0 {
			digits = len(rest)
		}
		n, err := strconv.ParseInt(rest[:digits], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("time value %q: %q is not a number nginx takes", s, rest[:digits])
		}
		rest = rest[digits:]
		unit := time.Second
		if rest != "" {
			found := false
			for _, u := range units {
				if after, ok := strings.CutPrefix(rest, u.suffix); ok {
					unit, rest, found = u.d, after, true
					break
				}
			}
			if !found {
				return 0, fmt.Errorf("time value %q: unknown unit at %q; nginx takes ms, s, m, h, d, w, M, y", s, rest)
			}
		}
		if time.Duration(n) > (math.MaxInt64-total)/unit {
			return 0, fmt.Errorf("time value %q is too long", s)
		}
		total += time.Duration(n) * unit
	}
	return total, nil
}

// nginxSize reads an nginx size value: "1024", "8k", "8m", "1g".
func nginxSize(s string) (int64, error) {
	num, mult := s, int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			num, mult = s[:len(s)-1], 1<<10
		case 'm', 'M':
			num, mult = s[:len(s)-1], 1<<20
		case 'g', 'G':
			num, mult = s[:len(s)-1], 1<<30
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: write a number with an optional k, m or g, e.g. 8m", s)
	}
	return n * mult, nil
}

// yamlNode is a value of a YAML document: a scalar (always a string), a
// mapping (its keys in order) or a sequence.
type yamlNode struct {
	Kind   yamlKind
	Scalar string
	Keys   []string
	Map    map[string]*yamlNode
	List   []*yamlNode
	Line   int
}

type yamlKind int

const (
	yamlScalar yamlKind = iota
	yamlMap
	yamlList
)

// get returns the value at a path of mapping keys, or nil.
func (n *yamlNode) get(path ...string) *yamlNode {
	for _, k := range path {
		if n == nil || n.Kind != yamlMap {
			return nil
		}
		n = n.Map[k]
	}
	return n
}

// strings returns a sequence of scalars, or a lone scalar as one string.
func (n *yamlNode) strings() []string {
	switch {
	case n == nil:
		return nil
	case n.Kind == yamlScalar:
		return []string{n.Scalar}
	case n.Kind == yamlList:
		var out []string
		for _, item := range n.List {
			if item.Kind == yamlScalar {
				out = append(out, item.Scalar)
			}
		}
		return out
	}
	return nil
}

// yamlLine is a line of YAML without its comment: its indentation, the
// rest, and its number from 1.
type yamlLine struct {
	indent int
	text   string
	num    int
}

// parseYAML reads the block-style YAML that Compose files are written in:
// nested mappings and "- " sequences by indentation, plain, "double" and
// 'single' quoted scalars, [flow, sequences] of scalars and # comments. It
// refuses what it does not understand (anchors, tags, block scalars, flow
// mappings, tabs, duplicate keys) rather than reading it wrongly.
func parseYAML(text string) (*yamlNode, error) {
	var lines []yamlLine
	for i, raw := range strings.Split(text, "\n") {
		raw = strings.TrimRight(raw, " \r")
		content := strings.TrimLeft(raw, " ")
		if strings.HasPrefix(content, "\t") {
			return nil, fmt.Errorf("line %d: indent with spaces, not tabs", i+1)
		}
		content, err := stripYAMLComment(content)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if content == "" || content == "---" {
			continue
		}
		lines = append(lines, yamlLine{indent: len(raw) - len(strings.TrimLeft(raw, " ")), text: content, num: i + 1})
	}
	if len(lines) == 0 {
		return &yamlNode{Kind: yamlMap, Map: map[string]*yamlNode{}, Line: 1}, nil
	}
	n, next, err := parseYAMLBlock(lines, 0, lines[0].indent)
	if err != nil {
		return nil, err
	}
	if next < len(lines) {
		return nil, fmt.Errorf("line %d: indented less than the line it belongs to, or more than the first line", lines[next].num)
	}
	return n, nil
}

// stripYAMLComment drops a # comment: at the start, or after a space and
// outside quotes.
func stripYAMLComment(s string) (string, error) {
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			if i == 0 || strings.ContainsRune(" [,:-", rune(s[i-1])) {
				quote = r
			}
		case r == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " "), nil
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("the quote %c is never closed", quote)
	}
	return s, nil
}

// parseYAMLBlock reads the mapping or sequence whose lines start at
// lines[i] with the given indentation, and returns the index after it.
func parseYAMLBlock(lines []yamlLine, i, indent int) (*yamlNode, int, error) {
	first := lines[i]
	if first.text == "-" || strings.HasPrefix(first.text, "- ") {
		n := &yamlNode{Kind: yamlList, Line: first.num}
		for i < len(lines) && lines[i].indent == indent && (lines[i].text == "-" || strings.HasPrefix(lines[i].text, "- ")) {
			l := lines[i]
			rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
			var item *yamlNode
			var err error
			if rest == "" {
				if i+1 >= len(lines) || lines[i+1].indent <= indent {
					return nil, 0, fmt.Errorf("line %d: an empty sequence item", l.num)
				}
				item, i, err = parseYAMLBlock(lines, i+1, lines[i+1].indent)
			} else {
				// The item's content is a block of its own, starting at
				// the column after "- ".
				sub := slices.Clone(lines[i:])
				sub[0] = yamlLine{indent: indent + len(l.text) - len(rest), text: rest, num: l.num}
				var used int
				item, used, err = parseYAMLBlock(sub, 0, sub[0].indent)
				i += used
			}
			if err != nil {
				return nil, 0, err
			}
			n.List = append(n.List, item)
		}
		return n, i, nil
	}
	_, _, isKey, err := splitYAMLKey(first.text)
	if err != nil {
		return nil, 0, fmt.Errorf("line %d: %w", first.num, err)
	}
	if !isKey {
		v, err := yamlScalarValue(first.text, first.num)
		if err != nil {
			return nil, 0, err
		}
		if i+1 < len(lines) && lines[i+1].indent > indent {
			return nil, 0, fmt.Errorf("line %d: a plain value cannot have indented lines under it; is a \":\" missing on line %d?", lines[i+1].num, first.num)
		}
		return v, i + 1, nil
	}
	n := &yamlNode{Kind: yamlMap, Map: map[string]*yamlNode{}, Line: first.num}
	for i < len(lines) && lines[i].indent == indent {
		l := lines[i]
		key, rest, isKey, err := splitYAMLKey(l.text)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", l.num, err)
		}
		if !isKey {
			return nil, 0, fmt.Errorf("line %d: %q is not \"key: value\" like the lines of its mapping", l.num, l.text)
		}
		if _, dup := n.Map[key]; dup {
			return nil, 0, fmt.Errorf("line %d: key %q is already set in this mapping", l.num, key)
		}
		var v *yamlNode
		switch {
		case rest != "":
			if v, err = yamlScalarValue(rest, l.num); err != nil {
				return nil, 0, err
			}
			i++
		case i+1 < len(lines) && (lines[i+1].indent > indent ||
			lines[i+1].indent == indent && (lines[i+1].text == "-" || strings.HasPrefix(lines[i+1].text, "- "))):
			if v, i, err = parseYAMLBlock(lines, i+1, lines[i+1].indent); err != nil {
				return nil, 0, err
			}
		default: // "key:" alone is null, which Compose reads as empty
			v = &yamlNode{Kind: yamlScalar, Line: l.num}
			i++
		}
		n.Keys = append(n.Keys, key)
		n.Map[key] = v
	}
	if i < len(lines) && lines[i].indent > indent {
		return nil, 0, fmt.Errorf("line %d: indented more than the mapping it is in", lines[i].num)
	}
	return n, i, nil
}

// splitYAMLKey splits "key: value" (or "key:") at the first ": " outside
// quotes; a line without one is no key.
func splitYAMLKey(s string) (key, rest string, ok bool, err error) {
	if s[0] == '"' || s[0] == '\'' {
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return "", "", false, fmt.Errorf("the quote %c is never closed", s[0])
		}
		after := s[end+2:]
		if after != ":" && !strings.HasPrefix(after, ": ") {
			return "", "", false, nil
		}
		return s[1 : end+1], strings.TrimSpace(strings.TrimPrefix(after, ":")), true, nil
	}
	if s[0] == '[' {
		return "", "", false, nil
	}
	if k, v, found := strings.Cut(s, ": "); found {
		return strings.TrimSpace(k), strings.TrimSpace(v), true, nil
	}
	if k, found := strings.CutSuffix(s, ":"); found {
		return strings.TrimSpace(k), "", true, nil
	}
	return "", "", false, nil
}

// yamlScalarValue reads a value written on one line: a scalar or a flow
// sequence of scalars.
func yamlScalarValue(s string, line int) (*yamlNode, error) {
	switch s[0] {
	case '&', '*', '!', '|', '>', '{', '%', '@', '`':
		return nil, fmt.Errorf("line %d: %q: anchors, tags, block scalars and flow mappings are not used in these files; write the value out", line, s)
	case '[':
		if !strings.HasSuffix(s, "]") {
			return nil, fmt.Errorf("line %d: the sequence %q must close with ] on the same line", line, s)
		}
		n := &yamlNode{Kind: yamlList, Line: line}
		inner := strings.TrimSpace(s[1 : len(s)-1])
		for inner != "" {
			var item string
			if inner[0] == '"' || inner[0] == '\'' {
				end := strings.IndexByte(inner[1:], inner[0])
				if end < 0 {
					return nil, fmt.Errorf("line %d: the quote %c is never closed", line, inner[0])
				}
				item, inner = inner[:end+2], strings.TrimSpace(inner[end+2:])
			} else {
				end := strings.IndexByte(inner, ',')
				if end < 0 {
					end = len(inner)
				}
				item, inner = strings.TrimSpace(inner[:end]), inner[end:]
			}
			if item == "" || strings.ContainsAny(item[:1], "[{") {
				return nil, fmt.Errorf("line %d: %q: a flow sequence holds plain or quoted scalars only", line, s)
			}
			v, err := yamlScalarValue(item, line)
			if err != nil {
				return nil, err
			}
			n.List = append(n.List, v)
			if inner != "" {
				if inner[0] != ',' {
					return nil, fmt.Errorf("line %d: %q: items of a flow sequence are separated by commas", line, s)
				}
				inner = strings.TrimSpace(inner[1:])
			}
		}
		return n, nil
	case '"':
		v, err := strconv.Unquote(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s is not a double-quoted string: %w", line, s, err)
		}
		return &yamlNode{Kind: yamlScalar, Scalar: v, Line: line}, nil
	case '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, fmt.Errorf("line %d: %s is not a single-quoted string", line, s)
		}
		return &yamlNode{Kind: yamlScalar, Scalar: strings.ReplaceAll(s[1:len(s)-1], "''", "'"), Line: line}, nil
	}
	return &yamlNode{Kind: yamlScalar, Scalar: s, Line: line}, nil
}
