/* labels — a sandbox's labels as the core keeps them: "KEY=VALUE" lines
 * sorted by key (the store's sandboxes.labels column), made from and
 * turned into NULL-terminated "KEY=VALUE" vectors (as json.h's
 * JSON_STRMAP gives a map). The rules of keys and values are valid.h's
 * (at most 16, the prefix 'bhatti.sh/' reserved).
 *
 * Sits between the API handlers (which parse JSON) and sandbox.c / the
 * store; touches nothing but memory.
 */
#ifndef BHATTI_LABELS_H
#define BHATTI_LABELS_H

#include <stdbool.h>

#include "err.h"

/* The text of cur (may be NULL) with the entries of set ("K=V": added or
 * replaced) and the keys of unset removed, checked: 0 and *ret_text
 * (caller frees; "" when none is left), or -EINVAL. */
int labels_edit(const char *cur, char *const *set, char *const *unset, char **ret_text,
		struct err *e);
/* The entries of text as a vector (caller frees with strv_free). */
char **labels_split(const char *text);
/* Does text hold every filter entry: "K=V" (that value) or "K" (any)? */
bool labels_match(const char *text, char *const *filter);

#endif
