// Package ingest sends v1 events to a running uvr through its HTTP API
// (POST /api/events), the way every connector that runs outside the server
// (uvr demo, uvr import) delivers what it reads.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Config of a Client.
type Config struct {
	URL       string        // base URL of the uvr API, e.g. http://127.0.0.1:8000
	Token     string        // bearer token or API key; empty sends none
	BatchSize int           // events per request, default 1000
	Timeout   time.Duration // per request, default 60s
	Retries   int           // attempts after a 5xx or a network error, default 5
	HTTP      *http.Client  // default: a client with Timeout
}

// Client posts batches of events. Safe for concurrent use.
type Client struct {
	cfg Config
}

// New checks the configuration and fills defaults.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("ingest: URL is required")
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("ingest: URL %q must start with http:// or https://", cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: cfg.Timeout}
	}
	return &Client{cfg: cfg}, nil
}

// BatchSize is the number of events Send puts in one request.
func (c *Client) BatchSize() int { return c.cfg.BatchSize }

// RejectedError is a 4xx answer: the events will never be accepted as they
// are, so retrying is pointless. Detail is the server's explanation.
type RejectedError struct {
	Status int
	Detail string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("uvr rejected the events (HTTP %d): %s", e.Status, e.Detail)
}

// Send posts events in batches of BatchSize. It returns after the server
// acknowledged every batch (202: Kafka has them). A 5xx or a network error
// is retried with backoff; the batches are idempotent downstream, so a retry
// after an unclear failure never counts an event twice.
func (c *Client) Send(ctx context.Context, events []event.Event) error {
	for start := 0; start < len(events); start += c.cfg.BatchSize {
		end := min(start+c.cfg.BatchSize, len(events))
		if err := c.sendBatch(ctx, events[start:end]); err != nil {
			return fmt.Errorf("send events %d-%d: %w", start, end-1, err)
		}
	}
	return nil
}

func (c *Client) sendBatch(ctx context.Context, events []event.Event) error {
	body, err := event.MarshalBatch(events)
	if err != nil {
		return err
	}

	backoff := 200 * time.Millisecond
	var lastErr error
	for attempt := 0; attempt <= c.cfg.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(ctx.Err(), lastErr)
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
		lastErr = c.post(ctx, body)
		var rejected *RejectedError
		if lastErr == nil || errors.As(lastErr, &rejected) || ctx.Err() != nil {
			return lastErr
		}
	}
	return lastErr
}

func (c *Client) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL+"/api/events", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w", c.cfg.URL, err)
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusAccepted {
		return nil
	}
	detail := strings.TrimSpace(string(respBody))
	var parsed struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(respBody, &parsed) == nil && parsed.Detail != "" {
		detail = parsed.Detail
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		return &RejectedError{Status: resp.StatusCode, Detail: detail}
	}
	return fmt.Errorf("uvr answered HTTP %d: %s", resp.StatusCode, detail)
}
