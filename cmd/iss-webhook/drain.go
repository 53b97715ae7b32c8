package main

import (
	"errors"
	"net/http"
	"sync/atomic"

	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// drain is the state of the shutdown delay. From SIGTERM on, the webhook reports not ready and
// answers every review with "Connection: close", so that the API server takes its next review
// to a new connection, which the Service sends to a replica that is not shutting down.
//
// Why not only wait: the API server keeps its HTTP/1.1 connections to the Service open, and
// they stay with this pod however long it drains. When the server stops it closes those that
// are idle, and a review the API server has just started writing on one of them fails ("use of
// closed network connection", "EOF"): the API server does not retry a webhook call, and under
// failurePolicy Fail the object is refused. A connection the API server closes itself after an
// answer carries no such race.
type drain struct {
	draining atomic.Bool
}

// start begins the drain: the readiness check fails and answers ask to close the connection.
func (d *drain) start() { d.draining.Store(true) }

// readyz is the readiness check that fails while draining.
func (d *drain) readyz(*http.Request) error {
	if d.draining.Load() {
		return errShuttingDown
	}
	return nil
}

// server wraps s so that every handler registered on it answers "Connection: close" while
// draining.
func (d *drain) server(s ctrlwebhook.Server) ctrlwebhook.Server {
	return drainingServer{Server: s, drain: d}
}

// errShuttingDown is the readiness check's failure while draining.
var errShuttingDown = errors.New("shutting down")

// drainingServer is a webhook server whose handlers close their connection while draining.
type drainingServer struct {
	ctrlwebhook.Server
	drain *drain
}

// Register registers hook, wrapped, on the server.
func (s drainingServer) Register(path string, hook http.Handler) {
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.drain.draining.Load() {
			// net/http closes the connection after a response with this header.
			w.Header().Set("Connection", "close")
		}
		hook.ServeHTTP(w, r)
	}))
}
