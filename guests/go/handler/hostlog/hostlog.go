// Package hostlog writes lines to the host's log, tagged with the app name
// and the request id. The host's log filter decides which levels are
// written; embedded newlines stay escaped, so one call is one record.
package hostlog

import (
	"fmt"

	wit "serverless-wasm/guests/go/handler/internal/wit/serverless_wasm_platform_log"
)

// Level is how important a line is.
type Level = wit.Level

// The levels, from the least to the most important.
const (
	LevelTrace Level = wit.LevelTrace
	LevelDebug Level = wit.LevelDebug
	LevelInfo  Level = wit.LevelInfo
	LevelWarn  Level = wit.LevelWarn
	LevelError Level = wit.LevelError
)

// Log writes message at level.
func Log(level Level, message string) { wit.Log(level, message) }

// Logf writes a line formatted as by fmt.Sprintf at level.
func Logf(level Level, format string, args ...any) {
	wit.Log(level, fmt.Sprintf(format, args...))
}

// Tracef logs at trace level.
func Tracef(format string, args ...any) { Logf(LevelTrace, format, args...) }

// Debugf logs at debug level.
func Debugf(format string, args ...any) { Logf(LevelDebug, format, args...) }

// Infof logs at info level.
func Infof(format string, args ...any) { Logf(LevelInfo, format, args...) }

// Warnf logs at warn level.
func Warnf(format string, args ...any) { Logf(LevelWarn, format, args...) }

// Errorf logs at error level.
func Errorf(format string, args ...any) { Logf(LevelError, format, args...) }
