// Package firmwaretest builds synthetic ESP32 application images for tests,
// the way esptool's elf2image lays them out: header, segments, padding,
// checksum and the optional SHA-256.
package firmwaretest

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
)

// The layout of ESP-IDF's esp_image_header_t, esp_image_segment_header_t
// and esp_app_desc_t (components/bootloader_support/include/esp_app_format.h),
// written out here on its own so tests check the parser against an
// independent encoding.
const (
	imageMagic      = 0xE9
	imageHeaderSize = 24
	checksumSeed    = 0xEF
	checksumAlign   = 16
	appDescMagic    = 0xABCD5432
	appDescSize     = 256
	appendedHashLen = 32

	offSegmentCount = 1
	offEntry        = 4
	offChipID       = 12
	offHashAppended = 23

	offDescVersion = 16
	offDescProject = 48
	offDescTime    = 80
	offDescDate    = 96
	offDescIDF     = 112
	offDescELFHash = 144
)

// Image describes a synthetic ESP32 application image for Build. The zero
// value is a valid ESP32 image with an appended hash.
type Image struct {
	ChipID    uint16
	NoHash    bool
	Project   string // "" means "cloud-lamp"
	Version   string // "" means "1.2.3"
	IDFVer    string
	Date      string
	Time      string
	ELFSHA    [32]byte
	DescMagic uint32 // 0 means the real magic

	FirstLoadAddr uint32 // 0 means 0x3f400020, where ESP-IDF maps an app's rodata
	FirstSegment  []byte // replaces the app description + payload when set
	Payload       int    // bytes after the app description in segment 0 (rounded up to 4)
	Extra         []int  // lengths of further segments (rounded up to 4)
	Seed          uint64 // varies the payload and extra segment bytes (not the description)
}

// Build assembles header, segments, padding, checksum and the optional
// SHA-256 the way esptool's elf2image does.
func Build(spec Image) []byte {
	rng := rand.New(rand.NewPCG(spec.Seed, 7))
	random := func(n int) []byte {
		b := make([]byte, (n+3)/4*4)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	orDefault := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}

	first := spec.FirstSegment
	if first == nil {
		desc := make([]byte, appDescSize)
		magic := spec.DescMagic
		if magic == 0 {
			magic = appDescMagic
		}
		binary.LittleEndian.PutUint32(desc, magic)
		copy(desc[offDescVersion:offDescProject], orDefault(spec.Version, "1.2.3"))
		copy(desc[offDescProject:offDescTime], orDefault(spec.Project, "cloud-lamp"))
		copy(desc[offDescTime:offDescDate], orDefault(spec.Time, "22:00:00"))
		copy(desc[offDescDate:offDescIDF], orDefault(spec.Date, "Nov 21 2026"))
		copy(desc[offDescIDF:offDescELFHash], orDefault(spec.IDFVer, "v5.3.1"))
		copy(desc[offDescELFHash:], spec.ELFSHA[:])
		first = append(desc, random(spec.Payload)...)
	}
	loadAddr := spec.FirstLoadAddr
	if loadAddr == 0 {
		loadAddr = 0x3f400020
	}
	segments := [][]byte{first}
	for _, n := range spec.Extra {
		segments = append(segments, random(n))
	}

	img := make([]byte, imageHeaderSize)
	img[0] = imageMagic
	img[offSegmentCount] = byte(len(segments))
	img[2] = 2    // DIO
	img[3] = 0x20 // 4 MB, 40 MHz
	binary.LittleEndian.PutUint32(img[offEntry:], 0x40081234)
	img[8] = 0xee // wp_pin disabled, as the IDF bootloader sets it
	binary.LittleEndian.PutUint16(img[offChipID:], spec.ChipID)
	binary.LittleEndian.PutUint16(img[17:], 0xffff) // max_chip_rev_full: any
	if !spec.NoHash {
		img[offHashAppended] = 1
	}

	checksum := byte(checksumSeed)
	for i, data := range segments {
		addr := loadAddr
		if i > 0 {
			addr = 0x40080000 + uint32(i)*0x10000
		}
		img = binary.LittleEndian.AppendUint32(img, addr)
		img = binary.LittleEndian.AppendUint32(img, uint32(len(data)))
		img = append(img, data...)
		for _, c := range data {
			checksum ^= c
		}
	}
	for len(img)%checksumAlign != checksumAlign-1 {
		img = append(img, 0)
	}
	img = append(img, checksum)
	if !spec.NoHash {
		sum := sha256.Sum256(img)
		img = append(img, sum[:]...)
	}
	return img
}

// ChecksumOffset is where Build put the checksum byte.
func ChecksumOffset(img []byte, hashAppended bool) int {
	if hashAppended {
		return len(img) - appendedHashLen - 1
	}
	return len(img) - 1
}

// Bootloader is a second-stage bootloader: a valid image whose first segment
// loads into RAM and carries no application description.
func Bootloader() []byte {
	seg := make([]byte, 512)
	for i := range seg {
		seg[i] = byte(i * 7)
	}
	return Build(Image{FirstLoadAddr: 0x3fff0000, FirstSegment: seg})
}
