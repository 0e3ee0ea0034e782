package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// selfTokenTTL bounds the token Main mints for its own in-process clients
// (uvr run --demo, uvr bench ingest).
const selfTokenTTL = time.Hour

// validateAuth is the auth part of Config.Validate.
func (cfg Config) validateAuth() []error {
	var errs []error
	if cfg.AuthSecret != "" && len(cfg.AuthSecret) < 32 {
		errs = append(errs, errors.New("--auth-secret (UVR_AUTH_SECRET) must be at least 32 characters"))
	}
	if cfg.TokenTTL <= 0 {
		errs = append(errs, errors.New("--token-ttl must be positive"))
	}
	if (cfg.AdminEmail == "") != (cfg.AdminPassword == "") {
		errs = append(errs, errors.New("UVR_ADMIN_EMAIL and UVR_ADMIN_PASSWORD go together: set both or neither"))
	}
	return errs
}

// openAccess opens the user store on its compacted topic and creates the
// admin from the configuration on the first start (an existing user of that
// email is left as it is).
func (m *Main) openAccess(ctx, runCtx context.Context) error {
	cfg := m.Config
	topic := cfg.topicNames().Users
	table, err := m.openTable(ctx, runCtx, topic)
	if err != nil {
		return err
	}
	m.access, err = openAccessStore(ctx, table, cfg, m.vault, m.Logger, m.Registry)
	if err != nil {
		return err
	}
	if cfg.AdminEmail == "" {
		return nil
	}
	u, created, err := m.access.EnsureUser(ctx, access.NewUser{Email: cfg.AdminEmail, Password: cfg.AdminPassword, Role: access.RoleAdmin})
	if err != nil {
		return fmt.Errorf("create the admin user from UVR_ADMIN_EMAIL: %w", err)
	}
	if created {
		m.Logger.Info("admin user created; log in as "+u.Email, "user_id", u.ID)
	} else {
		m.Logger.Info("admin user exists; log in as "+u.Email, "user_id", u.ID)
	}
	return nil
}

// openAccessStore opens the store on table with the configured secret,
// token lifetime and sealer (openSealer; v is the Vault connection when
// VAULT_ADDR is set).
func openAccessStore(ctx context.Context, table access.Table, cfg Config, v *credentials.Vault, log *slog.Logger, reg prometheus.Registerer) (*access.Store, error) {
	sealer, sealedWith, err := openSealer(cfg, v, log)
	if err != nil {
		return nil, err
	}
	store, err := access.New(access.Config{
		Table: table, Sealer: sealer, Secret: []byte(cfg.AuthSecret), TokenTTL: cfg.TokenTTL, Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	if err := store.Open(ctx); err != nil {
		return nil, fmt.Errorf("open the user store on %s, sealed with %s: %w", cfg.topicNames().Users, sealedWith, err)
	}
	return store, nil
}

// openSealer is what seals the secret material of the users topic: the
// store of service credentials, so one secret store guards both. With Vault,
// its transit key (the key never leaves Vault); else the local AES-256 key
// (UVR_ENCRYPTION_KEY or its key file). It also says which, naming the
// settings, for the error of a key that does not open the topic.
func openSealer(cfg Config, v *credentials.Vault, log *slog.Logger) (access.Sealer, string, error) {
	if v != nil {
		t, err := v.Transit(credentials.TransitConfig{Mount: cfg.VaultTransitMount, Key: cfg.VaultTransitKey})
		if err != nil {
			return nil, "", fmt.Errorf("--vault-transit-key, --vault-transit-mount: %w", err)
		}
		return t, fmt.Sprintf("the Vault transit key %s of mount %s at %s (UVR_VAULT_TRANSIT_KEY, UVR_VAULT_TRANSIT_MOUNT, VAULT_ADDR)",
			cfg.VaultTransitKey, cfg.VaultTransitMount, cfg.VaultAddr), nil
	}
	lc, err := cfg.localCredentials(log)
	if err != nil {
		return nil, "", err
	}
	s, err := credentials.NewLocalSealer(lc)
	if err != nil {
		return nil, "", fmt.Errorf("the key sealing the users topic: %w", err)
	}
	what := "the key file " + filepath.Join(lc.Dir, credentials.LocalKeyName) + " (set UVR_ENCRYPTION_KEY to give the key instead)"
	if lc.Key != nil {
		what = "the key of UVR_ENCRYPTION_KEY"
	}
	return s, what, nil
}

// selfToken is a short-lived admin token for this process's own clients
// (never printed).
func (m *Main) selfToken() (string, error) {
	if m.access == nil {
		return "", errors.New("the API is not running in this process")
	}
	return m.access.SystemToken(selfTokenTTL)
}

func userCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the users who may log in to the API",
	}
	cmd.AddCommand(userCreateCommand(cfg, logger))
	cmd.AddCommand(userChangeCommand(cfg, logger, "role", "Change a user's role (admin, analyst or viewer)"))
	cmd.AddCommand(userChangeCommand(cfg, logger, "deactivate", "Deactivate a user: its tokens, session and API keys stop working at once"))
	cmd.AddCommand(userChangeCommand(cfg, logger, "activate", "Reactivate a deactivated user"))
	cmd.AddCommand(userChangeCommand(cfg, logger, "delete", "Delete a user and revoke the API keys it created"))
	return cmd
}

// withUserStore runs do on the user store of the users topic of the
// configured brokers (without --kafka-brokers: the embedded broker of a
// running "uvr run"), within 30 seconds: for the user commands.
func withUserStore(cmd *cobra.Command, cfg Config, log *slog.Logger, do func(ctx context.Context, store *access.Store) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	brokers := cfg.KafkaBrokers
	if len(brokers) == 0 {
		brokers = []string{cfg.EmbeddedKafkaAddr}
	}
	if err := prepareTopics(ctx, cfg, brokers, log); err != nil {
		return err
	}
	var v *credentials.Vault
	if cfg.VaultAddr != "" {
		var err error
		if v, err = cfg.vault(ctx, log, nil); err != nil {
			return err
		}
		defer v.Close()
	}
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Security: cfg.KafkaSecurity, Topic: cfg.topicNames().Users, Partitions: 1, Logger: log})
	if err != nil {
		return err
	}
	defer table.Close()
	store, err := openAccessStore(ctx, table, cfg, v, log, nil)
	if err != nil {
		return fmt.Errorf("%w (brokers %s)", err, strings.Join(brokers, ","))
	}
	return do(ctx, store)
}

// userChangeCommand is "uvr user role|deactivate|activate|delete": the
// store's rules apply as through the API (the last active admin stays).
func userChangeCommand(cfg *Config, logger func() *slog.Logger, verb, short string) *cobra.Command {
	var email, role string
	use := verb + " --email EMAIL"
	if verb == "role" {
		use += " --role admin|analyst|viewer"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `, in the user store on Kafka every API instance reads. It applies to the
user's next request on every instance. The last active admin cannot be demoted, deactivated
or deleted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withUserStore(cmd, *cfg, logger(), func(ctx context.Context, store *access.Store) error {
				u, err := store.UserByEmail(ctx, email)
				if err != nil {
					return userError(err)
				}
				switch verb {
				case "role":
					u, err = store.SetRole(ctx, u.ID, access.Role(role))
				case "deactivate", "activate":
					u, err = store.SetActive(ctx, u.ID, verb == "activate")
				case "delete":
					err = store.DeleteUser(ctx, u.ID)
				}
				if err != nil {
					return userError(err)
				}
				if verb == "delete" {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "user deleted: %s (%s)\n", u.Email, u.ID)
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s): role %s, active %t\n", u.Email, u.ID, u.Role, u.Active)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "the user's email (required)")
	_ = cmd.MarkFlagRequired("email")
	if verb == "role" {
		cmd.Flags().StringVar(&role, "role", "", "admin (may write), analyst or viewer (read only)")
		_ = cmd.MarkFlagRequired("role")
	}
	return cmd
}

func userCreateCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	var (
		email, password, role, fullName string
		passwordStdin                   bool
	)
	cmd := &cobra.Command{
		Use:   "create --email EMAIL (--password PASSWORD | --password-stdin) [--role admin|analyst|viewer]",
		Short: "Create a user in the user store on Kafka (the first admin, typically)",
		Long: `create writes a user to the compacted users topic every API instance reads.
Without --kafka-brokers it uses the embedded broker of a running "uvr run"
(--embedded-kafka-addr). The password hash is sealed with the key of the API instances: run it
with their VAULT_* settings, or their UVR_ENCRYPTION_KEY (or --data-dir, whose key file a single
"uvr run" uses). Prefer --password-stdin: a --password stays in the shell history.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if passwordStdin {
				if password != "" {
					return errors.New("--password and --password-stdin: give only one")
				}
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("--password-stdin: read the password: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			}
			r := access.Role(role)
			if !r.Valid() {
				return fmt.Errorf("--role must be admin, analyst or viewer, got %q", role)
			}
			return withUserStore(cmd, *cfg, logger(), func(ctx context.Context, store *access.Store) error {
				u, err := store.Register(ctx, access.NewUser{Email: email, Password: password, FullName: fullName, Role: r})
				if err != nil {
					return userError(err)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "user created: %s (%s, role %s)\n", u.Email, u.ID, u.Role)
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&email, "email", "", "the user's email, used to log in (required)")
	fs.StringVar(&password, "password", "", "the password, at least 8 characters")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.StringVar(&role, "role", string(access.RoleAdmin), "admin (may write), analyst or viewer (read only)")
	fs.StringVar(&fullName, "full-name", "", "the user's name")
	_ = cmd.MarkFlagRequired("email")
	return cmd
}

// userError names the flag at fault for a rejected user.
func userError(err error) error {
	var ae *access.Error
	if errors.As(err, &ae) && ae.Field != "" {
		return fmt.Errorf("--%s: %s", strings.ReplaceAll(ae.Field, "_", "-"), ae.Message)
	}
	return fmt.Errorf("user: %w", err)
}
