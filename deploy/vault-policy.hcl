# Least-privilege Vault (or OpenBao) policy for the Blacksmith reconciler's token, for the
# broker's KV v2 mount at secret/. What the reconciler does, and so all it may do:
#   read and write the instance records, credentials, manifests, metadata and the secret/db
#   index (check-and-set writes: create + update, never a delete);
#   list the mount (orphan and instance discovery) and read key metadata (versions for cas);
#   write its backups and delete only backups: secret/backups/<id>/<sha256> and the legacy
#   secret/<id>/backups/... it migrates;
#   tell the mount's KV version (sys/internal/ui/mounts/secret; sys/mounts is not needed).
# Load it:   bao policy write blacksmith-reconciler deploy/vault-policy.hcl   (or `vault policy write`)
# Token:     bao token create -policy=blacksmith-reconciler -period=24h
# With a KV v1 mount the paths have no data/ or metadata/ part: use "secret/*" with
# create/read/update/list, and "secret/backups/*" and "secret/+/backups/*" with delete too.
# Tested against a real OpenBao in tests/integration/test_vault_policy.py and in a whole run
# (tests/e2e/test_expected_outcome.py, the openbao case).

path "secret/data/*" {
  capabilities = ["create", "read", "update"]
}

# metadata: read and list everywhere. Written as "+" patterns, not "secret/metadata/*": Vault
# ranks a path with a "+" below a "*" path whose first wildcard is at the same place, so a plain
# "secret/metadata/*" would win over "secret/metadata/+/backups/*" and refuse the legacy deletes.
path "secret/metadata/" {
  capabilities = ["list"]
}

path "secret/metadata/+" {
  capabilities = ["read", "list"]
}

path "secret/metadata/+/*" {
  capabilities = ["read", "list"]
}

path "secret/metadata/backups/*" {
  capabilities = ["read", "list", "delete"]
}

path "secret/metadata/+/backups/*" {
  capabilities = ["read", "list", "delete"]
}

path "sys/internal/ui/mounts/secret" {
  capabilities = ["read"]
}
