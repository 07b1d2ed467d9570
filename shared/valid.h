/* valid — what every name, id, label and hostname may look like: one rule
 * per kind, checked the same way by the daemon, the CLI and lohar.
 *
 *   user, sandbox, snapshot name  [A-Za-z0-9][A-Za-z0-9._-]{0,62}
 *   secret name                   [A-Za-z_][A-Za-z0-9_]{0,62} (it becomes an
 *                                 environment variable in the guest)
 *   sandbox id                    [0-9a-f]{12}
 *   VM id                         [a-z0-9][a-z0-9-]{0,62} (the engine's: the
 *                                 name of a VM's directory; sandbox ids are
 *                                 VM ids)
 *   image name                    [a-z0-9][a-z0-9-]{0,62} (the file
 *                                 images_dir/rootfs-<name>.ext4)
 *   publish alias                 [a-z0-9][a-z0-9-]{0,62}, not a reserved word
 *                                 (www mail admin status ns1 ns2 api app
 *                                 _acme-challenge)
 *   environment variable name     [A-Za-z_][A-Za-z0-9_]*
 *   environment entry             NAME=value (any value)
 *   hostname                      one RFC 1123 label:
 *                                 [A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?
 *   label key                     [prefix/]name, each part
 *                                 [A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?;
 *                                 the prefix 'bhatti.sh/' is reserved
 *   label value                   [A-Za-z0-9._-]{0,256}
 *   labels                        at most 16 KEY=VALUE entries
 *   session id                    [A-Za-z0-9._-]{1,63}
 *
 * Each check returns 0, or -EINVAL with e (may be NULL) saying what is
 * wrong and what the rule is, naming the input in single quotes (cut at
 * 64 bytes, bytes that are not printable ASCII as \xNN):
 *
 *   invalid image name 'Tiny.v2': 'T' is not allowed; use 1 to 63
 *   lower-case letters, digits or '-', starting with a letter or digit
 *
 * A NULL input is refused like an empty one. Only the C library: this is
 * linked into the static guest agent too (shared/ core). Tested by the
 * table tests/data/valid.tsv (tests/unit/test-valid.c).
 */
#ifndef BHATTI_VALID_H
#define BHATTI_VALID_H

#include "err.h"

#define VALID_NAME_MAX         63   /* user, sandbox, snapshot, secret, image, alias */
#define VALID_SANDBOX_ID_LEN   12
#define VALID_LABELS_MAX       16
#define VALID_LABEL_VALUE_MAX  256
#define VALID_SESSION_ID_MAX   63
#define VALID_LABEL_RESERVED   "bhatti.sh"  /* the prefix of keys only bhatti sets */

/* The rules in words, for hints and docs ("a name is ..."). */
#define VALID_NAME_RULE "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
#define VALID_IMAGE_RULE \
	"1 to 63 lower-case letters, digits or '-', starting with a letter or digit"

int valid_user_name(const char *s, struct err *e);
int valid_sandbox_name(const char *s, struct err *e);
int valid_snapshot_name(const char *s, struct err *e);
int valid_secret_name(const char *s, struct err *e);
int valid_sandbox_id(const char *s, struct err *e);
int valid_vm_id(const char *s, struct err *e);
int valid_image(const char *s, struct err *e);
int valid_alias(const char *s, struct err *e);
int valid_env_name(const char *s, struct err *e);
/* "NAME=value": the name is checked; the value (perhaps a secret) is never
 * part of a message. */
int valid_env_entry(const char *kv, struct err *e);
int valid_hostname(const char *s, struct err *e);
int valid_label_key(const char *s, struct err *e);
int valid_label_value(const char *s, struct err *e);
/* A NULL-terminated list of "KEY=VALUE" (as json.h's JSON_STRMAP stores
 * a map): at most VALID_LABELS_MAX, each key and value valid. NULL is an
 * empty list. */
int valid_labels(char *const *kv, struct err *e);
int valid_session_id(const char *s, struct err *e);

#endif
