#!/bin/sh
# deploy/compose/vault-init.sh: the vault-init service of docker-compose.yml. Compose's Vault
# keeps its data in a volume (file storage), so it starts sealed, every time. This script
#   1. initialises it on the first start (one unseal key, threshold 1) and keeps the unseal
#      key and the root token in $VAULT_INIT_KEYS (a volume only this service mounts);
#   2. unseals it (or, once an operator removed the kept key, waits for an unseal by hand);
#   3. configures what uvr needs, idempotently (while the root token is kept): KV v2 at secret/, transit at transit/ with the
#      key uvr-users, the policy uvr, and an AppRole uvr whose role_id and secret_id it writes
#      to $VAULT_INIT_APPROLE (mounted read-only by the uvr services; owner $UVR_UID, 0400);
#   4. then, unless called with "once", checks every 5 s and unseals Vault again whenever it
#      restarted sealed.
# The unseal key lies next to the data it unseals (in another volume of the same host): this
# protects against a copy of the data volume alone, not against whoever can read every volume.
# docs/operations.md ("Vault in docker-compose") says what production does instead.
#
# Environment: VAULT_ADDR (required), VAULT_INIT_KEYS [/vault/keys],
# VAULT_INIT_APPROLE [/vault/approle], UVR_UID [10001]. POSIX sh (the Vault image's busybox).
set -eu

KEYS=${VAULT_INIT_KEYS:-/vault/keys}
APPROLE=${VAULT_INIT_APPROLE:-/vault/approle}
UVR_UID=${UVR_UID:-10001}
umask 077
mkdir -p "$KEYS" "$APPROLE"
chmod 0700 "$KEYS"
chmod 0755 "$APPROLE" # uvr (another uid) must reach its two files, which are 0400

say() { echo "vault-init: $*" >&2; }

# vault_status prints the exit code of `vault status`: 0 unsealed, 2 sealed, 1 unreachable.
vault_status() {
	rc=0
	vault status >/dev/null 2>&1 || rc=$?
	echo "$rc"
}

wait_vault() {
	i=0
	while [ "$(vault_status)" = 1 ]; do
		i=$((i + 1))
		[ "$i" -le 120 ] || { say "no answer from $VAULT_ADDR after 120 s"; exit 1; }
		sleep 1
	done
}

initialise() {
	vault status -format=json 2>/dev/null | grep -q '"initialized": true' && return 0
	say "initialising Vault (one unseal key, in $KEYS)"
	vault operator init -key-shares=1 -key-threshold=1 >"$KEYS/init.txt"
	awk '/^Unseal Key 1:/ { print $4 }' "$KEYS/init.txt" >"$KEYS/unseal-key"
	awk '/^Initial Root Token:/ { print $4 }' "$KEYS/init.txt" >"$KEYS/root-token"
	rm -f "$KEYS/init.txt"
	[ -s "$KEYS/unseal-key" ] && [ -s "$KEYS/root-token" ] || { say "vault operator init printed no key or token"; exit 1; }
}

# unseal unseals Vault with the kept key; without it (an operator removed it, to unseal by
# hand) it waits until someone has.
unseal() {
	[ "$(vault_status)" = 2 ] || return 0
	if [ -s "$KEYS/unseal-key" ]; then
		say "unsealing Vault"
		vault operator unseal "$(cat "$KEYS/unseal-key")" >/dev/null
		return 0
	fi
	say "Vault is sealed and $KEYS/unseal-key is gone: waiting for it to be unsealed by hand (vault operator unseal)"
	while [ "$(vault_status)" = 2 ]; do sleep 5; done
}

configure() {
	VAULT_TOKEN=$(cat "$KEYS/root-token")
	export VAULT_TOKEN
	mounts=$(vault secrets list)
	echo "$mounts" | grep -q '^secret/' || vault secrets enable -path=secret kv-v2 >/dev/null
	echo "$mounts" | grep -q '^transit/' || vault secrets enable transit >/dev/null
	vault write -f transit/keys/uvr-users >/dev/null
	vault policy write uvr - >/dev/null <<-'POLICY'
		# uvr: service credentials (KV v2) and the transit key sealing its users topic.
		path "secret/data/uvr/services/*" { capabilities = ["create", "read", "update", "delete"] }
		path "secret/metadata/uvr/services/*" { capabilities = ["read", "delete", "list"] }
		path "transit/encrypt/uvr-users" { capabilities = ["update"] }
		path "transit/decrypt/uvr-users" { capabilities = ["update"] }
	POLICY
	vault auth list | grep -q '^approle/' || vault auth enable approle >/dev/null
	vault write auth/approle/role/uvr token_policies=uvr token_ttl=1h token_max_ttl=24h secret_id_ttl=0 >/dev/null
	if [ ! -s "$APPROLE/secret_id" ]; then
		say "writing uvr's AppRole credentials to $APPROLE"
		vault read -field=role_id auth/approle/role/uvr/role-id >"$APPROLE/role_id.tmp"
		vault write -f -field=secret_id auth/approle/role/uvr/secret-id >"$APPROLE/secret_id.tmp"
		for f in role_id secret_id; do
			chown "$UVR_UID" "$APPROLE/$f.tmp"
			chmod 0400 "$APPROLE/$f.tmp"
			mv -f "$APPROLE/$f.tmp" "$APPROLE/$f"
		done
	fi
	unset VAULT_TOKEN
}

wait_vault
initialise
unseal
if [ -s "$KEYS/root-token" ]; then
	configure
elif [ ! -s "$APPROLE/secret_id" ]; then
	say "no root token in $KEYS and no AppRole in $APPROLE: cannot configure Vault for uvr"
	exit 1
fi
say "Vault is unsealed and configured for uvr"
[ "${1:-}" = once ] && exit 0
while :; do
	sleep 5
	unseal
done
