package devenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Recorder is a TLS reverse proxy in front of the webhook that appends every AdmissionReview the
// API server sends, with the webhook's answer, to a file of JSON lines (one Review each). It
// serves on the address of the registered webhook configurations with their serving
// certificate, so the API server sees the same endpoint, certificate and answers as without it.
type Recorder struct {
	srv *http.Server

	mu      sync.Mutex // guards backend
	backend string     // host:port of the webhook now

	writeMu sync.Mutex // keeps concurrent reviews from interleaving their lines
	out     *os.File
}

// Review is one line of the record file.
type Review struct {
	// Path is the URL path the API server called, which selects the webhook's handler.
	Path string `json:"path"`
	// Request is the .request of the AdmissionReview the API server sent, as sent.
	Request json.RawMessage `json:"request"`
	// Response is the .response of the webhook's AdmissionReview, null when it sent none.
	Response json.RawMessage `json:"response"`
	// Status is the HTTP status code the API server received.
	Status int `json:"status"`
}

// StartRecorder listens with TLS on addr, with tls.crt and tls.key of certDir, forwards to the
// webhook at SetBackend's address and appends the reviews to recordFile.
func StartRecorder(addr, certDir, recordFile string) (*Recorder, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return nil, fmt.Errorf("loading the serving certificate: %w", err)
	}
	out, err := os.OpenFile(recordFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		out.Close()
		return nil, err
	}
	r := &Recorder{out: out}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Path and query (the API server's ?timeout=) are kept; only the address changes.
			pr.SetURL(&url.URL{Scheme: "https", Host: r.Backend()})
		},
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback only; in self-signed mode the webhook serves a certificate of its own
			ForceAttemptHTTP2: true,
		},
		ModifyResponse: r.record,
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			// As the default handler answers (the webhook is down, say during a restart), and
			// recorded: the API server sees the review fail.
			fmt.Fprintf(os.Stderr, "forwarding a review of %s: %v\n", req.URL.Path, err)
			r.write(req, nil, http.StatusBadGateway)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	r.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { proxy.ServeHTTP(w, withBody(req)) }),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { _ = r.srv.ServeTLS(l, "", "") }()
	return r, nil
}

// SetBackend sets the host:port of the webhook that reviews go to from now on.
func (r *Recorder) SetBackend(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.backend = addr
}

// Backend returns the host:port of the webhook that reviews go to.
func (r *Recorder) Backend() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.backend
}

// Close stops serving, after in-flight reviews finish or ctx ends, and closes the record file.
func (r *Recorder) Close(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	return errors.Join(err, r.out.Close())
}

type requestBodyKey struct{}

// withBody reads the request body and puts it back unchanged, keeping a copy in the request's
// context, which the outbound request shares, for record.
func withBody(req *http.Request) *http.Request {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		// Forwarded as far as it was read; the webhook rejects the truncated review.
		body = nil
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return req.WithContext(context.WithValue(req.Context(), requestBodyKey{}, body))
}

// record reads the webhook's answer, puts it back unchanged for the API server, and appends the
// review.
func (r *Recorder) record(resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var review struct {
		Response json.RawMessage `json:"response"`
	}
	_ = json.Unmarshal(body, &review) // an answer that is not a review is recorded as null
	r.write(resp.Request, review.Response, resp.StatusCode)
	return nil
}

// write appends one Review line. A review that cannot be recorded is reported on stderr and
// still forwarded: the suite's outcome must not depend on the record.
func (r *Recorder) write(req *http.Request, response json.RawMessage, status int) {
	body, _ := req.Context().Value(requestBodyKey{}).([]byte)
	var review struct {
		Request json.RawMessage `json:"request"`
	}
	_ = json.Unmarshal(body, &review)
	line, err := json.Marshal(Review{Path: req.URL.Path, Request: review.Request, Response: response, Status: status})
	if err != nil {
		fmt.Fprintf(os.Stderr, "recording a review of %s: %v\n", req.URL.Path, err)
		return
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	// One write per line to an unbuffered file: each line is on disk before the API server has
	// its answer.
	if _, err := r.out.Write(append(line, '\n')); err != nil {
		fmt.Fprintf(os.Stderr, "recording a review of %s: %v\n", req.URL.Path, err)
	}
}
