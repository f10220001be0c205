package web

import "time"

// previewClockText is the preview's end for the page without script.
func previewClockText(ends *time.Time) string {
	if ends == nil {
		return ""
	}
	return ends.Local().Format("15:04:05")
}
