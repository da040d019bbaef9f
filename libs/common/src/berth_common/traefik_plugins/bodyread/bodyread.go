// Package bodyread is a Traefik middleware (a local plugin run by Traefik's interpreter) that reads a
// request body of known length, up to MaxBytes, whole before the request goes on to the application.
//
// Why: Go's HTTP/1 server drains and closes a request body when the handler starts its answer, and Go's
// transport, after sending the body's Content-Length bytes to the application, reads the body once more
// to check that nothing follows. When the goroutine sending the body is slow (a busy machine) and the
// application has already answered, that read fails on the closed body and the transport closes its
// connection to the application while Traefik is still copying the answer: the client gets a cut answer
// (golang/go#40747). A body read here first is sent from memory, so the server's close touches nothing
// the transport reads. Answers are not touched: they stream as before. Bodies of unknown length
// (chunked) or over MaxBytes go on unread, as streamed uploads must.
package bodyread

import (
	"bytes"
	"context"
	"io"
	"net/http"
)

// Config is the middleware's configuration.
type Config struct {
	MaxBytes int64 `json:"maxBytes,omitempty"`
}

// CreateConfig is the configuration before the dynamic configuration's values are applied.
func CreateConfig() *Config {
	return &Config{MaxBytes: 1 << 20}
}

type bodyRead struct {
	next     http.Handler
	maxBytes int64
}

// New makes the middleware in front of next.
func New(_ context.Context, next http.Handler, config *Config, _ string) (http.Handler, error) {
	return &bodyRead{next: next, maxBytes: config.MaxBytes}, nil
}

func (b *bodyRead) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if req.ProtoMajor == 1 && req.Body != nil && req.ContentLength > 0 && req.ContentLength <= b.maxBytes {
		buf := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, buf); err != nil {
			// the client sent less than it announced: nothing whole to forward
			http.Error(rw, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(buf))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	}
	b.next.ServeHTTP(rw, req)
}
