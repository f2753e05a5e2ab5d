package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Log formats accepted by NewLogger.
const (
	LogFormatAuto = "auto" // text on a terminal, JSON otherwise (also "")
	LogFormatJSON = "json"
	LogFormatText = "text"
)

// NewLogger returns a slog logger writing to w. format is "json", "text" or
// "auto"/"" (readable text when w is a terminal, JSON otherwise); level is
// "debug", "info" (also ""), "warn" or "error", case-insensitive.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(strings.TrimSpace(format)) {
	case LogFormatJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case LogFormatText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "", LogFormatAuto:
		if IsTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q is not supported: use json, text or auto", format)
}

// ParseLevel parses a log level name.
func ParseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not supported: use debug, info, warn or error", level)
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
