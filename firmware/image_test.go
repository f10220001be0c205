package firmware

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// testImage describes a synthetic application image for buildImage. The zero
// value is a valid ESP32 image with an appended hash.
type testImage struct {
	chipID    uint16
	noHash    bool
	project   string // "" means "cloud-lamp"
	version   string // "" means "1.2.3"
	idfVer    string
	date      string
	time      string
	elfSHA    [32]byte
	descMagic uint32 // 0 means the real magic

	firstLoadAddr uint32 // 0 means 0x3f400020, where ESP-IDF maps an app's rodata
	firstSegment  []byte // replaces the app description + payload when set
	payload       int    // bytes after the app description in segment 0 (rounded up to 4)
	extra         []int  // lengths of further segments (rounded up to 4)
	seed          uint64 // varies the payload and extra segment bytes (not the description)
}

// buildImage assembles header, segments, padding, checksum and the optional
// SHA-256 the way esptool's elf2image does.
func buildImage(t testing.TB, spec testImage) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(spec.seed, 7))
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

	first := spec.firstSegment
	if first == nil {
		desc := make([]byte, appDescSize)
		magic := spec.descMagic
		if magic == 0 {
			magic = appDescMagic
		}
		binary.LittleEndian.PutUint32(desc, magic)
		copy(desc[offDescVersion:offDescProject], orDefault(spec.version, "1.2.3"))
		copy(desc[offDescProject:offDescTime], orDefault(spec.project, "cloud-lamp"))
		copy(desc[offDescTime:offDescDate], orDefault(spec.time, "22:00:00"))
		copy(desc[offDescDate:offDescIDF], orDefault(spec.date, "Nov 21 2026"))
		copy(desc[offDescIDF:offDescELFHash], orDefault(spec.idfVer, "v5.3.1"))
		copy(desc[offDescELFHash:], spec.elfSHA[:])
		first = append(desc, random(spec.payload)...)
	}
	loadAddr := spec.firstLoadAddr
	if loadAddr == 0 {
		loadAddr = 0x3f400020
	}
	segments := [][]byte{first}
	for _, n := range spec.extra {
		segments = append(segments, random(n))
	}

	img := make([]byte, imageHeaderSize)
	img[0] = imageMagic
	img[offSegmentCount] = byte(len(segments))
	img[2] = 2    // DIO
	img[3] = 0x20 // 4 MB, 40 MHz
	binary.LittleEndian.PutUint32(img[offEntry:], 0x40081234)
	img[8] = 0xee // wp_pin disabled, as the IDF bootloader sets it
	binary.LittleEndian.PutUint16(img[offChipID:], spec.chipID)
	binary.LittleEndian.PutUint16(img[17:], 0xffff) // max_chip_rev_full: any
	if !spec.noHash {
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
	if !spec.noHash {
		sum := sha256.Sum256(img)
		img = append(img, sum[:]...)
	}
	return img
}

// checksumOffset is where buildImage put the checksum byte.
func checksumOffset(img []byte, hashAppended bool) int {
	if hashAppended {
		return len(img) - appendedHashLen - 1
	}
	return len(img) - 1
}
