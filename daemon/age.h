/* age — the age file format (age-encryption.org/v1) with one X25519
 * recipient, over libsodium: how secrets are encrypted at rest.
 *
 * Sits between the daemon (api-secrets.c encrypts, sandbox.c decrypts for
 * the guest) and libsodium. The output is real age: Debian's `age -d -i
 * data_dir/age.key` decrypts it, and we decrypt what `age -r` encrypts.
 *
 * Format, as written here:
 *   header   "age-encryption.org/v1\n"
 *            "-> X25519 <b64 ephemeral share>\n<b64 wrapped file key>\n"
 *            "--- <b64 HMAC-SHA256 of the header up to '---'>\n"
 *   payload  16-byte nonce, then 64 KiB chunks of ChaCha20-Poly1305
 *            (nonce: 11-byte big-endian counter + last-chunk flag)
 * b64 is standard base64 without padding; keys come from HKDF-SHA256. On
 * read, other stanzas (grease, other recipient types) are skipped.
 *
 * The identity file holds "AGE-SECRET-KEY-1…" (bech32) plus comment lines,
 * mode 0600. Keys are plain bytes in struct age_identity; wipe it with
 * sodium_memzero when done.
 */
#ifndef BHATTI_AGE_H
#define BHATTI_AGE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

struct age_identity {
	uint8_t secret[32];
	uint8_t public[32];
};

/* Load path, or create it (atomically, mode 0600) with a new key when it
 * does not exist. A file readable by group or others is refused. */
int age_identity_load_or_create(const char *path, struct age_identity *ret, struct err *e);
/* Parse the text of an identity file. */
int age_identity_parse(const char *text, size_t len, struct age_identity *ret, struct err *e);
/* "age1…" for a public key; caller frees. */
char *age_recipient_string(const uint8_t pub[32]);
int age_parse_recipient(const char *s, uint8_t ret_pub[32], struct err *e);

/* Encrypt pt to the recipient, appending the binary age file to out. */
int age_encrypt(const uint8_t recipient_pub[32], const void *pt, size_t n, struct buf *out,
		struct err *e);
/* Decrypt an age file with id, appending the plaintext to out. Any
 * tampering, truncation or a wrong key is -EBADMSG; nothing is appended
 * unless the whole file authenticates. */
int age_decrypt(const struct age_identity *id, const void *ct, size_t n, struct buf *out,
		struct err *e);

/* A 32-byte key wrapped for a recipient: the age file of it, in standard
 * base64 (`base64 -d | age -d -i KEYFILE` opens it); caller frees. */
int age_wrap_key(const uint8_t recipient_pub[32], const uint8_t key[32], char **ret,
		 struct err *e);
/* And back: -EBADMSG for anything that is not such a key for id. */
int age_unwrap_key(const struct age_identity *id, const char *wrapped, uint8_t ret_key[32],
		   struct err *e);

#endif
