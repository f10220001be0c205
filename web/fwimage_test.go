package web

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// Synthetic ESP32 application images for the upload tests, built the way
// esptool's elf2image lays them out (the same builder as
// firmware/image_test.go, whose layout constants are unexported there).

const (
	imgMagic          = 0xE9
	imgHeaderSize     = 24
	imgChecksumSeed   = 0xEF
	imgChecksumAlign  = 16
	imgAppDescMagic   = 0xABCD5432
	imgAppDescSize    = 256
	imgOffSegments    = 1
	imgOffEntry       = 4
	imgOffChipID      = 12
	imgOffHash        = 23
	imgOffDescVersion = 16
	imgOffDescProject = 48
	imgOffDescTime    = 80
	imgOffDescDate    = 96
	imgOffDescIDF     = 112
	imgOffDescELFHash = 144
)

// testImage describes an image; the zero value is a valid ESP32 image of
// project "cloud-lamp" 1.2.3 with an appended SHA-256.
type testImage struct {
	chipID        uint16
	project       string // "" means "cloud-lamp"
	version       string // "" means "1.2.3"
	firstLoadAddr uint32 // 0 means 0x3f400020, where ESP-IDF maps an app's rodata
	firstSegment  []byte // replaces the app description + payload when set
	payload       int    // bytes after the app description (rounded up to 4)
	seed          uint64
}

func buildImage(t testing.TB, spec testImage) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(spec.seed, 7))
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	first := spec.firstSegment
	if first == nil {
		desc := make([]byte, imgAppDescSize)
		binary.LittleEndian.PutUint32(desc, imgAppDescMagic)
		copy(desc[imgOffDescVersion:imgOffDescProject], or(spec.version, "1.2.3"))
		copy(desc[imgOffDescProject:imgOffDescTime], or(spec.project, "cloud-lamp"))
		copy(desc[imgOffDescTime:imgOffDescDate], "22:00:00")
		copy(desc[imgOffDescDate:imgOffDescIDF], "Nov 21 2026")
		copy(desc[imgOffDescIDF:imgOffDescELFHash], "v5.3.1")
		payload := make([]byte, (spec.payload+3)/4*4)
		for i := range payload {
			payload[i] = byte(rng.UintN(256))
		}
		first = append(desc, payload...)
	}
	loadAddr := spec.firstLoadAddr
	if loadAddr == 0 {
		loadAddr = 0x3f400020
	}

	img := make([]byte, imgHeaderSize)
	img[0] = imgMagic
	img[imgOffSegments] = 1
	img[2] = 2    // DIO
	img[3] = 0x20 // 4 MB, 40 MHz
	binary.LittleEndian.PutUint32(img[imgOffEntry:], 0x40081234)
	img[8] = 0xee
	binary.LittleEndian.PutUint16(img[imgOffChipID:], spec.chipID)
	binary.LittleEndian.PutUint16(img[17:], 0xffff)
	img[imgOffHash] = 1

	checksum := byte(imgChecksumSeed)
	img = binary.LittleEndian.AppendUint32(img, loadAddr)
	img = binary.LittleEndian.AppendUint32(img, uint32(len(first)))
	img = append(img, first...)
	for _, c := range first {
		checksum ^= c
	}
	for len(img)%imgChecksumAlign != imgChecksumAlign-1 {
		img = append(img, 0)
	}
	img = append(img, checksum)
	sum := sha256.Sum256(img)
	return append(img, sum[:]...)
}

// bootloaderImage is a second-stage bootloader: a valid image whose first
// segment loads into RAM and carries no application description.
func bootloaderImage(t testing.TB) []byte {
	seg := make([]byte, 512)
	for i := range seg {
		seg[i] = byte(i * 7)
	}
	return buildImage(t, testImage{firstLoadAddr: 0x3fff0000, firstSegment: seg})
}
