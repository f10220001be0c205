package errorbody

import "testing"

func TestForPerson(t *testing.T) {
	for msg, want := range map[string]string{
		`this image is project "a", but the current image is project "b"; flashing another project can leave lamps that never connect again. If you really mean to switch, tick "allow project change" (API: allow_project_change=1) and upload again`: `This image is project "a", but the current image is project "b"; flashing another project can leave lamps that never connect again. If you really mean to switch, tick "allow project change" and upload again.`,
		"no firmware image has been uploaded yet: upload the application .bin (firmware panel, or POST /api/firmware) before telling lamps to update":                                                                                                  "No firmware image has been uploaded yet: upload the application .bin before telling lamps to update.",
		"the image checksum does not match (stored 0xa9, computed 0x56); the file is damaged":                                                                                                                                                          "The image checksum does not match; the file is damaged.",
		"pulse: 12 is out of range 0-9 (0 = steady)": "Pulse: 12 is out of range 0-9 (0 = steady).",
	} {
		if got := ForPerson(msg); got != want {
			t.Errorf("ForPerson(%q)\n = %q\nwant %q", msg, got, want)
		}
	}
}
