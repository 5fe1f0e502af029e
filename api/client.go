package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"

	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/mirror"
)

// ErrNoDaemon: nothing answers on the socket.
var ErrNoDaemon = errors.New("no mirrord daemon answers on the socket")

// Client talks to a running daemon over its unix socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path that trusts only a
// server running as root or as the client's own user; nothing is dialled
// until a request is made.
func NewClient(path string) *Client { return NewClientFor(path, -1) }

// NewClientFor returns a client for the socket at path that trusts a
// server running as root or as owner (the store's owner: StoreOwner), or,
// when owner is negative, as the client's own user. Every connection is
// checked (TrustPeer on its SO_PEERCRED), so a request never reaches
// another user's process bound at that path: it fails with ErrUntrusted.
func NewClientFor(path string, owner int) *Client {
	self := os.Geteuid()
	return &Client{path: path, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, err
			}
			uid, err := PeerUID(conn)
			if err == nil {
				err = TrustPeer(uid, owner, self)
			}
			if err != nil {
				conn.Close()
				return nil, fmt.Errorf("socket %s: %w", path, err)
			}
			return conn, nil
		},
	}}}
}

// Path returns the socket's path.
func (c *Client) Path() string { return c.path }

// Close releases the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	u := "http://mirrord" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w (%s): %v", ErrNoDaemon, c.path, op.Err)
		}
		var ue *url.Error
		if errors.Is(err, ErrUntrusted) && errors.As(err, &ue) {
			return nil, ue.Err // "socket …: … runs as uid …", not a URL
		}
		return nil, err
	}
	return resp, nil
}

// responseError turns an error response into an error.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e errorBody
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		if resp.Header.Get(startingHeader) != "" {
			return startingError(e.Error)
		}
		return errors.New(e.Error)
	}
	return fmt.Errorf("daemon answered %s", resp.Status)
}

// startingError is a starting daemon's answer: its message, matching
// ErrStarting.
type startingError string

func (e startingError) Error() string { return string(e) }
func (e startingError) Unwrap() error { return ErrStarting }

func (c *Client) getJSON(ctx context.Context, method, path string, q url.Values, dst any) error {
	resp, err := c.do(ctx, method, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(resp)
	}
	return json.NewDecoder(resp.Body).Decode(dst)
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var s StatusResponse
	return &s, c.getJSON(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Get returns the value stored under key; found is false when there is
// none.
func (c *Client) Get(ctx context.Context, key string) (json.RawMessage, bool, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/get", url.Values{"key": {key}})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		b, err := io.ReadAll(resp.Body)
		return b, err == nil, err
	case http.StatusNotFound:
		if resp.Header.Get(missingHeader) != "" {
			return nil, false, nil
		}
	}
	return nil, false, responseError(resp)
}

// Stream calls fn with each line of /v1/keys (values false: a JSON
// string) or /v1/dump (values true: {"key":…,"value":…}), newline
// included, for every key that starts with prefix, as the lines arrive.
func (c *Client) Stream(ctx context.Context, values bool, prefix string, fn func(line []byte) error) error {
	path := "/v1/keys"
	if values {
		path = "/v1/dump"
	}
	resp, err := c.do(ctx, http.MethodGet, path, url.Values{"prefix": {prefix}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(resp)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if bytes.HasPrefix(line, []byte(`{"error":`)) {
			var e errorBody
			_ = json.Unmarshal(line, &e)
			return errors.New(e.Error)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("the daemon's stream ended in the middle of a line (%d bytes)", len(line))
			}
			return err
		}
		if ferr := fn(line); ferr != nil {
			return ferr
		}
	}
}

// Verify compares the daemon's store with the log it has mirrored.
func (c *Client) Verify(ctx context.Context) (*mirror.Report, error) {
	var r mirror.Report
	return &r, c.getJSON(ctx, http.MethodPost, "/v1/verify", nil, &r)
}

// Generators returns the status of the daemon's generators.
func (c *Client) Generators(ctx context.Context) ([]generators.Status, error) {
	var gs []generators.Status
	return gs, c.getJSON(ctx, http.MethodGet, "/v1/generators", nil, &gs)
}

// Rebuild resets one generator in the daemon and waits for its rebuild.
func (c *Client) Rebuild(ctx context.Context, name string) (*generators.Status, error) {
	var s generators.Status
	return &s, c.getJSON(ctx, http.MethodPost, "/v1/generators/rebuild", url.Values{"name": {name}}, &s)
}
