package access

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// User administration: an admin changes a user's role, deactivates,
// reactivates or deletes a user. Each change is one record written to the
// users topic (a new version of the user, or a tombstone for a delete), so
// every instance, and every replay of the topic, ends with the same users.
//
// A change applies to the next request on this instance (Authenticate reads
// the user at every call): the tokens and the session of a deactivated or
// deleted user are refused at once; other instances refuse them as soon as
// their table has read the change.
//
// The last active admin cannot be demoted, deactivated or deleted
// (KindConflict): the instance could not be administered any more. The check
// runs under this instance's lock after reading the topic to its end; two
// admins changed at the very same moment on two instances could still leave
// none, which `uvr user role --email … --role admin` (writing to the topic
// directly) repairs.

// ListUsers returns every user, oldest first, without password hashes.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return nil, unavailable(err)
	}
	recs := s.userRecords()
	out := make([]User, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.user())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// UserByEmail returns the user with email (any case): for the CLI, which
// names users by email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return User{}, unavailable(err)
	}
	rec, ok := s.findByEmail(strings.ToLower(strings.TrimSpace(email)))
	if !ok {
		return User{}, &Error{Kind: KindNotFound, Field: "email", Message: "no user with this email"}
	}
	return rec.user(), nil
}

// UserChange is what UpdateUser changes; nil fields are left as they are.
type UserChange struct {
	Role   *Role
	Active *bool
}

// SetRole changes a user's role. Demoting the last active admin is
// KindConflict.
func (s *Store) SetRole(ctx context.Context, id string, role Role) (User, error) {
	return s.UpdateUser(ctx, id, UserChange{Role: &role})
}

// SetActive activates or deactivates a user; a deactivated user's tokens,
// session and API keys stop working on this instance before SetActive
// returns (and work again when it is reactivated). Deactivating the last
// active admin is KindConflict.
func (s *Store) SetActive(ctx context.Context, id string, active bool) (User, error) {
	return s.UpdateUser(ctx, id, UserChange{Active: &active})
}

// UpdateUser applies change to user id as one new version of the user,
// unless it would leave no active admin (KindConflict).
func (s *Store) UpdateUser(ctx context.Context, id string, change UserChange) (User, error) {
	if change.Role != nil && !change.Role.Valid() {
		return User{}, invalid("role", "role must be admin, analyst or viewer")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return User{}, unavailable(err)
	}
	rec, ok := s.userByID(id)
	if !ok {
		return User{}, &Error{Kind: KindNotFound, Message: "no such user"}
	}
	before := rec
	if change.Role != nil {
		rec.Role = *change.Role
	}
	if change.Active != nil {
		rec.Active = *change.Active
	}
	if before.activeAdmin() && !rec.activeAdmin() {
		verb := "deactivated"
		if rec.Role != RoleAdmin {
			verb = "demoted"
		}
		if err := s.keepAnAdmin(id, verb); err != nil {
			return User{}, err
		}
	}
	if rec == before {
		return rec.user(), nil
	}
	if err := s.putUser(ctx, rec); err != nil {
		return User{}, err
	}
	s.log.Info("user changed", "user_id", id, "role", string(rec.Role), "active", rec.Active)
	return rec.user(), nil
}

// DeleteUser removes a user (a tombstone on the topic: a replay or a restart
// does not bring it back) and revokes the API keys it created: a person who
// leaves takes no working key along. Deleting the last active admin is
// KindConflict.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return unavailable(err)
	}
	rec, ok := s.userByID(id)
	if !ok {
		return &Error{Kind: KindNotFound, Message: "no such user"}
	}
	if rec.activeAdmin() {
		if err := s.keepAnAdmin(id, "deleted"); err != nil {
			return err
		}
	}
	// The user first: its keys already stop working with it (authenticateKey
	// checks the creator), so a failure between the writes leaves no gap.
	if err := s.cfg.Table.Delete(ctx, userKeyPrefix+id); err != nil {
		return unavailable(fmt.Errorf("delete user %s: %w", id, err))
	}
	for _, k := range s.keyRecords() {
		if k.rec.CreatedBy != id {
			continue
		}
		if err := s.cfg.Table.Delete(ctx, k.tableKey); err != nil {
			return unavailable(fmt.Errorf("revoke API key %s of deleted user %s: %w", k.rec.ID, id, err))
		}
	}
	s.log.Info("user deleted", "user_id", id)
	return nil
}

// keepAnAdmin refuses a change that would take away the last active admin
// other than id.
func (s *Store) keepAnAdmin(id, verb string) error {
	for _, r := range s.userRecords() {
		if r.ID != id && r.activeAdmin() {
			return nil
		}
	}
	return &Error{Kind: KindConflict, Message: "the last active admin cannot be " + verb + ": make another user an admin first"}
}

func (r userRecord) activeAdmin() bool { return r.Active && r.Role == RoleAdmin }

func (s *Store) userRecords() []userRecord {
	_, recs := records[userRecord](s, userKeyPrefix, "user")
	return recs
}

// records decodes every record under prefix, with its table key; an
// unreadable one is logged (what names its kind) and skipped, so that it
// cannot hide the others.
func records[T any](s *Store, prefix, what string) (keys []string, recs []T) {
	for key, raw := range s.cfg.Table.All() {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		var rec T
		if err := json.Unmarshal(raw, &rec); err != nil {
			s.log.Warn("unreadable "+what+" record skipped", "error", err)
			continue
		}
		keys, recs = append(keys, key), append(recs, rec)
	}
	return keys, recs
}
