package binlog

import "time"

// Observer is an optional Handler extension for source-level telemetry: a
// Handler that implements it hears about every event read (size and server
// timestamp), every heartbeat, and every connection and disconnection. Its
// methods are called on the reading goroutine and must not block.
type Observer interface {
	EventRead(size uint32, ts time.Time)
	Heartbeat()
	Connected()
	Disconnected(err error)
}

func observerOf(h Handler) Observer {
	if th, ok := h.(*trackingHandler); ok {
		h = th.h
	}
	o, _ := h.(Observer)
	return o
}
