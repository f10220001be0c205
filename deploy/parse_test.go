package deploy

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseUnit(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []unitEntry
		wantErr string
	}{
		{
			name: "sections, comments and spaces around =",
			text: "# comment\n[Unit]\nDescription = a lamp server\n; other comment\n[Service]\nExecStart=/bin/x serve\n",
			want: []unitEntry{
				{Section: "Unit", Key: "Description", Value: "a lamp server", Line: 3},
				{Section: "Service", Key: "ExecStart", Value: "/bin/x serve", Line: 6},
			},
		},
		{
			name: "continued line",
			text: "[Service]\nExecStart=/bin/x \\\n  # skipped\n  -config /etc/x.toml\nUser=x\n",
			want: []unitEntry{
				{Section: "Service", Key: "ExecStart", Value: "/bin/x -config /etc/x.toml", Line: 2},
				{Section: "Service", Key: "User", Value: "x", Line: 5},
			},
		},
		{
			name: "empty value",
			text: "[Service]\nCapabilityBoundingSet=\n",
			want: []unitEntry{{Section: "Service", Key: "CapabilityBoundingSet", Value: "", Line: 2}},
		},
		{name: "key before section", text: "User=x\n", wantErr: "line 1: User= comes before any [Section]"},
		{name: "no equals sign", text: "[Service]\nUser x\n", wantErr: `line 2: "User x" is neither`},
		{name: "broken header", text: "[Service\n", wantErr: `line 1: "[Service" is not a [Section] header`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUnit(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseUnit error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseUnit: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseUnit =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []instruction
		wantErr string
	}{
		{
			name: "continuations and comments inside them",
			text: "# syntax=docker/dockerfile:1\nFROM golang AS build\nRUN a \\\n    # a comment\n    && b\n\ncmd [\"x\"]\n",
			want: []instruction{
				{Cmd: "FROM", Args: "golang AS build", Line: 2},
				{Cmd: "RUN", Args: "a && b", Line: 3},
				{Cmd: "CMD", Args: `["x"]`, Line: 7},
			},
		},
		{name: "escape directive", text: "# escape=`\nFROM x\n", wantErr: "escape directive"},
		{name: "not an instruction", text: "FROM x\n--flag y\n", wantErr: `line 2: "--flag" is not`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDockerfile(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDockerfile error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDockerfile: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseDockerfile =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDockerFlagsAndExecForm(t *testing.T) {
	flags, rest := dockerFlags(`--interval=30s --retries=3 CMD ["/bin/x", "healthcheck"]`)
	if want := map[string]string{"interval": "30s", "retries": "3"}; !reflect.DeepEqual(flags, want) {
		t.Errorf("flags = %v, want %v", flags, want)
	}
	if rest != `CMD ["/bin/x", "healthcheck"]` {
		t.Errorf("rest = %q", rest)
	}
	if argv, ok := execForm(`["/bin/x", "healthcheck"]`); !ok || !reflect.DeepEqual(argv, []string{"/bin/x", "healthcheck"}) {
		t.Errorf("execForm = %q, %v", argv, ok)
	}
	if _, ok := execForm("/bin/x healthcheck"); ok {
		t.Error("execForm took the shell form for the exec form")
	}
}

func TestParseNginx(t *testing.T) {
	text := `map $http_upgrade $c { default upgrade; '' close; }
server {
    listen 443 ssl; # comment
    location = /a { proxy_set_header Connection ""; return 200 "a;b{}"; set $x ${host}x; }
}
`
	got, err := parseNginx(text)
	if err != nil {
		t.Fatalf("parseNginx: %v", err)
	}
	if len(got) != 2 || got[0].Name != "map" || !reflect.DeepEqual(got[0].Args, []string{"$http_upgrade", "$c"}) {
		t.Fatalf("top level = %+v", got)
	}
	if def := got[0].Block; len(def) != 2 || def[0].Name != "default" || def[1].Name != "" {
		t.Errorf("map entries = %+v", def)
	}
	server := got[1]
	if !server.HasBlock || server.Line != 2 {
		t.Fatalf("server = %+v", server)
	}
	listen := nginxChildren(server.Block, "listen")
	if len(listen) != 1 || !reflect.DeepEqual(listen[0].Args, []string{"443", "ssl"}) || listen[0].Line != 3 {
		t.Errorf("listen = %+v", listen)
	}
	loc := nginxChildren(server.Block, "location")[0]
	if !reflect.DeepEqual(loc.Args, []string{"=", "/a"}) || len(loc.Block) != 3 {
		t.Fatalf("location = %+v", loc)
	}
	if args := loc.Block[0].Args; !reflect.DeepEqual(args, []string{"Connection", ""}) {
		t.Errorf("quoted empty argument = %q", args)
	}
	if args := loc.Block[1].Args; !reflect.DeepEqual(args, []string{"200", "a;b{}"}) {
		t.Errorf("quoted punctuation = %q", args)
	}
	if args := loc.Block[2].Args; !reflect.DeepEqual(args, []string{"$x", "${host}x"}) {
		t.Errorf("${var} = %q", args)
	}

	bad := []struct{ text, wantErr string }{
		{"server {\n listen 80;\n", `line 1: the block of "server" is never closed`},
		{"listen 80\n}", `line 1: directive "listen" is missing its closing ;`},
		{"}\n", "line 1: unexpected }"},
		{"listen 80", `directive "listen" is missing its closing ;`},
		{"return 200 \"abc;\n", "line 1: the quote \" is never closed"},
		{"; listen 80;", `line 1: unexpected ";"`},
		{"set $a ${b;", "line 1: the variable ${ is never closed"},
	}
	for _, b := range bad {
		if _, err := parseNginx(b.text); err == nil || !strings.Contains(err.Error(), b.wantErr) {
			t.Errorf("parseNginx(%q) error = %v, want it to contain %q", b.text, err, b.wantErr)
		}
	}
}

func TestNginxValues(t *testing.T) {
	durations := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"60", 60 * time.Second, false},
		{"90s", 90 * time.Second, false},
		{"1h", time.Hour, false},
		{"1m30s", 90 * time.Second, false},
		{"1h 30m", 90 * time.Minute, false},
		{"500ms", 500 * time.Millisecond, false},
		{"2d", 48 * time.Hour, false},
		{"", 0, true},
		{"h", 0, true},
		{"10x", 0, true},
		{"99999999999y", 0, true},
		{"2000000000y2000000000y2000000000y", 0, true},
	}
	for _, d := range durations {
		got, err := nginxDuration(d.in)
		if (err != nil) != d.wantErr || got != d.want {
			t.Errorf("nginxDuration(%q) = %v, %v; want %v, error %v", d.in, got, err, d.want, d.wantErr)
		}
	}
	sizes := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1024", 1024, false},
		{"8k", 8 << 10, false},
		{"8m", 8 << 20, false},
		{"8M", 8 << 20, false},
		{"1g", 1 << 30, false},
		{"", 0, true},
		{"m", 0, true},
		{"-1", 0, true},
		{"8 m", 0, true},
		{"99999999999999g", 0, true},
	}
	for _, s := range sizes {
		got, err := nginxSize(s.in)
		if (err != nil) != s.wantErr || got != s.want {
			t.Errorf("nginxSize(%q) = %v, %v; want %v, error %v", s.in, got, err, s.want, s.wantErr)
		}
	}
}

// seed adds a file of this repository to a fuzz corpus, if it is there.
func seed(f *testing.F, path string) {
	if b, err := os.ReadFile(path); err == nil {
		f.Add(string(b))
	}
}

func FuzzParseUnit(f *testing.F) {
	seed(f, "cloudcloud.service")
	f.Add("[Service]\nExecStart=/x \\\n")
	f.Add("[]\n=\n[a]b\n")
	f.Fuzz(func(t *testing.T, text string) {
		entries, err := parseUnit(text)
		if err == nil {
			for _, e := range entries {
				if e.Section == "" || e.Key == "" || e.Line < 1 {
					t.Fatalf("entry without section, key or line: %+v", e)
				}
			}
		}
	})
}

func FuzzParseDockerfile(f *testing.F) {
	seed(f, "../Dockerfile")
	f.Add("FROM x \\\n\\\n# c\nRUN y\n")
	f.Add("HEALTHCHECK --a=b --c CMD [\"x\"")
	f.Fuzz(func(t *testing.T, text string) {
		ins, err := parseDockerfile(text)
		if err != nil {
			return
		}
		for _, in := range ins {
			if in.Cmd == "" || in.Line < 1 {
				t.Fatalf("instruction without name or line: %+v", in)
			}
			flags, rest := dockerFlags(in.Args)
			_, _ = execForm(rest)
			_ = flags
		}
	})
}

func FuzzParseNginx(f *testing.F) {
	seed(f, "nginx.conf")
	f.Add("a ${b} 'c\\'d' \"e\\\\\" { f; } # g\n")
	f.Add("a ${")
	f.Add("x 1h30m 8m 99999999999999999999;")
	f.Fuzz(func(t *testing.T, text string) {
		ds, err := parseNginx(text)
		if err != nil {
			return
		}
		var walk func([]*nginxDirective, int)
		walk = func(ds []*nginxDirective, depth int) {
			if depth > len(text) {
				t.Fatalf("blocks nested deeper than the text is long")
			}
			for _, d := range ds {
				if d.Line < 1 {
					t.Fatalf("directive %q without a line", d.Name)
				}
				for _, a := range d.Args {
					_, _ = nginxDuration(a)
					_, _ = nginxSize(a)
				}
				walk(d.Block, depth+1)
			}
		}
		walk(ds, 0)
	})
}

func TestParseYAML(t *testing.T) {
	doc, err := parseYAML(`# a comment
services:
  a:
    image: "x:1" # trailing comment
    command: ["-js", '-sd', /data]
    environment:
      URL: nats://n:4222
      REF: ${A:?set A}
    ports:
      - "8000:8000"
      - 8080:8080
    ulimits:
      nofile:
        soft: 10
  b:
    build: ../..
    depends_on:
    - a
    items:
      - key: v
        other: w
      -
        nested: x
volumes:
  data:
`)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		got  []string
		want []string
	}{
		{doc.get("services").Keys, []string{"a", "b"}},
		{doc.get("services", "a", "image").strings(), []string{"x:1"}},
		{doc.get("services", "a", "command").strings(), []string{"-js", "-sd", "/data"}},
		{doc.get("services", "a", "environment", "URL").strings(), []string{"nats://n:4222"}},
		{doc.get("services", "a", "environment", "REF").strings(), []string{"${A:?set A}"}},
		{doc.get("services", "a", "ports").strings(), []string{"8000:8000", "8080:8080"}},
		{doc.get("services", "a", "ulimits", "nofile", "soft").strings(), []string{"10"}},
		{doc.get("services", "b", "build").strings(), []string{"../.."}},
		{doc.get("services", "b", "depends_on").strings(), []string{"a"}},
		{doc.get("volumes").Keys, []string{"data"}},
		{doc.get("volumes", "data").strings(), []string{""}},
	}
	for i, c := range checks {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("check %d: got %q, want %q", i, c.got, c.want)
		}
	}
	items := doc.get("services", "b", "items")
	if items == nil || len(items.List) != 2 || items.List[0].get("other").Scalar != "w" || items.List[1].get("nested").Scalar != "x" {
		t.Errorf("a sequence of mappings: %+v", items)
	}
	if n := doc.get("services", "a", "ports"); n.Line != 10 {
		t.Errorf("ports starts on line %d, want 10", n.Line)
	}

	for _, bad := range []struct{ text, wantErr string }{
		{"a:\n\tb: c\n", "line 2: indent with spaces"},
		{"a: 1\na: 2\n", `line 2: key "a" is already set`},
		{"a: &x 1\n", "anchors"},
		{"a: |\n  text\n", "block scalars"},
		{"a: {b: c}\n", "flow mappings"},
		{"a: [b, c\n", "close with ]"},
		{"a: \"open\n", "never closed"},
		{"a:\n  b: 1\n c: 2\n", "line 3"},
		{"a:\n  - 1\n  b: 2\n", "line 3"},
		{"a\n  b: c\n", "is a \":\" missing on line 1"},
		{"a: [b c, ]\n", ""},
	} {
		_, err := parseYAML(bad.text)
		if bad.wantErr == "" {
			if err != nil {
				t.Errorf("parseYAML(%q): %v", bad.text, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), bad.wantErr) {
			t.Errorf("parseYAML(%q) error = %v, want it to mention %q", bad.text, err, bad.wantErr)
		}
	}
}

func FuzzParseYAML(f *testing.F) {
	seed(f, "cluster/compose.yaml")
	f.Add("a:\n  - b: 'c''d'\n    e: [\"f\", g]\n  -\n    h:\n")
	f.Add("- - a\n  - b\n")
	f.Fuzz(func(t *testing.T, text string) {
		doc, err := parseYAML(text)
		if err != nil {
			return
		}
		var walk func(n *yamlNode, depth int)
		walk = func(n *yamlNode, depth int) {
			if n == nil || n.Line < 1 || depth > len(text) {
				t.Fatalf("a node without a line, or nested deeper than the text is long: %+v", n)
			}
			switch n.Kind {
			case yamlMap:
				if len(n.Keys) != len(n.Map) {
					t.Fatalf("keys %q for a mapping of %d", n.Keys, len(n.Map))
				}
				for _, k := range n.Keys {
					walk(n.Map[k], depth+1)
				}
			case yamlList:
				for _, item := range n.List {
					walk(item, depth+1)
				}
			}
			_ = n.strings()
		}
		walk(doc, 0)
	})
}
