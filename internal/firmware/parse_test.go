package firmware

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

func parseBytes(b []byte) (Info, error) {
	return Parse(bytes.NewReader(b), int64(len(b)))
}

func TestParseValid(t *testing.T) {
	var elf [32]byte
	for i := range elf {
		elf[i] = byte(i)
	}
	tests := []struct {
		name string
		spec firmwaretest.Image
	}{
		{"hash appended", firmwaretest.Image{ELFSHA: elf, Payload: 1000, Extra: []int{64, 4096}}},
		{"hash absent", firmwaretest.Image{ELFSHA: elf, NoHash: true, Payload: 12}},
		{"sixteen segments", firmwaretest.Image{ELFSHA: elf, Extra: make([]int, 15)}},
		{"segments already 16-aligned", firmwaretest.Image{ELFSHA: elf, Payload: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := firmwaretest.Build(tt.spec)
			info, err := parseBytes(img)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantSHA := sha256.Sum256(img)
			wantMD5 := md5.Sum(img)
			want := Info{
				Project: "cloud-lamp", Version: "1.2.3", IDFVersion: "v5.3.1",
				BuildDate: "Nov 21 2026", BuildTime: "22:00:00",
				Chip: "esp32", ChipID: 0, Segments: 1 + len(tt.spec.Extra), Entry: 0x40081234,
				HashAppended: !tt.spec.NoHash, ELFSHA256: hex.EncodeToString(elf[:]),
				Size: int64(len(img)), SHA256: hex.EncodeToString(wantSHA[:]), MD5: hex.EncodeToString(wantMD5[:]),
			}
			if info != want {
				t.Errorf("Parse =\n%+v\nwant\n%+v", info, want)
			}
		})
	}
}

func TestParseChipIDs(t *testing.T) {
	tests := []struct {
		id   uint16
		want string
	}{
		{0, "esp32"}, {2, "esp32s2"}, {5, "esp32c3"}, {9, "esp32s3"},
		{12, "esp32c2"}, {13, "esp32c6"}, {16, "esp32h2"}, {18, "esp32p4"},
		{20, "esp32c61"}, {23, "esp32c5"}, {42, "unknown (id 42)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			info, err := parseBytes(firmwaretest.Build(firmwaretest.Image{ChipID: tt.id}))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if info.Chip != tt.want || info.ChipID != tt.id {
				t.Errorf("chip = %q (id %d), want %q (id %d)", info.Chip, info.ChipID, tt.want, tt.id)
			}
		})
	}
}

func TestParseTrimsDescriptionStrings(t *testing.T) {
	img := firmwaretest.Build(firmwaretest.Image{
		Project: strings.Repeat("p", 32), // fills the field: no NUL at all
		Version: "v2\x00garbage",
		IDFVer:  "v5\xff",
	})
	info, err := parseBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if info.Project != strings.Repeat("p", 32) || info.Version != "v2" || info.IDFVersion != "v5\uFFFD" {
		t.Errorf("project %q, version %q, idf %q", info.Project, info.Version, info.IDFVersion)
	}
}

func TestParseAllowsTrailingData(t *testing.T) {
	// A signed image carries its signature block after the image.
	img := append(firmwaretest.Build(firmwaretest.Image{}), make([]byte, 4096)...)
	info, err := parseBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(img)) {
		t.Errorf("Size = %d, want %d", info.Size, len(img))
	}
}

func TestParseRejects(t *testing.T) {
	valid := firmwaretest.Build(firmwaretest.Image{Payload: 400, Extra: []int{100}})
	noHash := firmwaretest.Build(firmwaretest.Image{NoHash: true, Payload: 400})
	mutate := func(src []byte, f func(b []byte)) []byte {
		b := bytes.Clone(src)
		f(b)
		return b
	}
	seg0Len := func(b []byte, n uint32) { binary.LittleEndian.PutUint32(b[imageHeaderSize+4:], n) }
	bootloaderSeg := append([]byte{bootloaderDescTag, 0, 0, 0}, make([]byte, 76)...)

	tests := []struct {
		name string
		file []byte
		want string // part of the reason
	}{
		{"empty", nil, "empty"},
		{"ELF", []byte("\x7fELF\x01\x01\x01\x00rest of an elf file"), "upload the .bin, not the .elf"},
		{"text", []byte("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n"), "text file"},
		{"text with cut multibyte", []byte("héllo wörld, this is text é"), "text file"},
		{"intel hex", []byte(":100000000C9434000C9446000C9446000C9446006A\n"), "text file"},
		{"bad magic", []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0x00, 0x01}, "starts with 12 34 56 78"},
		{"partition table", append([]byte{0xaa, 0x50, 0x01, 0x02}, make([]byte, 28)...), "partition table"},
		{"zip", []byte("PK\x03\x04\x14\x00\x00\x00"), "zip archive"},
		{"merged flash dump", bytes.Repeat([]byte{0xff}, 64), "merged flash"},
		{"header only partly there", valid[:20], "too short"},
		{"zero segments", mutate(valid, func(b []byte) { b[offSegmentCount] = 0 }), "no segments"},
		{"too many segments", mutate(valid, func(b []byte) { b[offSegmentCount] = 17 }), "at most 16"},
		{"ends inside a segment header", valid[:imageHeaderSize+4], "ends inside the header of segment 1"},
		{"segment past end", mutate(valid, func(b []byte) { seg0Len(b, 1<<20) }), "runs past the end of the file"},
		{"segment longer than 16 MiB", mutate(valid, func(b []byte) { seg0Len(b, 0xfffffff0) }), "more than the 16 MiB"},
		{"segment length not multiple of 4", mutate(valid, func(b []byte) { seg0Len(b, 401) }), "multiple of 4"},
		{"truncated in the segments", valid[:300], "runs past the end"},
		{"truncated before the checksum", noHash[:len(noHash)-1], "before the checksum"},
		{"truncated in the hash", valid[:len(valid)-10], "ends 10 bytes short"},
		{"checksum wrong", mutate(valid, func(b []byte) { b[imageHeaderSize+segmentHeaderSize+300]++ }), "checksum does not match"},
		{"checksum wrong without hash", mutate(noHash, func(b []byte) { b[firmwaretest.ChecksumOffset(b, false)]++ }), "checksum does not match"},
		// wp_pin is outside the checksum but inside the hash.
		{"hash wrong", mutate(valid, func(b []byte) { b[8]++ }), "SHA-256 digest appended to the image does not match"},
		{"appended hash damaged", mutate(valid, func(b []byte) { b[len(b)-1]++ }), "SHA-256 digest appended"},
		{"wrong app-desc magic", firmwaretest.Build(firmwaretest.Image{DescMagic: 0x12345678}), "starts with 0x12345678 instead of 0xabcd5432"},
		{"bootloader with description", firmwaretest.Build(firmwaretest.Image{FirstSegment: bootloaderSeg, FirstLoadAddr: 0x3fff0030}), "looks like a bootloader"},
		{"old bootloader", firmwaretest.Build(firmwaretest.Image{FirstSegment: make([]byte, 64), FirstLoadAddr: 0x3fff0000}), "looks like a bootloader"},
		{"unknown chip without description", firmwaretest.Build(firmwaretest.Image{ChipID: 300, DescMagic: 1}), "ESP8266"},
		{"first segment too short", firmwaretest.Build(firmwaretest.Image{FirstSegment: []byte{}}), "too short to hold the application description"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := parseBytes(tt.file)
			var invalid *InvalidImageError
			if !errors.As(err, &invalid) {
				t.Fatalf("Parse = %+v, %v; want an *InvalidImageError", info, err)
			}
			if !strings.Contains(invalid.Reason, tt.want) {
				t.Errorf("reason %q does not contain %q", invalid.Reason, tt.want)
			}
			if info != (Info{}) {
				t.Errorf("Parse returned info %+v with an error", info)
			}
		})
	}
}

func TestParseReadErrorIsNotAnInvalidImage(t *testing.T) {
	img := firmwaretest.Build(firmwaretest.Image{})
	r := &splitReader{data: img, failAt: 100}
	_, err := Parse(r, int64(len(img)))
	var invalid *InvalidImageError
	if err == nil || errors.As(err, &invalid) || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Parse = %v; want the wrapped read error", err)
	}

	// A reader shorter than the size it was given.
	_, err = Parse(bytes.NewReader(img[:50]), int64(len(img)))
	if err == nil || errors.As(err, &invalid) {
		t.Errorf("short reader: Parse = %v; want a read error", err)
	}

	if _, err := Parse(bytes.NewReader(img), -1); err == nil {
		t.Error("negative size accepted")
	}
}

// splitReader serves data but fails any read that reaches failAt.
type splitReader struct {
	data   []byte
	failAt int64
}

func (s *splitReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.failAt {
		return 0, errors.New("disk on fire")
	}
	return copy(p, s.data[off:]), nil
}

func TestChipNames(t *testing.T) {
	for in, want := range map[string]string{"esp32": "esp32", "ESP32-S3": "esp32s3", "esp32_c3": "esp32c3", "esp32 c6": "esp32c6"} {
		got, err := NormalizeChip(in)
		if err != nil || got != want {
			t.Errorf("NormalizeChip(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := NormalizeChip("esp8266")
	if err == nil || !strings.Contains(err.Error(), "known chips are esp32,") {
		t.Errorf("NormalizeChip(esp8266) error = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(firmwaretest.Build(firmwaretest.Image{}))
	f.Add(firmwaretest.Build(firmwaretest.Image{NoHash: true, Extra: []int{8, 8}}))
	f.Add(firmwaretest.Build(firmwaretest.Image{DescMagic: 1}))
	f.Add(firmwaretest.Build(firmwaretest.Image{FirstSegment: []byte{bootloaderDescTag, 0, 0, 0}, FirstLoadAddr: 0x3fff0030}))
	f.Add([]byte("\x7fELF"))
	f.Add([]byte{imageMagic, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseBytes(data)
		if err != nil {
			var invalid *InvalidImageError
			if !errors.As(err, &invalid) || invalid.Reason == "" {
				t.Fatalf("in-memory input gave a non-image error: %v", err)
			}
			return
		}
		if info.Size != int64(len(data)) || info.Segments < 1 || info.Segments > maxSegments {
			t.Fatalf("implausible info %+v for %d bytes", info, len(data))
		}
		if sum := sha256.Sum256(data); info.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("SHA256 %s does not match the data", info.SHA256)
		}
	})
}
