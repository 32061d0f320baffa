// Package pgstore is acctpool's PostgreSQL store: one pool of fallback
// accounts shared by every machine that opens the same database, where the
// file store serves one machine.
//
// It keeps what the upstream files hold, in the same JSON shapes (the
// core/record documents and core's routing state), in tables created and
// migrated at Open in one transaction (schema.go; a database with a newer
// schema than the binary knows is refused):
//
//   - acctpool_config, acctpool_account: the config file's settings and its
//     accounts in order;
//   - acctpool_state, acctpool_account_state: the state file, one row per
//     account, tokens sealed with AES-256-GCM;
//   - acctpool_host: each machine's own main account id and the state's
//     main section (the main account is never shared);
//   - acctpool_routing, acctpool_routing_meta: sticky assignments by the
//     SHA-256 hex of the session id, with their last-seen time for the TTL
//     and the cap;
//   - acctpool_poll_claim: who polls an account's usage until when, so N
//     machines do not poll N times ([Store.ClaimPoll]);
//   - acctpool_change: one row per committed write, also sent with
//     NOTIFY acctpool_changes at commit (see [Store.Watch]).
//
// Writers are serialized by FOR UPDATE row locks (acctpool_write_lock) and
// re-read under them, as the file store does under its lock files. The
// per-account refresh lock ([Store.LockAccount]) is a transaction-level
// advisory lock that dies with its session, so a crashed holder frees the
// account at once, and the rotated tokens commit in the same transaction
// that releases it.
//
// # Key file and key rotation
//
// Tokens are encrypted with a key file ([LoadKeyFile]): one base64 32-byte
// key per line, mode 0600 (group or other access is refused). The first
// key encrypts; every key decrypts. To rotate:
//
//  1. add a new key as the second line on every machine and restart them
//     (all can now read values sealed with it);
//  2. move it to the first line on every machine and restart them; the
//     first Open with the new key first re-encrypts every token
//     ([Store.Rekey]);
//  3. remove the old key line.
//
// Losing every key loses the tokens (the accounts must log in again); the
// rest of the data stays readable.
package pgstore
