package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/uvrhq/uvr/connectors/airbyte"
	"github.com/uvrhq/uvr/connectors/ingest"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

func importCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import data another tool recorded (Airbyte)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(importAirbyteCommand(cfg, logger))
	return cmd
}

type importOptions struct {
	URL       string
	Token     string
	Source    string
	Mapping   string
	Brokers   []string
	BatchSize int
}

func importAirbyteCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	opts := importOptions{URL: "http://127.0.0.1:8000", BatchSize: 1000}
	cmd := &cobra.Command{
		Use:   "airbyte (--source VENDOR | --mapping FILE) [FILE|-]...",
		Short: "Import Airbyte records (a connector's output or expected_records.jsonl) into uvr",
		Long: `airbyte reads Airbyte protocol messages, one JSON object per line — the output of
any source connector's read, or bare records {"stream","data","emitted_at"} as in a
connector's expected_records.jsonl — from the files given, or standard input ("-" or
none), maps the records with a vendor's mapper (--source stripe|chargebee|braintree|
recurly|paddle) or a declarative mapping file (--mapping, see docs/connectors/mapping.md),
and publishes the events: to a running uvr through its API (--url, default), or
straight to Kafka with --brokers. Event ids are deterministic in the records, so
importing the same file again changes no total.

Records the mapper rejects are skipped and listed in the summary; a line that is not
an Airbyte message stops the import with the file and line at fault.`,
		Example: `  uvr import airbyte --source stripe expected_records.jsonl
  source-faker read --config c.json --catalog cat.json | uvr import airbyte --mapping faker.yaml -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImportAirbyte(cmd.Context(), *cfg, opts, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), logger())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Source, "source", "", "vendor whose mapper maps the records: "+strings.Join(airbyte.Vendors(), ", "))
	fs.StringVar(&opts.Mapping, "mapping", "", "declarative mapping file (YAML or JSON) instead of --source")
	fs.StringVar(&opts.URL, "url", opts.URL, "base URL of the uvr API")
	withEnv(fs, "url", "UVR_URL")
	fs.StringVar(&opts.Token, "token", "", "API token or key")
	withEnv(fs, "token", "UVR_TOKEN")
	fs.StringSliceVar(&opts.Brokers, "brokers", nil, "publish straight to these Kafka brokers (the --events-topic) instead of the API")
	fs.IntVar(&opts.BatchSize, "batch-size", opts.BatchSize, "events per request or Kafka publish")
	return cmd
}

func runImportAirbyte(ctx context.Context, cfg Config, opts importOptions, args []string, stdin io.Reader, out, errOut io.Writer, log *slog.Logger) error {
	log = log.With("component", "import", "format", "airbyte")
	var mapper source.Mapper
	var err error
	switch {
	case opts.Source != "" && opts.Mapping != "":
		return errors.New("give --source or --mapping, not both")
	case opts.Source != "":
		mapper, err = airbyte.VendorMapper(opts.Source)
	case opts.Mapping != "":
		mapper, err = airbyte.LoadMapping(opts.Mapping)
	default:
		return fmt.Errorf("give --source (%s) or --mapping FILE", strings.Join(airbyte.Vendors(), ", "))
	}
	if err != nil {
		return err
	}
	if opts.BatchSize < 1 {
		return errors.New("--batch-size must be at least 1")
	}
	if len(args) == 0 {
		args = []string{"-"}
	}

	publish, closePublisher, err := importPublisher(ctx, cfg, opts, log)
	if err != nil {
		return err
	}
	defer closePublisher()

	im, err := airbyte.NewImporter(airbyte.ImporterConfig{Mapper: mapper, Publish: publish, BatchSize: opts.BatchSize})
	if err != nil {
		return err
	}
	start := time.Now()
	for _, name := range args {
		if err := importOne(ctx, im, name, stdin, errOut); err != nil {
			return err
		}
	}
	if err := im.Flush(ctx); err != nil {
		return err
	}
	summary := im.Summary()
	log.Info("airbyte import done", "records", summary.Records, "events", summary.Published, "skipped", summary.Skipped, "duration", time.Since(start))
	_, err = fmt.Fprint(out, summary.String())
	return err
}

// importPublisher returns where the events go: the uvr API, or Kafka.
func importPublisher(ctx context.Context, cfg Config, opts importOptions, log *slog.Logger) (func(context.Context, []event.Event) error, func(), error) {
	if len(opts.Brokers) == 0 {
		client, err := ingest.New(ingest.Config{URL: opts.URL, Token: opts.Token, BatchSize: opts.BatchSize})
		if err != nil {
			return nil, nil, err
		}
		return client.Send, func() {}, nil
	}
	topic := cfg.EventsTopic
	if err := prepareTopics(ctx, cfg, opts.Brokers, log); err != nil {
		return nil, nil, err
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: opts.Brokers, Security: cfg.KafkaSecurity, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	publish := func(ctx context.Context, events []event.Event) error {
		msgs, err := event.Messages(events)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			m.SetContext(ctx)
		}
		return pub.Publish(topic, msgs...)
	}
	return publish, func() { _ = pub.Close() }, nil
}

// importOne imports one file ("-" is standard input) with a progress bar
// of the bytes read.
func importOne(ctx context.Context, im *airbyte.Importer, name string, stdin io.Reader, errOut io.Writer) error {
	var r io.Reader
	size := int64(-1)
	display := name
	if name == "-" {
		r, display = stdin, "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		r = f
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(errOut),
		progressbar.OptionSetDescription(display),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(errOut) }),
	)
	if err := im.ImportFile(ctx, display, io.TeeReader(r, bar)); err != nil {
		_ = bar.Clear() // the error line goes where the bar was
		return err
	}
	return bar.Finish()
}
