// Package firmware checks, keeps and serves the ESP32 application image that
// lamps download from /firmware.bin.
//
// Nothing reaches a lamp unless Parse has walked the whole file the way the
// ESP-IDF bootloader will (components/bootloader_support/src/esp_image_format.c):
// a lamp that flashes a broken image can only be saved with a USB cable.
package firmware

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Layout of an ESP32 application image, from ESP-IDF's esp_app_format.h and
// esp_app_desc.h.
const (
	imageMagic        = 0xE9       // ESP_IMAGE_HEADER_MAGIC
	imageHeaderSize   = 24         // sizeof(esp_image_header_t)
	segmentHeaderSize = 8          // sizeof(esp_image_segment_header_t)
	maxSegments       = 16         // ESP_IMAGE_MAX_SEGMENTS
	maxSegmentLen     = 16 << 20   // the bootloader rejects data_len >= 16 MB
	checksumSeed      = 0xEF       // ESP_ROM_CHECKSUM_INITIAL
	checksumAlign     = 16         // the checksum byte ends a 16-byte block
	appendedHashLen   = 32         // SHA-256 "simple hash" after the checksum
	appDescMagic      = 0xABCD5432 // ESP_APP_DESC_MAGIC_WORD
	appDescSize       = 256        // sizeof(esp_app_desc_t)
	bootloaderDescTag = 0x50       // ESP_BOOTLOADER_DESC_MAGIC_BYTE (IDF >= 5.2)
	partitionTableTag = 0x50AA     // ESP_PARTITION_MAGIC, first two bytes of a partition table
	mmuPageSize       = 0x10000    // an app's first segment is mapped from flash at this granularity
)

// Field offsets inside esp_image_header_t.
const (
	offSegmentCount = 1
	offEntry        = 4
	offChipID       = 12
	offHashAppended = 23
)

// Field offsets inside esp_app_desc_t.
const (
	offDescVersion = 16  // after magic_word, secure_version, reserv1[2]
	offDescProject = 48  // version is char[32]
	offDescTime    = 80  // project_name is char[32]
	offDescDate    = 96  // time is char[16]
	offDescIDF     = 112 // date is char[16]
	offDescELFHash = 144 // idf_ver is char[32]
)

// chipNames maps esp_chip_id_t to the names esptool and PlatformIO use.
// The first seven are in ESP-IDF's esp_app_format.h; P4, C61 and C5 come
// from newer IDF releases.
var chipNames = map[uint16]string{
	0x0000: "esp32",
	0x0002: "esp32s2",
	0x0005: "esp32c3",
	0x0009: "esp32s3",
	0x000C: "esp32c2",
	0x000D: "esp32c6",
	0x0010: "esp32h2",
	0x0012: "esp32p4",
	0x0014: "esp32c61",
	0x0017: "esp32c5",
}

// ChipName returns the chip name for an image header's chip id, or
// "unknown (id N)" for an id this server does not know.
func ChipName(id uint16) string {
	if name, ok := chipNames[id]; ok {
		return name
	}
	return fmt.Sprintf("unknown (id %d)", id)
}

// Info describes a checked application image.
type Info struct {
	// From the application description (esp_app_desc_t), NUL-trimmed.
	Project    string `json:"project"`
	Version    string `json:"version"`
	IDFVersion string `json:"idf_version"`
	BuildDate  string `json:"build_date"`
	BuildTime  string `json:"build_time"`

	Chip         string `json:"chip"` // "esp32", "esp32s3", ... or "unknown (id 42)"
	ChipID       uint16 `json:"chip_id"`
	Segments     int    `json:"segments"`
	Entry        uint32 `json:"entry"`
	HashAppended bool   `json:"hash_appended"`
	ELFSHA256    string `json:"elf_sha256"` // hex

	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex of the whole file
	MD5    string `json:"md5"`    // hex of the whole file; Arduino's updater checks it via x-MD5

	// UploadedAt is set by Store.Save; Parse leaves it zero.
	UploadedAt time.Time `json:"uploaded_at"`
}

// InvalidImageError says why a file is not an ESP32 application image, in a
// sentence meant for the person who uploaded it.
type InvalidImageError struct {
	Reason string
}

func (e *InvalidImageError) Error() string { return e.Reason }

func invalidf(format string, args ...any) error {
	return &InvalidImageError{Reason: fmt.Sprintf(format, args...)}
}

// readChunk bounds every read Parse makes, whatever the file claims.
const readChunk = 32 << 10

// Parse checks that the size bytes of r are an ESP32 application image and
// describes it. Every segment header is walked, the checksum and (when the
// header says one is appended) the SHA-256 are verified, and the application
// description is read. Memory use does not depend on the file: lengths from
// the file only ever bound reads into fixed buffers.
//
// A file that is not a valid image gives an *InvalidImageError; a failing
// reader gives a wrapped read error.
func Parse(r io.ReaderAt, size int64) (Info, error) {
	if size < 0 {
		return Info{}, fmt.Errorf("parse firmware: negative size %d", size)
	}
	if size == 0 {
		return Info{}, invalidf("the file is empty")
	}

	var head [imageHeaderSize]byte
	n := int(min(size, imageHeaderSize))
	if err := readAt(r, head[:n], 0); err != nil {
		return Info{}, err
	}
	if head[0] != imageMagic {
		return Info{}, notAnImage(head[:n])
	}
	if size < imageHeaderSize {
		return Info{}, invalidf("the file is only %d bytes, too short to hold an ESP32 image header (%d bytes); the upload is incomplete", size, imageHeaderSize)
	}

	info := Info{
		ChipID:       binary.LittleEndian.Uint16(head[offChipID:]),
		Segments:     int(head[offSegmentCount]),
		Entry:        binary.LittleEndian.Uint32(head[offEntry:]),
		HashAppended: head[offHashAppended] != 0, // the bootloader treats any non-zero value as "appended"
		Size:         size,
	}
	info.Chip = ChipName(info.ChipID)
	switch {
	case info.Segments == 0:
		return Info{}, invalidf("the image header says the image has no segments; an application has at least one")
	case info.Segments > maxSegments:
		return Info{}, invalidf("the image header lists %d segments, but an ESP32 image has at most %d; the file is damaged or not an ESP32 image", info.Segments, maxSegments)
	}

	// Walk the segments, folding their data into the checksum.
	checksum := byte(checksumSeed)
	buf := make([]byte, readChunk)
	var first segment
	offset := int64(imageHeaderSize)
	for i := range info.Segments {
		seg, err := readSegmentHeader(r, size, offset, i, info.Segments)
		if err != nil {
			return Info{}, err
		}
		if i == 0 {
			first = seg
		}
		if checksum, err = xorRange(r, seg.dataOffset, int64(seg.length), checksum, buf); err != nil {
			return Info{}, err
		}
		offset = seg.dataOffset + int64(seg.length)
	}

	// After the last segment: zero padding, then the checksum byte as the
	// last byte of a 16-byte block (process_checksum in esp_image_format.c).
	checksumAt := (offset+1+checksumAlign-1)/checksumAlign*checksumAlign - 1
	if checksumAt >= size {
		return Info{}, invalidf("the file ends at byte %d, before the checksum at byte %d; the upload is incomplete", size, checksumAt)
	}
	var stored [1]byte
	if err := readAt(r, stored[:], checksumAt); err != nil {
		return Info{}, err
	}
	if stored[0] != checksum {
		return Info{}, invalidf("the image checksum does not match (stored 0x%02x, computed 0x%02x); the file is damaged", stored[0], checksum)
	}
	imageEnd := checksumAt + 1
	var appended [appendedHashLen]byte
	if info.HashAppended {
		if imageEnd+appendedHashLen > size {
			return Info{}, invalidf("the image header says a SHA-256 digest follows the checksum, but the file ends %d bytes short of it; the upload is incomplete", imageEnd+appendedHashLen-size)
		}
		if err := readAt(r, appended[:], imageEnd); err != nil {
			return Info{}, err
		}
	}
	// Bytes after the image are allowed: a signed image carries its
	// signature block there, and the bootloader ignores anything else.

	// One pass over the whole file for the digests a download is checked
	// against, and for the appended digest (which covers everything before it).
	fileSHA, fileMD5, imageSHA := sha256.New(), md5.New(), sha256.New()
	prefix := &limitedWriter{w: imageSHA, n: imageEnd}
	if _, err := io.CopyBuffer(io.MultiWriter(fileSHA, fileMD5, prefix), io.NewSectionReader(r, 0, size), buf); err != nil {
		return Info{}, fmt.Errorf("parse firmware: hash file: %w", err)
	}
	info.SHA256 = hex.EncodeToString(fileSHA.Sum(nil))
	info.MD5 = hex.EncodeToString(fileMD5.Sum(nil))
	if info.HashAppended {
		if computed := imageSHA.Sum(nil); !bytes.Equal(computed, appended[:]) {
			return Info{}, invalidf("the SHA-256 digest appended to the image does not match its content (stored %s…, computed %s…); the file is damaged",
				hex.EncodeToString(appended[:4]), hex.EncodeToString(computed[:4]))
		}
	}

	if err := readAppDesc(r, first, &info); err != nil {
		return Info{}, err
	}
	return info, nil
}

// segment is one esp_image_segment_header_t and where its data starts.
type segment struct {
	loadAddr   uint32
	length     uint32
	dataOffset int64
}

func readSegmentHeader(r io.ReaderAt, size, offset int64, index, count int) (segment, error) {
	if offset+segmentHeaderSize > size {
		return segment{}, invalidf("the file ends inside the header of segment %d of %d (at byte %d); the upload is incomplete", index+1, count, offset)
	}
	var h [segmentHeaderSize]byte
	if err := readAt(r, h[:], offset); err != nil {
		return segment{}, err
	}
	seg := segment{
		loadAddr:   binary.LittleEndian.Uint32(h[0:]),
		length:     binary.LittleEndian.Uint32(h[4:]),
		dataOffset: offset + segmentHeaderSize,
	}
	switch {
	case seg.length >= maxSegmentLen:
		return segment{}, invalidf("segment %d of %d claims %d bytes, more than the 16 MiB an ESP32 image can hold; the file is damaged", index+1, count, seg.length)
	case seg.length%4 != 0:
		return segment{}, invalidf("segment %d of %d is %d bytes long, but segment lengths are always a multiple of 4; the file is damaged", index+1, count, seg.length)
	case seg.dataOffset+int64(seg.length) > size:
		return segment{}, invalidf("segment %d of %d (%d bytes from byte %d) runs past the end of the file (%d bytes); the upload is incomplete or the file is damaged",
			index+1, count, seg.length, seg.dataOffset, size)
	}
	return seg, nil
}

// readAppDesc fills info from the esp_app_desc_t that ESP-IDF places at the
// start of the first segment of every application.
func readAppDesc(r io.ReaderAt, first segment, info *Info) error {
	var desc [appDescSize]byte
	n := int(min(int64(first.length), appDescSize))
	if err := readAt(r, desc[:n], first.dataOffset); err != nil {
		return err
	}
	if n == appDescSize && binary.LittleEndian.Uint32(desc[:]) == appDescMagic {
		info.Version = cString(desc[offDescVersion:offDescProject])
		info.Project = cString(desc[offDescProject:offDescTime])
		info.BuildTime = cString(desc[offDescTime:offDescDate])
		info.BuildDate = cString(desc[offDescDate:offDescIDF])
		info.IDFVersion = cString(desc[offDescIDF:offDescELFHash])
		info.ELFSHA256 = hex.EncodeToString(desc[offDescELFHash : offDescELFHash+32])
		return nil
	}

	// A second-stage bootloader is an image too, with the same header, but it
	// carries a bootloader description (IDF >= 5.2) or at least loads its
	// first segment straight into RAM, where an application's first segment
	// is mapped from flash right after the headers (offset 0x20 in a page).
	if (n > 0 && desc[0] == bootloaderDescTag) || first.loadAddr%mmuPageSize != imageHeaderSize+segmentHeaderSize {
		return invalidf("this looks like a bootloader, not an application: its first segment has no application description; upload the application .bin from the build directory")
	}
	if _, known := chipNames[info.ChipID]; !known {
		return invalidf("this is not an ESP32 application: the chip id %d is unknown and there is no application description (is it firmware for another chip, such as an ESP8266?)", info.ChipID)
	}
	if n < 4 {
		return invalidf("the first segment is only %d bytes, too short to hold the application description; the file is damaged", n)
	}
	return invalidf("the application description is missing: the first segment starts with 0x%08x instead of 0x%08x; the file is damaged or was not built with ESP-IDF or Arduino",
		binary.LittleEndian.Uint32(desc[:]), uint32(appDescMagic))
}

// notAnImage explains what a file that does not start with 0xE9 probably is.
func notAnImage(head []byte) error {
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return invalidf("this is not an ESP32 firmware image (it starts with 0x7f 'ELF'; upload the .bin, not the .elf)")
	case len(head) >= 2 && binary.LittleEndian.Uint16(head) == partitionTableTag:
		return invalidf("this is a partition table, not an application; upload the application .bin")
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return invalidf("this is a zip archive, not an ESP32 firmware image; unpack it and upload the .bin inside")
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return invalidf("this is a gzip-compressed file, not an ESP32 firmware image; decompress it and upload the .bin")
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0xff, 0xff, 0xff, 0xff}):
		return invalidf("this file starts with erased flash (0xff bytes): it looks like a merged flash dump, not an application; upload the application .bin")
	case looksLikeText(head):
		return invalidf("this is a text file (it starts with %q), not an ESP32 firmware image; upload the binary .bin", head)
	}
	return invalidf("this is not an ESP32 firmware image (it starts with % x; an image starts with 0xe9)", head[:min(len(head), 4)])
}

func looksLikeText(b []byte) bool {
	if !utf8.Valid(b) {
		// The head may end in the middle of a multi-byte character.
		b = b[:max(0, len(b)-utf8.UTFMax)]
		if !utf8.Valid(b) {
			return false
		}
	}
	for _, r := range string(b) {
		if r < ' ' && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// cString returns a fixed-size C char array as a string: up to the first NUL,
// with bytes that are not UTF-8 replaced so the JSON stays readable.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// xorRange folds n bytes from r at off into sum.
func xorRange(r io.ReaderAt, off, n int64, sum byte, buf []byte) (byte, error) {
	for n > 0 {
		chunk := buf[:min(n, int64(len(buf)))]
		if err := readAt(r, chunk, off); err != nil {
			return 0, err
		}
		for _, c := range chunk {
			sum ^= c
		}
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return sum, nil
}

// readAt fills p from off. The caller has checked that the range lies within
// the size it was given, so a short read means the reader lied about it.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("parse firmware: read %d bytes at offset %d: %w", len(p), off, err)
}

// limitedWriter passes the first n bytes on to w and drops the rest.
type limitedWriter struct {
	w hash.Hash
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		take := p[:min(int64(len(p)), l.n)]
		l.w.Write(take) // hash.Hash.Write never returns an error
		l.n -= int64(len(take))
	}
	return len(p), nil
}
