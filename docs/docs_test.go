package docs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mirrors pairs each file of this directory with the contract it mirrors.
var mirrors = []struct{ doc, contract string }{
	{"protocol.md", "PROTOCOL.md"},
	{"api.md", "API.md"},
	{"mqtt.md", "MQTT.md"},
	{"cluster.md", "CLUSTER.md"},
}

// sharedDir is where the contracts live when the repository is checked out
// next to them: ../shared from the repository root.
var sharedDir = filepath.Join("..", "..", "shared")

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// tableRows returns every line of a Markdown table.
func tableRows(md string) []string {
	var rows []string
	for line := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "|") {
			rows = append(rows, line)
		}
	}
	return rows
}

// codeBlocks returns every fenced code block, fences included, so the info
// string (```json) must match too.
func codeBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for line := range strings.SplitSeq(md, "\n") {
		fence := strings.HasPrefix(line, "```")
		switch {
		case !in && fence:
			in, cur = true, []string{line}
		case in && fence:
			blocks = append(blocks, strings.Join(append(cur, line), "\n"))
			in = false
		case in:
			cur = append(cur, line)
		}
	}
	if in {
		blocks = append(blocks, strings.Join(cur, "\n")) // unclosed: compared as is
	}
	return blocks
}

func TestMirrorsExistAndNameTheirContract(t *testing.T) {
	for _, m := range mirrors {
		doc := read(t, m.doc)
		first, _, _ := strings.Cut(doc, "\n")
		if want := "`../shared/" + m.contract + "`"; !strings.Contains(first, want) {
			t.Errorf("%s: the first line should say it mirrors %s, got %q", m.doc, want, first)
		}
	}
}

func TestMirrorsKeepEveryTableRowAndExample(t *testing.T) {
	if _, err := os.Stat(sharedDir); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("the contracts are not here (%s is missing: this checkout is not next to ../shared); nothing to compare docs/ with", sharedDir)
	}
	for _, m := range mirrors {
		t.Run(m.doc, func(t *testing.T) {
			contract := read(t, filepath.Join(sharedDir, m.contract))
			doc := read(t, m.doc)
			lines := make(map[string]bool)
			for line := range strings.SplitSeq(doc, "\n") {
				lines[line] = true
			}
			rows, blocks := tableRows(contract), codeBlocks(contract)
			if len(rows)+len(blocks) == 0 {
				t.Fatalf("../shared/%s has no table or code block; is it the right file?", m.contract)
			}
			for _, row := range rows {
				if !lines[row] {
					t.Errorf("docs/%s lacks this table row of ../shared/%s; copy it over unchanged:\n%s", m.doc, m.contract, row)
				}
			}
			for _, block := range blocks {
				if !strings.Contains(doc, block) {
					t.Errorf("docs/%s lacks this code block of ../shared/%s; copy it over unchanged:\n%s", m.doc, m.contract, block)
				}
			}
		})
	}
}

var (
	// inlineLink is [text](target) or [text](target "title"); images too.
	inlineLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// refLink is a reference definition: [label]: target
	refLink  = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	codeSpan = regexp.MustCompile("`[^`\n]*`")
	scheme   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// links returns the link targets of md outside code blocks and code spans,
// where `[cc:2:...](...)` would be text, not a link.
func links(md string) []string {
	var prose []string
	in := false
	for line := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in {
			prose = append(prose, codeSpan.ReplaceAllString(line, ""))
		}
	}
	text := strings.Join(prose, "\n")
	var targets []string
	for _, re := range []*regexp.Regexp{inlineLink, refLink} {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
	}
	return targets
}

func TestLinksResolveInTheRepository(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(root, "README.md")}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, docs...)
	checked := 0
	for _, file := range files {
		name, _ := filepath.Rel(root, file)
		for _, target := range links(read(t, file)) {
			if scheme.MatchString(target) || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "//") {
				continue // a web address or an anchor in the same file
			}
			path, _, _ := strings.Cut(target, "#")
			path, _, _ = strings.Cut(path, "?")
			if strings.HasPrefix(path, "/") {
				t.Errorf("%s links to %s: an absolute path resolves on no one else's machine; link relative to %s", name, target, filepath.Dir(name))
				continue
			}
			abs := filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
			if rel, err := filepath.Rel(root, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				t.Errorf("%s links to %s, outside the repository: it leads nowhere in a clone; link the copy in docs/ instead", name, target)
				continue
			}
			checked++
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links to %s, which does not exist (%v); fix the link or restore the file", name, target, err)
			}
		}
	}
	if checked == 0 {
		t.Error("found no relative link at all in README.md and docs/*.md; the link scanner is broken")
	}
}

// TestLayoutTableMatchesTheTree: the README's layout table names every Go
// package of the module (besides templ's generated one and test-support
// packages inside a listed one) and nothing that is not there.
func TestLayoutTableMatchesTheTree(t *testing.T) {
	readme := read(t, filepath.Join("..", "README.md"))
	start := strings.Index(readme, "## Layout")
	if start < 0 {
		t.Fatal("README.md has no Layout section")
	}
	section := readme[start:]
	if end := strings.Index(section[len("## Layout"):], "\n## "); end >= 0 {
		section = section[:len("## Layout")+end]
	}
	listed := map[string]bool{}
	for _, row := range tableRows(section) {
		if m := regexp.MustCompile("^\\| `([^`]+)` \\|").FindStringSubmatch(row); m != nil {
			listed[m[1]] = true
		}
	}
	if len(listed) == 0 {
		t.Fatal("the Layout table lists no package")
	}
	for pkg := range listed {
		if fi, err := os.Stat(filepath.Join("..", pkg)); err != nil || !fi.IsDir() {
			t.Errorf("the Layout table lists %s, which is not a directory of the tree", pkg)
		}
	}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		for p := dir; p != "."; p = filepath.ToSlash(filepath.Dir(p)) {
			if listed[p] {
				return nil // the package or one it belongs to is listed
			}
		}
		t.Errorf("package %s is not in the README's Layout table", dir)
		return filepath.SkipDir
	})
	if err != nil {
		t.Fatal(err)
	}
}
