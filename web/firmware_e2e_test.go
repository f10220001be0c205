package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cloudcloud/cloudcloud/device"
	"github.com/cloudcloud/cloudcloud/internal/events"
	"github.com/cloudcloud/cloudcloud/internal/rollout"

	"github.com/cloudcloud/cloudcloud/internal/firmware/firmwaretest"
)

// TestFirmwareOverTheAir is the whole story with real parts, wired as
// server.go wires them: a person uploads an image, tells every lamp to
// update; a lamp (a real WebSocket client behaving like the firmware)
// receives [cc:u:?:?], downloads /firmware.bin from the device port with
// its secret as the login, through either updater's download path, drops
// off and connects again; the API and the event stream show each step and
// finally the lamp back on the new version.
func TestFirmwareOverTheAir(t *testing.T) {
	for _, u := range []updater{arduinoUpdater, idfUpdater} {
		t.Run(string(u), func(t *testing.T) {
			// Arduino's updater says what the lamp runs; ESP-IDF's does not.
			wantRunning := ""
			if u == arduinoUpdater {
				wantRunning = "1.2.9"
			}
			e := newFirmwareEnv(t, fwConfig{})
			img := firmwaretest.Build(firmwaretest.Image{Version: "1.3.0", Payload: 200 << 10}) // > 64 KiB: progress is reported on the way
			info := e.uploadImage(t, img)

			lamp := e.otaLamp(t, kitchenSecret, "1.2.9", u)
			waitFor(t, "the kitchen lamp to connect", func() bool {
				return slices.ContainsFunc(e.gw.Devices(), func(d device.Info) bool { return d.Name == "kitchen" && d.Authenticated })
			})
			stream := e.openEvents(t)
			if snap := stream.next(t, string(events.TypeFirmwareStatus)); !bytes.Contains([]byte(snap.data), []byte(info.SHA256)) {
				t.Fatalf("the stream's firmware snapshot lacks the current image: %s", snap.data)
			}

			res := e.call(t, http.MethodPost, "/api/commands", `{"command": "update"}`)
			if res.status != http.StatusOK {
				t.Fatalf("update all: %d %s", res.status, res.body)
			}
			if sent := decode[commandResult](t, res).SentTo; len(sent) != 1 {
				t.Fatalf("update sent to %v, want the one lamp", sent)
			}

			// The lamp downloads exactly the image and comes back.
			waitFor(t, "the lamp to download and reconnect", func() bool {
				connects, downloads, _ := lamp.state()
				return len(downloads) == 1 && connects >= 2
			})
			if _, downloads, _ := lamp.state(); !bytes.Equal(downloads[0], img) {
				t.Fatalf("the lamp downloaded %d bytes that differ from the %d-byte image", len(downloads[0]), len(img))
			}

			// The event stream showed each step, in order, ending with "back".
			var states []string
			for len(states) == 0 || states[len(states)-1] != rollout.StateBack {
				ev := stream.next(t, "firmware")
				var up rollout.Update
				if err := json.Unmarshal([]byte(ev.data), &up); err != nil {
					t.Fatalf("firmware event %s: %v", ev.data, err)
				}
				if up.Lamp != "kitchen" {
					t.Fatalf("firmware event for %q", up.Lamp)
				}
				if len(states) == 0 || states[len(states)-1] != up.State {
					states = append(states, up.State)
				}
				if len(states) > 10 {
					t.Fatalf("no end to the update steps: %v", states)
				}
			}
			// The server may see the end of its own answer after the lamp is back
			// (a real lamp flashes for seconds first), so "downloaded" may be skipped.
			full := []string{rollout.StateAsked, rollout.StateDownloading, rollout.StateDownloaded, rollout.StateBack}
			short := []string{rollout.StateAsked, rollout.StateDownloading, rollout.StateBack}
			if !slices.Equal(states, full) && !slices.Equal(states, short) {
				t.Errorf("the stream showed %v, want %v", states, full)
			}

			// GET /api/firmware tells the same, with every byte counted once the
			// download's end has been seen.
			var got rollout.Update
			for range 200 {
				var st struct {
					Updates []rollout.Update `json:"updates"`
				}
				if err := json.Unmarshal([]byte(e.call(t, http.MethodGet, "/api/firmware", "").body), &st); err != nil {
					t.Fatal(err)
				}
				if len(st.Updates) != 1 {
					t.Fatalf("updates %+v", st.Updates)
				}
				if got = st.Updates[0]; got.Sent == int64(len(img)) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got.Lamp != "kitchen" || got.State != rollout.StateBack || got.Version != "1.3.0" || got.BackAt == nil ||
				got.Sent != int64(len(img)) || got.Total != int64(len(img)) || got.RunningVersion != wantRunning {
				t.Errorf("the lamp's update: %+v", got)
			}
		})
	}
}
