package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// examplePath is the documented example configuration at the repository root.
var examplePath = filepath.Join("..", "..", "config.example.toml")

// TestExampleLoadsAsDefaults loads the example strictly: no unknown keys,
// valid, and since it documents the defaults, equal to them.
func TestExampleLoadsAsDefaults(t *testing.T) {
	c, err := Load(examplePath, nil)
	if err != nil {
		t.Fatalf("config.example.toml does not load: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("config.example.toml does not state the defaults:\n got %+v\nwant %+v", c, Default())
	}
}

// TestExampleDocumentsEveryKey walks Config by reflection and requires each
// key (commented out or not) in its section of the example, with its
// environment variable.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	blocks := exampleBlocks(text)
	for _, s := range settings().list {
		if s.fileOnly() {
			header := "[[" + s.name() + "]]"
			block, ok := blocks[header]
			if !ok {
				t.Errorf("config.example.toml has no %s example (commented out is fine)", header)
				continue
			}
			for _, sub := range structKeys(s.typ.Elem()) {
				if !hasKeyLine(block, sub) {
					t.Errorf("config.example.toml: %s example lacks %q", header, sub)
				}
			}
			continue
		}
		if !hasKeyLine(blocks["["+s.section+"]"], s.key) {
			t.Errorf("config.example.toml: [%s] does not document %q (commented out is fine)", s.section, s.key)
		}
		if !strings.Contains(text, s.env()) {
			t.Errorf("config.example.toml does not name the variable %s", s.env())
		}
	}
}

// exampleBlocks splits the example at its table headers, commented or not,
// into header -> the text up to the next header.
func exampleBlocks(text string) map[string]string {
	header := regexp.MustCompile(`^#?\s*(\[\[?[a-z_.]+\]\]?)\s*$`)
	blocks := make(map[string]string)
	current := ""
	for line := range strings.Lines(text) {
		if m := header.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			current = m[1]
			continue
		}
		blocks[current] += line
	}
	return blocks
}

func hasKeyLine(block, key string) bool {
	return regexp.MustCompile(`(?m)^\s*(#\s*)?` + regexp.QuoteMeta(key) + `\s*=`).MatchString(block)
}

// TestExampleCommentedValuesAreValid uncomments each optional key of the
// example (lat and lon together) and requires the result to load, so the
// examples shown to people are values the server accepts.
func TestExampleCommentedValuesAreValid(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	keyLine := regexp.MustCompile(`^# ([a-z_]+) = `)
	index := make(map[string]int) // key -> line, outside the secrets block
	secretsStart := -1
	for i, line := range lines {
		if line == "# [[device.secrets]]" {
			secretsStart = i
		}
		if m := keyLine.FindStringSubmatch(line); m != nil && (secretsStart < 0 || i > secretsStart+3) {
			index[m[1]] = i
		}
	}
	if len(index) == 0 || secretsStart < 0 {
		t.Fatalf("found %d commented keys and secrets block at line %d; the example's layout changed", len(index), secretsStart+1)
	}
	partner := map[string]string{"lat": "lon", "lon": "lat", "download_username": "download_password", "download_password": "download_username"}

	load := func(t *testing.T, uncomment ...int) Config {
		t.Helper()
		edited := slices.Clone(lines)
		for _, i := range uncomment {
			edited[i] = strings.TrimPrefix(edited[i], "# ")
		}
		c, err := Load(writeConfig(t, strings.Join(edited, "\n")), nil)
		if err != nil {
			t.Fatalf("example with lines %v uncommented does not load: %v", uncomment, err)
		}
		return c
	}
	for key, i := range index {
		t.Run(key, func(t *testing.T) {
			uncomment := []int{i}
			if p, ok := partner[key]; ok {
				uncomment = append(uncomment, index[p])
			}
			load(t, uncomment...)
		})
	}
	t.Run("device.secrets", func(t *testing.T) {
		c := load(t, secretsStart, secretsStart+1, secretsStart+2)
		if len(c.Device.Secrets) != 1 || c.Device.Secrets[0].Name == "" {
			t.Errorf("secrets = %+v, want the one example secret", c.Device.Secrets)
		}
		c.Device.Secrets = nil
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("uncommenting the secrets block changed other keys: %+v", c)
		}
	})
}
